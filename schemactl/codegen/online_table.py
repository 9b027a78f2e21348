"""Online table renames in a migration: the operations, their steps and the helper they embed.

A definition with ``renamed_from: <old>`` at the top level (and no table ``<old>`` left)
becomes one :class:`OnlineTableRenameOp`: in the migration's one short transaction, under
``lock_timeout``, the table is renamed, so are the indexes and constraints named after it
(``pk_``, ``ix_``/``uq_``, ``ck_``, ``fk_``, PostgreSQL's own not-null constraints and
owned sequences), and a simple view under the old name (``SELECT *``: automatically
updatable) keeps old readers and writers working. The view stays while the definition keeps
its marker; the proposal that removes the marker is the contract
(:class:`OnlineTableContractOp`: the view goes; a view holds no data). Rolling back the
rename drops the view and renames everything back, every row in place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from schemactl.codegen.expressions import column_check_sql
from schemactl.model.definitions import TableDef
from schemactl.model.naming import ck_name, fk_name, pk_name, short_name, uq_name

#: What each step locks, for `plan` and `propose --dry-run`.
RENAME_LOCK = ("ACCESS EXCLUSIVE for milliseconds (catalog-only renames, CREATE VIEW), "
               "under lock_timeout, retried")
CONTRACT_LOCK = "ACCESS EXCLUSIVE on the old-name view only, for milliseconds (DROP VIEW)"


def _named(tdef: TableDef) -> list[tuple[str, str]]:
    """``(kind, name)`` of everything a migration names after the table or its columns
    (``kind`` is ``index`` or ``constraint``), in an order that depends on neither name."""
    t = tdef.table
    out: list[tuple[str, str]] = []
    if tdef.primary_key:
        out.append(("constraint", pk_name(t)))
    for c in tdef.columns:
        out.append(("constraint", short_name(f"{t}_{c.name}_not_null")))  # PostgreSQL 18's
        if c.unique and not c.primary_key:
            out.append(("constraint", uq_name(t, c.name)))
        if column_check_sql(c):
            out.append(("constraint", ck_name(t, c.name)))
        if c.references and c.ref_table:
            out.append(("constraint", fk_name(t, c.name, c.ref_table, c.on_delete,
                                              c.on_update)))
    out += [("constraint", ref.constraint_name(t)) for ref in tdef.references]
    out += [("constraint", chk.check_name(t)) for chk in tdef.checks]
    out += [("index", idx.index_name(t)) for idx in tdef.indexes]
    return out


def renamed_names(before: TableDef, after: TableDef) -> list[list[str]]:
    """``[kind, old name, new name]`` of what ``before`` names differently from ``after``,
    the same table with its name or columns renamed."""
    return [[k, old, new] for (k, old), (_k, new) in zip(_named(before), _named(after),
                                                         strict=True) if old != new]


@dataclass
class OnlineTableRenameOp:
    """A table renamed online (the planner's operation; rules see it by kind)."""

    table_name: str
    new_table_name: str
    names: list[list[str]]
    #: ``[table, kind, old name, new name]`` of the other tables' keys to it, renamed along
    referrers: list[list[str]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    schema: str | None = None

    def spec(self) -> dict[str, Any]:
        out = {"old": self.table_name, "new": self.new_table_name, "names": self.names,
               "lock": RENAME_LOCK}
        return {**out, "referrers": self.referrers} if self.referrers else out


@dataclass
class OnlineTableContractOp:
    """The contract of a table rename: the old-name view goes."""

    table_name: str
    view: str
    info: dict[str, Any] = field(default_factory=dict)
    schema: str | None = None

    def spec(self) -> dict[str, Any]:
        return {"table": self.table_name, "view": self.view, "lock": CONTRACT_LOCK}


@dataclass
class OnlineTableSpec:
    """A table rename (``kind`` "rename") or its contract ("contract") as recorded from a
    migration file; ``table_name`` is the table whose data it touches (none for a contract)."""

    kind: str
    table_name: str
    spec: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    schema: str | None = None

    @property
    def new_table_name(self) -> str | None:
        return str(self.spec["new"]) if self.kind == "rename" else None


def rename_op(before: TableDef, after: TableDef, referrers: Iterable[TableDef] = ()
              ) -> OnlineTableRenameOp:
    """The rename of ``before`` to ``after``'s name; ``referrers``: the other tables with a
    key to it (the key follows the table; its name is renamed after it)."""
    from schemactl.model.online import rename_table, retarget

    # the table's own not-null names are PostgreSQL's: the rename block follows them itself
    names = [n for n in renamed_names(before, rename_table(before, after.table))
             if not n[1].endswith("_not_null")]
    moved = [[r.table, *n] for r in referrers
             for n in renamed_names(r, retarget(r, {before.table: after.table}))]
    op = OnlineTableRenameOp(before.table, after.table, names, moved)
    keys = sorted({r[0] for r in moved})
    op.info["explain"] = [
        f"online rename of table {before.table} → {after.table}",
        f"  1. rename: {before.table} → {after.table} with its indexes and constraints, and a "
        f"view {before.table} (SELECT * FROM {after.table}: old readers and writers keep "
        f"working)" + (f"; the foreign keys of {', '.join(keys)} follow it, renamed after it"
                       if keys else "") + f" [{RENAME_LOCK}]",
        f"  2. contract: a later proposal without `renamed_from` drops the view "
        f"{before.table} [{CONTRACT_LOCK}]",
    ]
    return op


def contract_op(table: str, view: str) -> OnlineTableContractOp:
    op = OnlineTableContractOp(table, view)
    op.info["explain"] = [f"contract of the rename of {view} → {table}: the view {view} "
                          f"goes (old readers must use {table} now) [{CONTRACT_LOCK}]"]
    return op


@dataclass
class OnlineColumnRenameOp:
    """Columns that indexes or keys name, renamed in the catalog (no shadow column)."""

    table_name: str
    columns: list[list[str]]
    names: list[list[str]]
    checks: dict[str, str]
    where: dict[str, str | None]
    info: dict[str, Any] = field(default_factory=dict)
    schema: str | None = None

    def spec(self) -> dict[str, Any]:
        # checks and where: the renamed checks' and partial indexes' SQL (check's model)
        return {"table": self.table_name, "columns": self.columns, "names": self.names,
                "checks": self.checks, "where": self.where, "lock": RENAME_LOCK}


def column_rename_op(before: TableDef, renames: dict[str, str]) -> OnlineColumnRenameOp:
    """The catalog rename of ``renames`` (old → new) in ``before``."""
    from schemactl.codegen.expressions import check_map, predicate_sql
    from schemactl.model.online import rename_columns

    after = rename_columns(before, renames)
    names = renamed_names(before, after)
    old_checks, new_checks = check_map(before), check_map(after)
    checks = {n: sql for n, sql in new_checks.items() if old_checks.get(n) != sql}
    where = {i.index_name(after.table): predicate_sql(i.where) for i in after.indexes}
    op = OnlineColumnRenameOp(before.table, [[o, n] for o, n in renames.items()], names,
                              checks, {n: w for n, w in where.items()
                                       if n in {x[2] for x in names} or w is not None})
    what = ", ".join(f"{o} → {n}" for o, n in renames.items())
    op.info["describe"] = f"rename {what} in the catalog"
    op.info["explain"] = [
        f"online rename of {before.table}.{what}: in the catalog, one short transaction "
        "(RENAME COLUMN; its indexes and constraints follow the column and are renamed "
        f"after it; no shadow column, no backfill) [{RENAME_LOCK}]"]
    return op


def render_calls(op: OnlineTableRenameOp | OnlineTableContractOp | OnlineColumnRenameOp
                 ) -> tuple[list[str], list[str]]:
    """(upgrade lines, downgrade lines) of the migration for ``op``."""
    name = ("_online_table_rename" if isinstance(op, OnlineTableRenameOp)
            else "_online_rename_columns" if isinstance(op, OnlineColumnRenameOp)
            else "_online_table_contract")
    body = [f"    {k!r}: {v!r}," for k, v in op.spec().items()]
    return ([f"{name}({{", *body, "})"], [f"{name}_down({{", *body, "})"])


def helper_source() -> str:
    """The helper functions a migration with a table rename or its contract carries."""
    from schemactl.resources import TEMPLATES_DIR

    return (TEMPLATES_DIR / "online_table.py").read_text(encoding="utf-8")
