"""The one place that builds Alembic operations: definitions at HEAD → proposed definitions.

The diff is computed offline from the definitions themselves: no database, no
reflection, and only the tables that changed are looked at (reflecting or
comparing a 1,000-table schema costs seconds; see DESIGN.md, Known pitfalls).
The result is an Alembic ``UpgradeOps`` tree shaped like autogenerate's output
(``CreateTableOp`` at the top, per-table ``ModifyTableOps``), so the
operation-level safety rules read exactly what the migration will run.

Lock-safety is recorded on the operations themselves, where rules can see it:
- ``CreateIndexOp`` on an existing table: ``kw["postgresql_concurrently"] = True`` and
  ``if_not_exists=True`` (built outside the transaction);
- ``CreateForeignKeyOp`` on an existing table: ``kw["postgresql_not_valid"] = True`` and
  ``info["validate"] = True`` (added NOT VALID, then ``VALIDATE CONSTRAINT``);
- a column made ``unique`` on an existing table: a unique ``CreateIndexOp`` built
  concurrently, with ``info["attach_constraint"] = True`` (then ``ADD CONSTRAINT ...
  UNIQUE USING INDEX``);
- ``ExecuteSQLOp`` is only ever ``CREATE EXTENSION IF NOT EXISTS vector`` or ``citext``
  (``info["schemactl"] == "extension"``, ``info["extension"]`` the name).

Destructive differences (a removed table or column, a removed index or constraint) are
represented faithfully as Drop operations so that the rules reject them; the renderer
refuses to write them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from schemactl.codegen.metadata import default_sql, effective_comment, sa_type, type_extension
from schemactl.model.constraints import TableReference
from schemactl.model.definitions import Column, Index, TableDef
from schemactl.model.naming import fk_name, uq_name
from schemactl.model.online import (
    ColumnChange,
    catalog_rename,
    online_changes,
    online_problem,
    rename_columns,
    rename_table,
    retarget,
    table_renames,
)
from schemactl.model.tableset import as_table_set

if TYPE_CHECKING:
    from alembic.operations.ops import UpgradeOps

VECTOR_EXTENSION_SQL = "CREATE EXTENSION IF NOT EXISTS vector"
# The extensions a migration may create (whitelisted: never a name from a definition).
EXTENSION_SQL = {"vector": VECTOR_EXTENSION_SQL, "citext": "CREATE EXTENSION IF NOT EXISTS citext"}


@dataclass(frozen=True)
class Change:
    """One human-readable change of a plan (also the JSON `changes` of propose)."""

    action: str
    table: str
    column: str | None = None
    index: str | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "table": self.table}
        if self.column:
            out["column"] = self.column
        if self.index:
            out["index"] = self.index
        if self.detail:
            out["detail"] = self.detail
        return out

    def describe(self) -> str:
        words = self.action.replace("_", " ")
        target = self.column or self.index
        return f"{words} {target}" if target else f"{words} {self.table}"


@dataclass
class Plan:
    """The operations that take ``current`` to ``proposed`` for the changed tables."""

    upgrade_ops: UpgradeOps
    changes: list[Change] = field(default_factory=list)
    tables: tuple[str, ...] = ()
    new_tables: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.changes

    def online_steps(self) -> list[str]:
        """The online changes' steps in words, with their lock levels."""
        kinds = ("OnlineColumnOp", "OnlineTableRenameOp", "OnlineTableContractOp",
                 "OnlineColumnRenameOp")
        return [line for top in self.upgrade_ops.ops for sub in getattr(top, "ops", [top])
                if type(sub).__name__ in kinds for line in sub.info["explain"]]

    def message(self, limit: int = 72) -> str:
        """A one-line summary: ``add table characters`` or ``alter table x: add column y``."""
        if not self.changes:
            return "no change"
        parts: list[str] = []
        for table in self.tables:
            mine = [c for c in self.changes if c.table == table]
            if not mine:
                continue
            if any(c.action == "create_table" for c in mine):
                parts.append(f"add table {table}")
            elif len(mine) == 1 and mine[0].action in ("deprecate_table",):
                parts.append(f"deprecate table {table}")
            else:
                parts.append(f"alter table {table}: " + ", ".join(c.describe() for c in mine))
        text = "; ".join(parts)
        return text if len(text) <= limit else text[:limit - 3].rstrip(" ,:;") + "..."


