"""SC103 no-rename."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from schemactl.model.definitions import TableDef, normalise_type
from schemactl.model.online import ColumnChange, online_problem, renamed_source

from .base import Rule, RuleContext, TableChange
from .core_tables import sa_type_name
from .violation import Violation

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any

    from .ops_context import OpsContext


def _signature(tdef: TableDef) -> tuple[str, ...]:
    return tuple(normalise_type(c.type) for c in tdef.columns)


class NoRename(Rule):
    """A table or column renamed in one step breaks every reader and writer at once.

    A rename shows up as one column (or table) removed and another of the same
    type added. Autogenerate turns it into a drop and an add, losing the data;
    even a real ``RENAME`` breaks every running client. Say it is a rename with
    ``renamed_from``: schemactl then renames online (a shadow column kept in step
    with the old one by a trigger, backfilled in batches, swapped in under a short
    lock; the old name's values go to the archive). Old readers and writers keep
    working until the contract. A table says ``renamed_from: <old>`` at the top level:
    it is renamed in one short transaction and its old name stays a view (old readers
    and writers keep working) until a later proposal removes the marker (the contract).

    **Anti-pattern**

    ```yaml
    # before: {name: title, type: text}; after: the same column called headline
    table: notes
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: headline, type: text}
    ```

    **Best practice**

    ```yaml
    # an online rename: expand, backfill, contract (docs/online.md)
    table: notes
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: headline, type: text, renamed_from: title}
    ```
    """

    code = "SC103"
    name = "no-rename"
    hint = ("to rename online write the new name with the old one as its marker, "
            "`{name: headline, type: text, renamed_from: title}` (a table: `renamed_from: "
            "<old>` at the top level); schemactl keeps both names in step until the contract")

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        removed_tables, new_tables = [], []
        for ch in ctx.changes:
            if ch.is_removed and ch.before is not None:
                removed_tables.append(ch.before)
            elif ch.is_new and ch.after is not None:
                new_tables.append(ch.after)
            for old, new in _pairs(ch.removed_columns(), ch.added_columns()):
                yield self.violation(
                    f"column {ch.name}.{old.name} looks renamed to {new.name} (one {old.type} "
                    "column removed, one added)", table=ch.name, column=old.name, tdef=ch.after)
            yield from self._marked(ch.name, ch.before, ch.after)
            yield from self._table_marker(ctx, ch)
        for old_t, new_t in _pairs(removed_tables, new_tables, key=_signature):
            yield self.violation(f"table {old_t.table} looks renamed to {new_t.table} (removed, "
                                 "and a table of the same columns added)", table=old_t.table,
                                 tdef=new_t)

    def _table_marker(self, ctx: RuleContext, ch: TableChange) -> Iterator[Violation]:
        """A table-level ``renamed_from``: carried out online when it names a table that the
        proposal no longer has; refused when it names nothing, a table still there, or when
        the old-name view (kept until the contract) would stop a change of the columns."""
        after = ch.after
        if after is None or not after.renamed_from:
            return
        old = after.renamed_from
        if ch.before is None:
            if old in ctx.core:
                return  # SC501: a core table is never renamed
            if old in ctx.proposed:
                yield self.violation(
                    f"table {ch.name} is renamed_from {old}, which the proposal still has",
                    table=ch.name, tdef=after,
                    hint=f"remove {old}'s definition in the same change (propose does), or "
                         f"drop `renamed_from` to add {ch.name} as a new table")
            else:
                yield self.violation(
                    f"table {ch.name} is renamed_from {old}, which does not exist",
                    table=ch.name, tdef=after,
                    hint="renamed_from names the table's current name (its definition file "
                         "in dynamic_schema/)")
            return
        renaming = ch.before.table != ch.name
        if not renaming and ch.before.renamed_from != old:
            yield self.violation(
                f"table {ch.name} exists already: renamed_from {old} cannot rename it",
                table=ch.name, tdef=after,
                hint="renamed_from goes on the new name's definition in the proposal that "
                     "renames; keep the old marker or remove it (the contract)")
            return
        if renaming:
            # the proposal moves another table's key to the new name (propose does it)
            for other in sorted(ctx.referrers(old) - {ch.name}):
                yield self.violation(
                    f"table {other} references {old}, which this change renames to {ch.name}",
                    table=other, tdef=ctx.proposed.get(other),
                    hint=f"reference {ch.name} in {other} (`schemactl propose` of {ch.name} "
                         "moves the keys of the tables that reference it)")
        for before_col, col in ch.kept_columns():
            if before_col.name != col.name or before_col.type != col.type:
                yield self.violation(
                    f"column {ch.name}.{col.name} cannot change name or type while the view "
                    f"{old} (the old name of {ch.name}) reads it", table=ch.name,
                    column=col.name, tdef=after,
                    hint="change the column in a later proposal, after the contract (the "
                         f"proposal that removes `renamed_from: {old}`), or in that one")

    def _marked(self, table: str, before: TableDef | None, after: TableDef | None
                ) -> Iterator[Violation]:
        """A `renamed_from` marker that names no column, or a rename that cannot run online."""
        if before is None or after is None:
            return
        for col in after.columns:
            if not col.renamed_from or before.column(col.name) is not None:
                continue
            old = renamed_source(before, col)
            if old is None:
                yield self.violation(
                    f"column {table}.{col.name} is renamed_from {col.renamed_from}, which "
                    f"{before.table} does not have", table=table, column=col.name, tdef=after,
                    hint=f"renamed_from names the column's current name, one of: "
                         f"{', '.join(before.column_names)}")
                continue
            problem = online_problem(before, ColumnChange(table, old, col))
            if problem:
                yield self.violation(f"column {table}.{old.name} cannot be renamed online: "
                                     f"{problem}", table=table, column=col.name, tdef=after,
                                     hint="keep the name, or add a new column and deprecate "
                                          "the old one")

    def check_ops(self, ctx: OpsContext) -> Iterator[Violation]:
        for item in ctx.of_kind("RenameTableOp"):
            yield self.violation(f"the migration renames table {item.table} to "
                                 f"{item.op.new_table_name}", table=item.table)
        for item in ctx.of_kind("AlterColumnOp"):
            new = getattr(item.op, "modify_name", None)
            if new:
                yield self.violation(f"the migration renames column {item.table}."
                                     f"{item.op.column_name} to {new}", table=item.table,
                                     column=item.op.column_name)
        by_table: dict[str | None, tuple[list[object], list[object]]] = {}
        for item in ctx.of_kind("DropColumnOp", "AddColumnOp"):
            drops, adds = by_table.setdefault(item.table, ([], []))
            (drops if item.kind == "DropColumnOp" else adds).append(item.op)
        for table, (drops, adds) in by_table.items():
            tdef = ctx.current.get(table) if table else None

            def col_type(op: object, tdef: TableDef | None = tdef) -> str:
                found = _op_col_type(op)
                if found == "?" and tdef is not None:
                    col = tdef.column(_op_col_name(op))
                    found = normalise_type(col.type) if col is not None else "?"
                return found

            for old, new in _pairs(drops, adds, key=col_type):
                yield self.violation(
                    f"the migration drops {table}.{_op_col_name(old)} and adds "
                    f"{_op_col_name(new)} of the same type (a rename)", table=table,
                    column=_op_col_name(old))


def _op_col_name(op: object) -> str:
    col = getattr(op, "column", None)
    return str(col.name) if col is not None else str(getattr(op, "column_name", "?"))


def _op_col_type(op: object) -> str:
    col = getattr(op, "column", None)
    if col is not None:
        return sa_type_name(col.type)
    # DropColumnOp keeps the dropped column for its reverse() when autogenerate made it.
    reverse = getattr(op, "_reverse", None)
    col = getattr(reverse, "column", None)
    return sa_type_name(col.type) if col is not None else "?"


def _pairs(removed: Iterable[Any], added: Iterable[Any],
           key: Callable[[Any], object] = lambda c: normalise_type(c.type),
           ) -> Iterator[tuple[Any, Any]]:
    """Greedily pair removed with added items of the same key (type or column types)."""
    pool = list(added)
    for old in removed:
        k = key(old)
        if k == "?":
            continue
        for i, new in enumerate(pool):
            if key(new) == k:
                yield old, new
                del pool[i]
                break
