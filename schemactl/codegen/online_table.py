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

from dataclasses import dataclass, field
from typing import Any

from schemactl.codegen.expressions import column_check_sql
from schemactl.model.definitions import TableDef
from schemactl.model.naming import ck_name, fk_name, pk_name, uq_name

#: What each step locks, for `plan` and `propose --dry-run`.
RENAME_LOCK = ("ACCESS EXCLUSIVE for milliseconds (catalog-only renames, CREATE VIEW), "
               "under lock_timeout, retried")
CONTRACT_LOCK = "ACCESS EXCLUSIVE on the old-name view only, for milliseconds (DROP VIEW)"


def renamed_names(before: TableDef, new: str) -> list[list[str]]:
    """``[kind, old name, new name]`` of everything a migration names after the table
    (``kind`` is ``index`` or ``constraint``), for a rename of ``before`` to ``new``."""
    old = before.table
    out: list[list[str]] = []
    if before.primary_key:
        out.append(["constraint", pk_name(old), pk_name(new)])
    for c in before.columns:
        if c.unique and not c.primary_key:
            out.append(["constraint", uq_name(old, c.name), uq_name(new, c.name)])
        if column_check_sql(c):
            out.append(["constraint", ck_name(old, c.name), ck_name(new, c.name)])
        if c.references and c.ref_table:
            out.append(["constraint", fk_name(old, c.name, c.ref_table, c.on_delete, c.on_update),
                        fk_name(new, c.name, c.ref_table, c.on_delete, c.on_update)])
    for ref in before.references:  # composite foreign keys
        out.append(["constraint", ref.constraint_name(old), ref.constraint_name(new)])
    for chk in before.checks:
        out.append(["constraint", chk.check_name(old), chk.check_name(new)])
    for idx in before.indexes:
        out.append(["index", idx.index_name(old), idx.index_name(new)])
    return [n for n in out if n[1] != n[2]]


@dataclass
class OnlineTableRenameOp:
    """A table renamed online (the planner's operation; rules see it by kind)."""

    table_name: str
    new_table_name: str
    names: list[list[str]]
    info: dict[str, Any] = field(default_factory=dict)
    schema: str | None = None

    def spec(self) -> dict[str, Any]:
        return {"old": self.table_name, "new": self.new_table_name, "names": self.names,
                "lock": RENAME_LOCK}


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


def rename_op(before: TableDef, after: TableDef) -> OnlineTableRenameOp:
    op = OnlineTableRenameOp(before.table, after.table, renamed_names(before, after.table))
    op.info["explain"] = [
        f"online rename of table {before.table} → {after.table}",
        f"  1. rename: {before.table} → {after.table} with its indexes and constraints, and a "
        f"view {before.table} (SELECT * FROM {after.table}: old readers and writers keep "
        f"working) [{RENAME_LOCK}]",
        f"  2. contract: a later proposal without `renamed_from` drops the view "
        f"{before.table} [{CONTRACT_LOCK}]",
    ]
    return op


def contract_op(table: str, view: str) -> OnlineTableContractOp:
    op = OnlineTableContractOp(table, view)
    op.info["explain"] = [f"contract of the rename of {view} → {table}: the view {view} "
                          f"goes (old readers must use {table} now) [{CONTRACT_LOCK}]"]
    return op


def render_calls(op: OnlineTableRenameOp | OnlineTableContractOp) -> tuple[list[str], list[str]]:
    """(upgrade lines, downgrade lines) of the migration for ``op``."""
    name = ("_online_table_rename" if isinstance(op, OnlineTableRenameOp)
            else "_online_table_contract")
    body = [f"    {k!r}: {v!r}," for k, v in op.spec().items()]
    return ([f"{name}({{", *body, "})"], [f"{name}_down({{", *body, "})"])


def helper_source() -> str:
    """The helper functions a migration with a table rename or its contract carries."""
    from schemactl.resources import TEMPLATES_DIR

    return (TEMPLATES_DIR / "online_table.py").read_text(encoding="utf-8")