def _column_obj(col: Column, table: str) -> Any:
    from schemactl.codegen.metadata import sa_column

    return sa_column(col)


def _index_elements(idx: Index) -> list[Any]:
    from schemactl.codegen.table_parts import index_elements

    return index_elements(idx)


def _index_kw(idx: Index) -> dict[str, Any]:
    from schemactl.codegen.table_parts import index_kwargs

    return index_kwargs(idx)


def _key_columns(tdef: TableDef) -> tuple[str, ...]:
    """The row key archived column values are stored under (the primary key, else ``id``)."""
    return tdef.primary_key or (("id",) if tdef.column("id") else tuple(tdef.column_names[:1]))


def _create_table(tdef: TableDef, metadata: Any) -> tuple[list[Any], list[Change]]:
    from alembic.operations import ops

    from schemactl.codegen.metadata import add_table

    table = add_table(metadata, tdef, include_deprecated=True)
    create = ops.CreateTableOp.from_table(table)
    create.info["definition"] = tdef
    index_ops = []
    for idx in tdef.indexes:
        op = ops.CreateIndexOp(idx.index_name(tdef.table), tdef.table, _index_elements(idx),
                               unique=idx.unique, **_index_kw(idx))
        op.info["index"] = idx
        index_ops.append(op)
    out: list[Any] = [create]
    if index_ops:
        out.append(ops.ModifyTableOps(tdef.table, index_ops))
    changes = [Change("create_table", tdef.table, detail=f"{len(tdef.columns)} columns, "
                                                         f"{len(tdef.indexes)} indexes")]
    return out, changes


