"""Online column changes in a migration: the operation, its steps and the helper it embeds.

A rename, a whitelisted retype or a NOT NULL with backfill (``schemactl.model.online``)
becomes one :class:`OnlineColumnOp`. The rendered migration calls ``_online_column(spec)``
and carries the helper's source (``HELPER_ONLINE``) so that plain ``alembic upgrade``
runs it without schemactl installed. The steps:

1. expand (one short transaction under ``lock_timeout``): the shadow column (the new
   name, or a hidden ``_sc_new_<column>`` for a retype in place) and a trigger that keeps
   the old and the new column in step, in both directions when both names are public;
2. backfill: primary-key batches of ``[online] batch_rows`` in autocommit, each batch
   and its progress row (``schemactl_archive.online_progress``) committed together, so a
   kill -9 resumes after the last committed batch: no row skipped, none done twice;
3. contract (one short transaction under ``lock_timeout``): NOT NULL through ``CHECK
   ... NOT VALID`` → ``VALIDATE`` → ``SET NOT NULL``, the names swapped, the trigger gone;
   then the old column's values are copied to the archive and the column dropped.

A value that does not fit the new type stops the run before the contract, names rows and
undoes the expand (the shadow only ever held copies).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemactl.codegen.metadata import default_sql, effective_comment
from schemactl.model.definitions import Column, TableDef, normalise_type
from schemactl.model.naming import short_name
from schemactl.model.online import ColumnChange

SHADOW_PREFIX = "_sc_new_"
OLD_PREFIX = "_sc_old_"
PROGRESS_TABLE = "online_progress"

#: What each step locks, for `plan` and `propose --dry-run`.
STEP_LOCKS = (
    ("expand", "ACCESS EXCLUSIVE for milliseconds (ADD COLUMN without a default, "
               "CREATE TRIGGER), under lock_timeout"),
    ("backfill", "ROW EXCLUSIVE: row locks of one primary-key batch at a time, autocommit"),
    ("validate", "SHARE UPDATE EXCLUSIVE (VALIDATE CONSTRAINT): reads and writes go on"),
    ("index", "SHARE UPDATE EXCLUSIVE (CREATE INDEX CONCURRENTLY on the shadow column): "
              "reads and writes go on"),
    ("contract", "ACCESS EXCLUSIVE for milliseconds (renames, SET NOT NULL with a valid "
                 "CHECK, DROP TRIGGER), under lock_timeout"),
    ("archive", "ACCESS SHARE while the old values are copied, then ACCESS EXCLUSIVE for "
                "milliseconds (DROP COLUMN of the copied column)"),
)


@dataclass
class OnlineColumnOp:
    """One column changed online (the planner's operation; rules see it by kind)."""

    table_name: str
    change: ColumnChange
    key: str
    info: dict[str, Any] = field(default_factory=dict)
    schema: str | None = None

    @property
    def column_name(self) -> str:
        return self.change.new.name


@dataclass
class OnlineColumnSpec:
    """An online change as recorded from a migration file (``_online_column(spec)``)."""

    table_name: str
    spec: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    schema: str | None = None

    @property
    def column_name(self) -> str:
        return str(self.spec["new"])


def _sql_literal(value: Any, col: Column) -> str | None:
    """The backfill as SQL (the same rendering a default gets), or None."""
    if value is None:
        return None
    from dataclasses import replace

    return default_sql(replace(col, default=value, has_default=True))


def spec(op: OnlineColumnOp, revision: str) -> dict[str, Any]:
    """The plain-data spec the migration passes to ``_online_column``."""
    ch = op.change
    old, new = ch.old, ch.new
    shadow = new.name if ch.renamed else short_name(f"{SHADOW_PREFIX}{new.name}")
    tag = f"{op.table_name}_{new.name}"
    return {
        "revision": revision, "table": op.table_name, "key": op.key,
        "old": old.name, "new": new.name, "shadow": shadow,
        "old_hidden": short_name(f"{OLD_PREFIX}{old.name}"),
        "old_type": normalise_type(old.type), "new_type": normalise_type(new.type),
        "public_shadow": ch.renamed,
        "not_null": not new.nullable, "old_not_null": not old.nullable,
        "backfill": _sql_literal(new.backfill, new) if ch.tightened else None,
        "check_fit": (ch.cast.checked and new.type_spec is not None
                      and bool(new.type_spec.args)) if ch.cast else False,
        "fit_length": (new.type_spec.args[0] if ch.cast and ch.cast.checked
                       and new.type_spec and new.type_spec.args else None),
        "default": default_sql(new), "old_default": default_sql(old),
        "comment": effective_comment(new.comment, new.deprecated),
        "old_comment": effective_comment(old.comment, old.deprecated),
        "function": short_name(f"_sc_sync_{tag}"), "trigger": short_name(f"_sc_sync_{tag}"),
        "check": short_name(f"_sc_nn_{tag}"),
        "archive": short_name(f"{op.table_name}__{old.name}__{revision}"),
        "indexes": op.info.get("indexes", []),
    }


def describe(op: OnlineColumnOp) -> str:
    """One sentence for `propose --dry-run` and the migration's summary."""
    ch = op.change
    what = []
    if ch.renamed:
        what.append(f"rename {ch.old.name} → {ch.new.name}")
    if ch.retyped:
        what.append(f"retype {ch.old.type} → {ch.new.type}")
    if ch.tightened:
        what.append("set NOT NULL" + (f" (NULLs become {ch.new.backfill!r})"
                                      if ch.new.backfill is not None else " (no NULL allowed)"))
    return ", ".join(what)


def explain(op: OnlineColumnOp) -> list[str]:
    """The steps in words, with their lock level (`plan`, `propose --dry-run`)."""
    ch = op.change
    t = op.table_name
    shadow = ch.new.name if ch.renamed else f"{SHADOW_PREFIX}{ch.new.name}"
    lines = [
        f"online change of {t}.{ch.old.name}: {describe(op)}",
        f"  1. expand: add {t}.{shadow} ({ch.new.type}) beside {ch.old.name} and a trigger "
        "keeping them in step"
        + (" in both directions (old and new names both work)" if ch.renamed else "")
        + f" [{STEP_LOCKS[0][1]}]",
        f"  2. backfill: copy every row in {op.key} order, [online] batch_rows a batch, each "
        f"batch committed with its progress (resumable after kill -9) [{STEP_LOCKS[1][1]}]",
    ]
    if ch.cast is not None and ch.cast.checked:
        lines.append(f"     every value must fit {ch.new.type}: the run stops before the "
                     "contract, naming rows, and undoes the expand when one does not")
    step = 3
    for idx in op.info.get("indexes", []):
        lines.append(f"  {step}. index: {idx['name']} built again on {shadow}, CONCURRENTLY, "
                     f"swapped in at the contract (the old one goes with the old column) "
                     f"[{STEP_LOCKS[3][1]}]")
        step += 1
    if not ch.new.nullable:
        lines.append(f"  {step}. validate: CHECK ({shadow} IS NOT NULL) NOT VALID, then "
                     f"VALIDATE [{STEP_LOCKS[2][1]}]")
        step += 1
    lines.append(f"  {step}. contract: one short transaction"
                 + (" swaps the names" if not ch.renamed else f" retires {ch.old.name}")
                 + (", SET NOT NULL, drops the check" if not ch.new.nullable else "")
                 + f", drops the trigger [{STEP_LOCKS[4][1]}]")
    lines.append(f"  {step + 1}. archive: the old column's values go to "
                 f"schemactl_archive, then the copied column is dropped [{STEP_LOCKS[5][1]}]")
    return lines


def render_calls(op: OnlineColumnOp, revision: str) -> tuple[list[str], list[str]]:
    """(upgrade lines, downgrade lines) of the migration for ``op``."""
    s = spec(op, revision)
    body = [f"    {k!r}: {v!r}," for k, v in s.items()]
    return (["_online_column({", *body, "})"], ["_online_column_down({", *body, "})"])


def helper_source() -> str:
    """The helper functions a migration with an online change carries (plain Alembic)."""
    from schemactl.codegen.sqltext import REGISTRY_SQL
    from schemactl.resources import TEMPLATES_DIR

    locks = "".join(f"\n    {name!r}: {lock!r}," for name, lock in STEP_LOCKS)
    return (f"ONLINE_STEP_LOCKS = {{{locks}\n}}\n"
            f"ONLINE_REGISTRY_SQL = {REGISTRY_SQL!r}\n"
            + (TEMPLATES_DIR / "online_helpers.py").read_text(encoding="utf-8"))


def shadow_indexes(before: TableDef, after: TableDef, ch: ColumnChange
                   ) -> list[dict[str, Any]]:
    """The indexes (and unique key) on the changed column, as the helper builds them again
    on the shadow column (CREATE INDEX CONCURRENTLY, forward and back) and swaps them in."""
    from schemactl.model.online import rename_columns

    old, new = ch.old.name, ch.new.name
    shadow = new if ch.renamed else short_name(f"{SHADOW_PREFIX}{new}")
    back_shadow = old if ch.renamed else short_name(f"{SHADOW_PREFIX}{old}")
    moved = rename_columns(before, {old: new})
    out: list[dict[str, Any]] = []
    for idx_before, idx in zip(before.indexes, moved.indexes, strict=True):
        if new not in (*idx.columns, *idx.include, *(p.column for p in idx.where)):
            continue
        name, old_name = idx.index_name(after.table), idx_before.index_name(before.table)
        out.append({"name": name, "old_name": old_name, "constraint": False,
                    "tmp": short_name(f"_sc_ix_{name}"),
                    "old_hidden": short_name(f"_sc_old_{old_name}"),
                    **_index_sql(after.table, idx, new, shadow),
                    **_index_sql(before.table, idx_before, old, back_shadow, "_back")})
    if ch.old.unique and ch.new.unique:
        from schemactl.model.definitions import Index
        from schemactl.model.naming import uq_name

        name, old_name = uq_name(after.table, new), uq_name(before.table, old)
        out.append({"name": name, "old_name": old_name, "constraint": True,
                    "tmp": short_name(f"_sc_ix_{name}"),
                    "old_hidden": short_name(f"_sc_old_{old_name}"),
                    **_index_sql(after.table, Index((new,), unique=True), new, shadow),
                    **_index_sql(before.table, Index((old,), unique=True), old, back_shadow,
                                 "_back")})
    return out


def _index_sql(table: str, idx: Any, column: str, shadow: str, suffix: str = ""
               ) -> dict[str, Any]:
    """``create``: CREATE INDEX CONCURRENTLY of ``idx`` with ``column`` read from ``shadow``
    (named ``{name}``: the helper fills it in); ``dup``: its keys and predicate, to name the
    rows a unique build refused."""
    from dataclasses import replace

    from schemactl.codegen.expressions import index_keys_sql, predicate_sql

    def n(c: str) -> str:
        return shadow if c == column else c

    moved = replace(idx, columns=tuple(n(c) for c in idx.columns),
                    include=tuple(n(c) for c in idx.include),
                    where=tuple(replace(p, column=n(p.column)) for p in idx.where))
    keys = [k + (f" {moved.opclass}" if moved.opclass else "") for k in index_keys_sql(moved)]
    sql = (f"CREATE {'UNIQUE ' if moved.unique else ''}INDEX CONCURRENTLY IF NOT EXISTS "
           f"{{name}} ON public.\"{table}\" USING {moved.using or 'btree'} "
           f"({', '.join(keys)})")
    if moved.include:
        sql += f" INCLUDE ({', '.join(moved.include)})"
    if moved.storage:
        sql += " WITH (" + ", ".join(f"{k} = {v}" for k, v in moved.storage) + ")"
    where = predicate_sql(moved.where)
    if where:
        sql += f" WHERE {where}"
    return {f"create{suffix}": sql, f"dup{suffix}": [", ".join(index_keys_sql(moved)), where]}
