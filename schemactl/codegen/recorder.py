"""The offline recorder: a migration's ``upgrade()``/``downgrade()`` run without a database.

Each function runs against a recording Alembic ``Operations`` object in offline mode
(``as_sql``): no connection exists, the operations it invokes are kept as Alembic op
objects and the SQL they render is collected. `schemactl check` models a branch's
migrations with it; the pipeline reads from it which existing tables a run touches
(the scope of its backup). The code that runs is the migration's own, as
``alembic upgrade --sql`` would run it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Recorded:
    """A migration's upgrade (or downgrade), run offline: its operations and the SQL it rendered."""

    name: str
    ops: list[Any] = field(default_factory=list)
    sql: str = ""
    error: str | None = None


@dataclass
class ArchiveOp:
    """What the ``_archive_table``/``_archive_column`` helpers of a downgrade do: a table (or
    one column's values) of ``table`` moves to the archive schema, never dropped."""

    kind: str
    table_name: str
    column_name: str | None = None
    schema: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _recording_operations(ctx: Any) -> Any:
    """Alembic's ``Operations`` whose ``invoke`` records each operation, then renders it.

    The instance's ``invoke`` is replaced rather than subclassing: Alembic installs the
    ``op`` module proxy per class, and only for ``Operations`` itself.
    """
    from alembic.operations import Operations

    rec = Operations(ctx)
    rec.recorded = []  # type: ignore[attr-defined]
    rec.depth = 0  # type: ignore[attr-defined]
    plain = rec.invoke

    def invoke(operation: Any) -> Any:
        if rec.depth == 0:  # type: ignore[attr-defined]
            rec.recorded.append(operation)  # type: ignore[attr-defined]
        return plain(operation)

    rec.invoke = invoke  # type: ignore[method-assign]
    return rec


def _wrap_helpers(namespace: dict[str, Any], rec: Any) -> None:
    """Record the helpers schemactl writes into migrations as the operations they are.

    The lock-safe helpers of an upgrade become the Alembic operations they stand for; the
    archive helpers of a downgrade become :class:`ArchiveOp`. Each helper emits a ``DO``
    block through ``op.execute``; recorded as such it would hide a concurrent index, a NOT
    VALID foreign key or an archived table behind opaque SQL.
    """
    from alembic.operations import ops

    def quiet(fn: Any, *args: Any, **kw: Any) -> Any:
        rec.depth += 1
        try:
            return fn(*args, **kw)
        finally:
            rec.depth -= 1

    index_fn = namespace.get("_create_index_concurrently")
    if callable(index_fn):
        def index(name: str, table: str, columns: list[str], **kw: Any) -> Any:
            extra = {k: v for k, v in kw.items() if k.startswith("postgresql_")}
            rec.recorded.append(ops.CreateIndexOp(name, table, list(columns),
                                                  unique=bool(kw.get("unique")),
                                                  if_not_exists=True,
                                                  postgresql_concurrently=True, **extra))
            return quiet(index_fn, name, table, columns, **kw)
        namespace["_create_index_concurrently"] = index
    fk_fn = namespace.get("_add_foreign_key_not_valid")
    if callable(fk_fn):
        def fk(name: str, table: str, column: str, ref_table: str, ref_column: str,
               **actions: Any) -> Any:
            from schemactl.codegen.expressions import FK_ACTION_SQL

            kw = {k.replace("on_", "on"): FK_ACTION_SQL[v] for k, v in actions.items() if v}
            op = ops.CreateForeignKeyOp(name, table, ref_table, [column], [ref_column],
                                        postgresql_not_valid=True, **kw)
            op.info["validate"] = True
            rec.recorded.append(op)
            return quiet(fk_fn, name, table, column, ref_table, ref_column, **actions)
        namespace["_add_foreign_key_not_valid"] = fk
    composite_fn = namespace.get("_add_composite_foreign_key_not_valid")
    if callable(composite_fn):
        def composite(name: str, table: str, columns: list[str], ref_table: str,
                      ref_columns: list[str], **actions: Any) -> Any:
            from schemactl.codegen.expressions import FK_ACTION_SQL

            kw = {k.replace("on_", "on"): FK_ACTION_SQL[v] for k, v in actions.items() if v}
            op = ops.CreateForeignKeyOp(name, table, ref_table, list(columns),
                                        list(ref_columns), postgresql_not_valid=True, **kw)
            op.info["validate"] = True
            rec.recorded.append(op)
            return quiet(composite_fn, name, table, columns, ref_table, ref_columns, **actions)
        namespace["_add_composite_foreign_key_not_valid"] = composite
    for helper in ("_online_column", "_online_column_down"):
        _wrap_online(namespace, helper, rec, quiet)
    for helper in ("_online_table_rename", "_online_table_rename_down",
                   "_online_table_contract", "_online_table_contract_down",
                   "_online_rename_columns", "_online_rename_columns_down"):
        _wrap_online_table(namespace, helper, rec, quiet)
    replaced_fn = namespace.get("_drop_replaced_constraint")
    if callable(replaced_fn):
        def replaced(name: str, table: str, replaced_by: str) -> Any:
            op = ops.DropConstraintOp(name, table)
            op.info["replaced_by"] = replaced_by
            rec.recorded.append(op)
            return quiet(replaced_fn, name, table, replaced_by)
        namespace["_drop_replaced_constraint"] = replaced
    unique_fn = namespace.get("_add_unique_using_index")
    if callable(unique_fn):
        def unique(name: str, table: str) -> Any:
            for op in rec.recorded:
                if type(op).__name__ == "CreateIndexOp" and op.index_name == name:
                    op.info["attach_constraint"] = True
            return quiet(unique_fn, name, table)
        namespace["_add_unique_using_index"] = unique
    table_fn = namespace.get("_archive_table")
    if callable(table_fn):
        def archive_table(table: str, target: str) -> Any:
            rec.recorded.append(ArchiveOp("table", table))
            return quiet(table_fn, table, target)
        namespace["_archive_table"] = archive_table
    column_fn = namespace.get("_archive_column")
    if callable(column_fn):
        def archive_column(table: str, column: str, *args: Any, **kw: Any) -> Any:
            rec.recorded.append(ArchiveOp("column", table, column))
            return quiet(column_fn, table, column, *args, **kw)
        namespace["_archive_column"] = archive_column