def _alter_table(old: TableDef, new: TableDef) -> tuple[list[Any], list[Change]]:
    """Operations on an existing table, in a lock-safe order: columns, constraints, indexes."""
    from alembic.operations import ops

    table = new.table
    col_ops: list[Any] = []
    constraint_ops: list[Any] = []
    index_ops: list[Any] = []
    changes: list[Change] = []
    key = _key_columns(new)

    in_catalog = {c.old.name: c.new.name for c in online_changes(old, new)
                  if catalog_rename(old, c) and online_problem(old, c) is None}
    if in_catalog:
        # Renames of indexed or keyed columns: in the catalog first, the rest of the change
        # is planned on the renamed table (its indexes and keys then compare equal).
        from schemactl.codegen.online_table import column_rename_op

        renamed = column_rename_op(old, in_catalog)
        col_ops.append(renamed)
        changes.append(Change("online_change", table, ", ".join(in_catalog.values()),
                              detail=renamed.info["describe"]))
        old = rename_columns(old, in_catalog)

    if old.renamed_from and old.renamed_from != new.renamed_from:
        # The marker removed: the contract of an earlier table rename (the old-name view goes).
        from schemactl.codegen.online_table import contract_op

        col_ops.append(contract_op(table, old.renamed_from))
        changes.append(Change("contract_rename", table, detail=f"view {old.renamed_from} goes"))

    online = _online_ops(old, new, key)
    col_ops += online
    moved = {o.change.old.name for o in online} | {o.change.new.name for o in online}
    changes += [Change("online_change", table, o.change.new.name,
                       detail=o.info["describe"]) for o in online]

    old_comment = effective_comment(old.comment, old.deprecated)
    new_comment = effective_comment(new.comment, new.deprecated)
    if old_comment != new_comment:
        if new_comment is None:
            col_ops.append(ops.DropTableCommentOp(table, existing_comment=old_comment))
        else:
            col_ops.append(ops.CreateTableCommentOp(table, new_comment,
                                                    existing_comment=old_comment))
        action = "deprecate_table" if new.deprecated and not old.deprecated else "comment_table"
        changes.append(Change(action, table, detail=new_comment or ""))

    for col in old.columns:
        if col.name in moved:
            continue
        if new.column(col.name) is None:
            col_ops.append(ops.DropColumnOp(
                table, col.name, _reverse=ops.AddColumnOp(table, _column_obj(col, table))))
            changes.append(Change("drop_column", table, col.name))

    for col in new.columns:
        if col.name in moved:
            continue
        before = old.column(col.name)
        if before is None:
            add = ops.AddColumnOp(table, _column_obj(col, table))
            add.info["key_columns"] = key
            add.info["column"] = col
            col_ops.append(add)
            changes.append(Change("add_column", table, col.name, detail=col.type))
            if col.references and col.ref_column:
                constraint_ops.append(_fk_op(table, col))
                changes.append(Change("add_foreign_key", table, col.name,
                                      detail=f"references {col.references}"))
            if col.unique and not col.primary_key:
                constraint_ops.append(_unique_op(table, col))
                changes.append(Change("add_unique", table, col.name))
            continue
        alter = _alter_column(table, before, col)
        if alter is not None:
            col_ops.append(alter[0])
            changes.extend(alter[1])
        if before.references != col.references:
            if before.references and before.ref_table:
                constraint_ops.append(ops.DropConstraintOp(
                    fk_name(table, col.name, before.ref_table, before.on_delete,
                            before.on_update), table, type_="foreignkey"))
                changes.append(Change("drop_foreign_key", table, col.name))
            if col.references and col.ref_column:
                constraint_ops.append(_fk_op(table, col))
                changes.append(Change("add_foreign_key", table, col.name,
                                      detail=f"references {col.references}"))
        elif col.references and col.ref_column and (before.on_delete, before.on_update) != (
                col.on_delete, col.on_update):
            constraint_ops += _fk_replacement(table, before, col)
            changes.append(Change("replace_foreign_key", table, col.name,
                                  detail=_actions_text(col)))
        if before.unique != col.unique and not col.primary_key:
            if col.unique:
                constraint_ops.append(_unique_op(table, col))
                changes.append(Change("add_unique", table, col.name))
            else:
                constraint_ops.append(ops.DropConstraintOp(uq_name(table, col.name), table,
                                                           type_="unique"))
                changes.append(Change("drop_unique", table, col.name))
        if before.primary_key != col.primary_key:
            # No operation: a primary key change is refused by the rules (SC204).
            changes.append(Change("change_primary_key", table, col.name))

    made, ch = _check_changes(old, new, key)
    constraint_ops += made
    changes += ch
    made, ch = _table_reference_changes(old, new)
    constraint_ops += made
    changes += ch

    # an index on a column renamed online is carried along (built again on the shadow)
    carried = rename_columns(old, {o.change.old.name: o.change.new.name for o in online
                                   if o.change.renamed})
    old_idx = {i.index_name(table): i for i in carried.indexes}
    new_idx = {i.index_name(table): i for i in new.indexes}
    for name, idx in old_idx.items():
        if name not in new_idx or new_idx[name] != idx:
            index_ops.append(ops.DropIndexOp(name, table))
            changes.append(Change("drop_index", table, index=name))
    for name, idx in new_idx.items():
        if name in old_idx and old_idx[name] == idx:
            continue
        create = ops.CreateIndexOp(name, table, _index_elements(idx), unique=idx.unique,
                                   if_not_exists=True, postgresql_concurrently=True,
                                   **_index_kw(idx))
        create.info["index"] = idx
        index_ops.append(create)
        changes.append(Change("add_index", table, index=name,
                              detail=f"{idx.using or 'btree'} ({', '.join(idx.key_words)})"))
    return col_ops + constraint_ops + index_ops, changes


def _online_ops(old: TableDef, new: TableDef, key: tuple[str, ...]) -> list[Any]:
    """The column changes that run online (expand, backfill, contract), one op each."""
    from schemactl.codegen.online import OnlineColumnOp, describe, explain, shadow_indexes

    out = []
    for change in online_changes(old, new):
        if online_problem(old, change) is not None:
            continue  # the rules refuse it; the plan shows the direct change they refuse
        op = OnlineColumnOp(new.table, ColumnChange(new.table, change.old, change.new),
                            key[0])
        op.info["indexes"] = shadow_indexes(old, new, op.change)
        op.info["describe"] = describe(op)
        op.info["explain"] = explain(op)
        out.append(op)
    return out