def _wrap_online(namespace: dict[str, Any], helper: str, rec: Any, quiet: Any) -> None:
    """An online change's helper (up or down) recorded as the one table's change it is."""
    fn = namespace.get(helper)
    if not callable(fn):
        return
    from schemactl.codegen.online import OnlineColumnSpec

    def online(spec: dict[str, Any]) -> Any:
        made = OnlineColumnSpec(str(spec["table"]), dict(spec))
        made.info["direction"] = "downgrade" if helper.endswith("_down") else "upgrade"
        rec.recorded.append(made)
        return quiet(fn, spec)
    namespace[helper] = online


def _wrap_online_table(namespace: dict[str, Any], helper: str, rec: Any, quiet: Any) -> None:
    """A table rename (up or down) or its contract recorded as what it does to which table."""
    fn = namespace.get(helper)
    if not callable(fn):
        return
    from schemactl.codegen.online_table import OnlineTableSpec

    def online(spec: dict[str, Any]) -> Any:
        down = helper.endswith("_down")
        if helper.startswith("_online_table_rename"):
            made = OnlineTableSpec("rename", str(spec["old"]), dict(spec))
            if down:  # the table goes back: new → old
                made = OnlineTableSpec("rename", str(spec["new"]), {
                    **spec, "old": spec["new"], "new": spec["old"],
                    "names": [[k, n, o] for k, o, n in spec["names"]]})
        elif "columns" in helper:
            made = OnlineTableSpec("rename_columns", str(spec["table"]), dict(spec))
            if down:
                made.spec.update(columns=[[n, o] for o, n in spec["columns"]],
                                 names=[[k, n, o] for k, o, n in spec["names"]])
        else:
            made = OnlineTableSpec("contract", str(spec["table"]), dict(spec))
        made.info["direction"] = "downgrade" if down else "upgrade"
        rec.recorded.append(made)
        return quiet(fn, spec)
    namespace[helper] = online


def _is_validate(sql: str) -> bool:
    return "VALIDATE CONSTRAINT" in sql.upper() and sql.strip().upper().startswith("ALTER TABLE")


def record_migration(source: bytes | str, name: str, *, direction: str = "upgrade"
                     ) -> Recorded:
    """Run a migration's ``upgrade()`` (or ``downgrade()``) offline, recording its operations
    and its SQL.

    Never raises for the migration's own failures: they are kept in ``error``.
    """
    from schemactl.adapters.migrator import ALEMBIC_LOCK

    with ALEMBIC_LOCK:  # the `op` proxy is module-wide (see ALEMBIC_LOCK)
        return _record(source, name, direction)


def _record(source: bytes | str, name: str, direction: str) -> Recorded:
    from schemactl.codegen.offline import offline_context
    from schemactl.codegen.planner import EXTENSION_SQL

    out = Recorded(name)
    buf = io.StringIO()
    ctx = offline_context(buf)
    rec = _recording_operations(ctx)
    rec._install_proxy()
    try:
        text = source.decode("utf-8") if isinstance(source, bytes) else source
        namespace: dict[str, Any] = {"__name__": f"schemactl_check_{name}", "__file__": name}
        exec(compile(text, name, "exec"), namespace)  # noqa: S102 - see the module docstring
        _wrap_helpers(namespace, rec)
        ctx.impl.emit_begin()
        namespace[direction]()
        ctx.impl.emit_commit()
    except Exception as exc:  # noqa: BLE001 - any failure is a finding, not a crash
        out.error = f"{type(exc).__name__}: {exc}".strip()[:500]
    finally:
        rec._remove_proxy()
    kept = []
    for op in rec.recorded:
        if type(op).__name__ == "ExecuteSQLOp":
            sql = str(op.sqltext)
            if _is_validate(sql):
                continue  # the second half of a NOT VALID foreign key
            if " ".join(sql.split()).upper() in {e.upper() for e in EXTENSION_SQL.values()}:
                op.info["schemactl"] = "extension"
                continue
        kept.append(op)
    out.ops = kept
    from schemactl.codegen.sqltext import tidy_sql

    out.sql = tidy_sql(buf.getvalue())
    return out