def _fk_op(table: str, col: Column) -> Any:
    from alembic.operations import ops

    from schemactl.codegen.table_parts import fk_kwargs

    op = ops.CreateForeignKeyOp(fk_name(table, col.name, col.ref_table or "", col.on_delete,
                                        col.on_update), table,
                                col.ref_table or "", [col.name], [col.ref_column or ""],
                                postgresql_not_valid=True, **fk_kwargs(col))
    op.info["validate"] = True
    op.info["column"] = col
    return op


def _table_fk_op(table: str, ref: TableReference) -> Any:
    """A composite foreign key on an existing table: NOT VALID, then VALIDATE."""
    from alembic.operations import ops

    from schemactl.codegen.table_parts import fk_action_kwargs

    op = ops.CreateForeignKeyOp(ref.constraint_name(table), table, ref.to, list(ref.columns),
                                list(ref.to_columns), postgresql_not_valid=True,
                                **fk_action_kwargs(ref.on_delete, ref.on_update))
    op.info["validate"] = True
    op.info["column"] = ref  # the actions, as a column's key has them
    return op


def _table_reference_changes(old: TableDef, new: TableDef) -> tuple[list[Any], list[Change]]:
    """Composite foreign keys added, removed (SC105 refuses it) or with changed actions
    (the lock-safe replacement single-column keys get)."""
    from alembic.operations import ops

    table = new.table
    before = {r.identity: r for r in old.references}
    after = {r.identity: r for r in new.references}
    out: list[Any] = []
    changes: list[Change] = []
    for ident, ref in before.items():
        if ident not in after:
            out.append(ops.DropConstraintOp(ref.constraint_name(table), table,
                                            type_="foreignkey"))
            changes.append(Change("drop_foreign_key", table, ",".join(ref.columns)))
    for ident, ref in after.items():
        what = f"({', '.join(ref.columns)}) references {ref.to} ({', '.join(ref.to_columns)})"
        was = before.get(ident)
        if was is None:
            out.append(_table_fk_op(table, ref))
            changes.append(Change("add_foreign_key", table, ",".join(ref.columns),
                                  detail=what))
        elif (was.on_delete, was.on_update) != (ref.on_delete, ref.on_update):
            add = _table_fk_op(table, ref)
            drop = ops.DropConstraintOp(was.constraint_name(table), table, type_="foreignkey")
            drop.info["replaced_by"] = add.constraint_name
            drop.info["old_column"] = was
            out += [add, drop]
            changes.append(Change("replace_foreign_key", table, ",".join(ref.columns),
                                  detail=what + "".join(
                                      f" ON {event} {action.upper().replace('_', ' ')}"
                                      for event, action in (("DELETE", ref.on_delete),
                                                            ("UPDATE", ref.on_update))
                                      if action)))
    return out, changes


def _actions_text(col: Column) -> str:
    from schemactl.codegen.expressions import FK_ACTION_SQL

    words = [f"ON DELETE {FK_ACTION_SQL[col.on_delete or 'no_action']}"]
    if col.on_update:
        words.append(f"ON UPDATE {FK_ACTION_SQL[col.on_update]}")
    return f"references {col.references} " + " ".join(words)


def _fk_replacement(table: str, before: Column, col: Column) -> list[Any]:
    """A foreign key whose actions change: the new one NOT VALID + VALIDATE, then the old
    one dropped in a short transaction (``info["replaced_by"]``: not a removal, SC105)."""
    from alembic.operations import ops

    add = _fk_op(table, col)
    drop = ops.DropConstraintOp(fk_name(table, col.name, before.ref_table or "",
                                        before.on_delete, before.on_update), table,
                                type_="foreignkey")
    drop.info["replaced_by"] = add.constraint_name
    drop.info["old_column"] = before
    return [add, drop]


def _check_changes(old: TableDef, new: TableDef, key: tuple[str, ...]
                   ) -> tuple[list[Any], list[Change]]:
    """CHECK constraints added, changed or removed on an existing table.

    A new or changed check is added NOT VALID (existing rows are first checked inside the
    transaction, and named when they violate it) and validated outside the transaction; a
    changed one replaces the old in the same short transaction; a removed one is dropped
    (loosening a check loses nothing).
    """
    from alembic.operations import ops

    from schemactl.codegen.expressions import check_map

    table = new.table
    before, after = check_map(old), check_map(new)
    out: list[Any] = []
    changes: list[Change] = []
    for name, sql in before.items():
        if name not in after:
            drop = ops.DropConstraintOp(name, table, type_="check")
            drop.info["old_sql"] = sql
            changes.append(Change("drop_check", table, index=name))
            out.append(drop)
    added = {c.name for c in new.columns if old.column(c.name) is None}
    for name, sql in after.items():
        if before.get(name) == sql:
            continue
        add = ops.CreateCheckConstraintOp(name, table, sql, postgresql_not_valid=True)
        add.info["validate"] = True
        add.info["key_columns"] = key
        add.info["sql"] = sql
        add.info["old_sql"] = before.get(name)  # a changed check replaces the old one
        # Existing rows are checked before any DDL; a check over a column this migration
        # adds sees only its default there (SC407 checks that the default passes).
        add.info["precheck"] = not (_check_columns(new, name) & added)
        out.append(add)
        changes.append(Change("replace_check" if name in before else "add_check", table,
                              index=name, detail=sql))
    return out, changes


def _check_columns(tdef: TableDef, name: str) -> set[str]:
    from schemactl.model.naming import ck_name

    for col in tdef.columns:
        if ck_name(tdef.table, col.name) == name:
            return {col.name}
    return {c for chk in tdef.checks if chk.check_name(tdef.table) == name
            for c in (chk.left, chk.right)}


def _unique_op(table: str, col: Column) -> Any:
    """A unique constraint on an existing table: its index is built CONCURRENTLY first."""
    from alembic.operations import ops

    name = uq_name(table, col.name)
    op = ops.CreateIndexOp(name, table, [col.name], unique=True, if_not_exists=True,
                           postgresql_concurrently=True)
    op.info["index"] = Index(columns=(col.name,), unique=True, name=name)
    op.info["attach_constraint"] = True
    op.info["column"] = col
    return op


def _alter_column(table: str, old: Column, new: Column) -> tuple[Any, list[Change]] | None:
    import sqlalchemy as sa
    from alembic.operations import ops

    kw: dict[str, Any] = {}
    changes: list[Change] = []
    if old.type != new.type:
        kw["modify_type"] = sa_type(new.type)
        changes.append(Change("alter_type", table, new.name, detail=f"{old.type} → {new.type}"))
    if old.nullable != new.nullable and not new.primary_key:
        kw["modify_nullable"] = new.nullable
        changes.append(Change("drop_not_null" if new.nullable else "set_not_null", table,
                              new.name))
    old_default, new_default = default_sql(old), default_sql(new)
    if old_default != new_default:
        kw["modify_server_default"] = sa.text(new_default) if new_default is not None else None
        changes.append(Change("alter_default", table, new.name, detail=str(new_default)))
    old_comment = effective_comment(old.comment, old.deprecated)
    new_comment = effective_comment(new.comment, new.deprecated)
    if old_comment != new_comment:
        kw["modify_comment"] = new_comment
        action = "deprecate_column" if new.deprecated and not old.deprecated else "comment_column"
        changes.append(Change(action, table, new.name, detail=new_comment or ""))
    if not kw:
        return None
    old_default_obj = sa.text(old_default) if old_default is not None else None
    op = ops.AlterColumnOp(table, new.name, existing_type=sa_type(old.type),
                           existing_nullable=old.nullable and not old.primary_key,
                           existing_server_default=old_default_obj,
                           existing_comment=old_comment, **kw)
    op.info["old"] = old
    op.info["new"] = new
    return op, changes


def build_plan(current: Mapping[str, TableDef], proposed: Mapping[str, TableDef],
               tables: Iterable[str] | None = None) -> Plan:
    """The Alembic operations that take ``current`` to ``proposed``.

    Args:
        current: table name → definition at git HEAD.
        proposed: table name → the proposed whole state.
        tables: only look at these tables (default: every table whose definition differs;
            computing that set compares definitions, never databases).

    Returns:
        A :class:`Plan`: its ``upgrade_ops`` is empty when nothing changes.
    """
    from alembic.operations import ops

    if tables is None:
        from schemactl.model.changeset import changed_tables

        tables = changed_tables(current, proposed)
    todo = sorted(set(tables))
    renames = table_renames(current, proposed, todo)
    moved = {o: n for n, o in renames.items()}
    # New tables in dependency order: a referenced table is created first.
    new = [n for n in todo if n in proposed and n not in current and n not in renames]
    new = _new_table_order(new, proposed)
    top: list[Any] = []
    changes: list[Change] = []
    extensions: set[str] = set()
    metadata = _reference_metadata(current, proposed, todo)
    for name in new:
        tdef = proposed[name]
        made, ch = _create_table(tdef, metadata)
        top += made
        changes += ch
        extensions |= {e for c in tdef.columns if (e := type_extension(c.type))}
    for name in todo:
        if name in new:
            continue
        if name not in proposed:
            if name in renames.values():
                continue  # renamed: below, under its new name
            top.append(ops.DropTableOp(name))
            changes.append(Change("drop_table", name))
            continue
        tdef = proposed[name]
        if name in renames:
            from schemactl.codegen.online_table import rename_op

            old = current[renames[name]]
            referrers = as_table_set(current).referrers(old.table) - {old.table}
            top.append(rename_op(old, tdef, [current[r] for r in sorted(referrers)]))
            changes.append(Change("rename_table", name, detail=f"from {old.table}"))
            # the rest of the change is planned on the table under its new name
            old = replace(rename_table(old, name), renamed_from=tdef.renamed_from)
        else:  # its keys to a table renamed here follow that table (the rename moves them)
            old = retarget(current[name], moved)
        made_ops, ch = _alter_table(old, tdef)
        if made_ops:
            top.append(ops.ModifyTableOps(name, made_ops))
        changes += ch
        extensions |= {e for c in tdef.columns
                       if (e := type_extension(c.type)) and (
                           (before := old.column(c.name)) is None
                           or type_extension(before.type) != e)}
    for name in sorted(extensions, reverse=True):
        ext = ops.ExecuteSQLOp(EXTENSION_SQL[name])
        ext.info["schemactl"] = "extension"
        ext.info["extension"] = name
        top.insert(0, ext)
    touched = tuple(n for n in [*new, *todo] if n in {c.table for c in changes})
    return Plan(upgrade_ops=ops.UpgradeOps(ops=top), changes=changes,
                tables=tuple(dict.fromkeys(touched)), new_tables=tuple(new))


def _new_table_order(names: list[str], defs: Mapping[str, TableDef]) -> list[str]:
    out: list[str] = []
    pending = list(names)
    while pending:
        for name in pending:
            refs = defs[name].referenced_tables
            if not (refs & (set(pending) - {name})):
                out.append(name)
                pending.remove(name)
                break
        else:  # a reference cycle among new tables: keep alphabetical order
            out += pending
            break
    return out


def _reference_metadata(current: Mapping[str, TableDef], proposed: Mapping[str, TableDef],
                        tables: list[str]) -> Any:
    """A MetaData holding what the changed tables reference (so FKs resolve), no more.

    The core tables are always there (five tables); an existing dynamic table that is
    referenced is added with its columns only. New tables are added by the caller, in
    dependency order.
    """
    from sqlalchemy import MetaData

    from schemactl.codegen.metadata import _core, add_table

    core = _core()
    metadata = MetaData(naming_convention=core.naming_convention)
    for table in core.sorted_tables:
        table.to_metadata(metadata)
    wanted: set[str] = set()
    for name in tables:
        tdef = proposed.get(name)
        if tdef:
            wanted |= tdef.referenced_tables - {name}
    for name in sorted(wanted):
        if name in current and name in proposed and name not in metadata.tables:
            add_table(metadata, _keys_only(proposed[name]))
    return metadata


def _keys_only(tdef: TableDef) -> TableDef:
    from dataclasses import replace

    return replace(tdef, columns=tuple(replace(c, references=None) for c in tdef.columns),
                   indexes=(), references=())
