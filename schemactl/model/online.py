"""Online changes (expand / backfill / contract): the cast whitelist and what a change is.

This is the one home of the online cast whitelist: the safety rules read it to let a
marked change through, the planner reads it to write the expand/backfill/contract
migration. A definition asks for an online change with a marker:

- ``renamed_from: <old>`` on a column (a rename), or at the top level of a table;
- a type change along :data:`ONLINE_CASTS` (a retype);
- ``nullable: false`` with ``backfill: <literal>`` on an existing nullable column
  (``backfill: null`` says the column holds no NULL; the run checks it before the contract).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from schemactl.model.definitions import Column, TableDef, TypeSpec, parse_type

# old base → new bases whose cast keeps every value (the table would be rewritten by a
# direct ALTER TYPE, so it goes through a shadow column instead).
WIDENING = {
    "smallint": ("integer", "bigint", "numeric"),
    "integer": ("bigint", "numeric"),
    "bigint": ("numeric",),
    "real": ("double precision",),
}

#: The online cast whitelist as text (docs, hints and the JSON Schema say the same).
ONLINE_CASTS = (
    "smallint → integer → bigint → numeric",
    "real → double precision",
    "numeric(p,s) → numeric(p2,s2) with s2 ≥ s and p2 − s2 ≥ p − s, or unconstrained numeric",
    "varchar(n) → varchar(m < n) and text → varchar(n), when every value fits "
    "(checked before the contract)",
)


@dataclass(frozen=True)
class OnlineCast:
    """A whitelisted retype: ``checked`` when some stored values may not fit (checked per row)."""

    old: str
    new: str
    checked: bool = False


def numeric_scale_kept(old: TypeSpec, new: TypeSpec) -> bool:
    """numeric(p,s) → numeric(p2,s2) keeps every value: s2 ≥ s and p2 − s2 ≥ p − s (or the
    new one is unconstrained)."""
    if not new.args:
        return True
    if not old.args:
        return False
    p, s = old.args[0], (old.args[1] if len(old.args) > 1 else 0)
    p2, s2 = new.args[0], (new.args[1] if len(new.args) > 1 else 0)
    return s2 >= s and p2 - s2 >= p - s


def online_cast(old_type: str, new_type: str) -> OnlineCast | None:
    """The whitelisted online cast from ``old_type`` to ``new_type``, or None.

    None also for changes that need no online form (same type, varchar widening,
    varchar → text: PostgreSQL does those without a rewrite).
    """
    old, new = parse_type(old_type), parse_type(new_type)
    if old is None or new is None or old.array or new.array or str(old) == str(new):
        return None
    if new.base == "numeric" and old.base in ("smallint", "integer", "bigint"):
        # integer → numeric(p,s) keeps every value only when p − s holds its digits
        digits = {"smallint": 5, "integer": 10, "bigint": 19}[old.base]
        if new.args and new.args[0] - (new.args[1] if len(new.args) > 1 else 0) < digits:
            return None
        return OnlineCast(str(old), str(new))
    if new.base in WIDENING.get(old.base, ()):
        return OnlineCast(str(old), str(new))
    if old.base == "numeric" and new.base == "numeric":
        return OnlineCast(str(old), str(new)) if numeric_scale_kept(old, new) else None
    if new.base == "varchar" and new.args and (
            old.base == "text" or (old.base == "varchar" and (not old.args
                                                              or new.args[0] < old.args[0]))):
        return OnlineCast(str(old), str(new), checked=True)
    return None


@dataclass(frozen=True)
class ColumnChange:
    """One column changed online: any of rename, retype and tighten to NOT NULL at once."""

    table: str
    old: Column
    new: Column

    @property
    def renamed(self) -> bool:
        return self.old.name != self.new.name

    @property
    def cast(self) -> OnlineCast | None:
        return online_cast(self.old.type, self.new.type)

    @property
    def retyped(self) -> bool:
        return self.cast is not None

    @property
    def tightened(self) -> bool:
        return self.old.nullable and not self.new.nullable and self.new.has_backfill

    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k, on in (("rename", self.renamed), ("retype", self.retyped),
                                     ("set_not_null", self.tightened)) if on)


def renamed_source(before: TableDef, col: Column) -> Column | None:
    """The column of ``before`` that ``col`` is renamed from (its marker names a present
    column and its own name is new), else None."""
    if not col.renamed_from or before.column(col.name) is not None:
        return None
    return before.column(col.renamed_from)


def column_pairs(before: TableDef, after: TableDef) -> list[tuple[Column, Column]]:
    """(before, after) pairs of the columns both states have, renames followed."""
    out = []
    for new in after.columns:
        old = before.column(new.name) or renamed_source(before, new)
        if old is not None:
            out.append((old, new))
    return out


def online_changes(before: TableDef, after: TableDef) -> list[ColumnChange]:
    """The column changes between two states of a table that run online."""
    out = []
    for old, new in column_pairs(before, after):
        change = ColumnChange(after.table, old, new)
        if change.kinds():
            out.append(change)
    return out


def online_problem(before: TableDef, change: ColumnChange) -> str | None:
    """Why a marked column change cannot run online (None when it can)."""
    old, new = change.old, change.new
    name = f"{change.table}.{old.name}"
    if old.primary_key or new.primary_key:
        return f"{name} is (or becomes) the primary key"
    if catalog_rename(before, change):
        return None  # renamed in the catalog: no backfill, the index and keys follow
    if not before.primary_key or len(before.primary_key) != 1:
        return f"{change.table} needs a one-column primary key to backfill in batches"
    if old.references or new.references or any(old.name in r.columns
                                                 for r in before.references):
        return f"{name} has a foreign key"
    if old.unique != new.unique:
        return f"{name} gains or loses its unique constraint in the same change"
    if old.check is not None or new.check is not None:
        return f"{name} has a check (it would go with the old column)"
    if any(c.generated is not None and old.name in c.generated.columns
           for c in before.columns) or any(old.name in (c.left, c.right) for c in before.checks):
        return f"{name} is read by a generated column or a table check"
    if old.type != new.type and change.cast is None:
        return f"{old.type} → {new.type} is not on the online cast whitelist"
    return None


def keyed_column(tdef: TableDef, name: str) -> bool:
    """Whether an index, a unique or foreign key, a check or a generated column names
    column ``name`` of ``tdef`` (PostgreSQL keeps them pointing at it through a rename)."""
    col = tdef.column(name)
    if col is None:
        return False
    return bool(
        col.unique or col.references or col.check is not None
        or any(name in (*i.columns, *i.include) or any(p.column == name for p in i.where)
               for i in tdef.indexes)
        or any(name in (c.left, c.right) for c in tdef.checks)
        or any(name in r.columns for r in tdef.references)
        or any(c.generated is not None and name in c.generated.columns for c in tdef.columns))


def catalog_rename(before: TableDef, change: ColumnChange) -> bool:
    """A rename alone of a column an index or key names: done in the catalog in one short
    transaction (``RENAME COLUMN``, its index and constraint names after it), no shadow.

    A shadow column would need every index and key built again on the copy; the rename
    it stands for happens at the same moment of the same apply either way.
    """
    return change.kinds() == ("rename",) and keyed_column(before, change.old.name)


def rename_columns(tdef: TableDef, renames: Mapping[str, str]) -> TableDef:
    """``tdef`` with its columns renamed (old → new), and every index, check, reference and
    generated column that names them."""
    from dataclasses import replace

    def n(name: str) -> str:
        return renames.get(name, name)

    def gen(col: Column) -> Column:
        g = col.generated
        return col if g is None else replace(col, generated=replace(
            g, columns=tuple(n(c) for c in g.columns)))

    return replace(
        tdef,
        columns=tuple(gen(replace(c, name=n(c.name))) for c in tdef.columns),
        indexes=tuple(replace(i, columns=tuple(n(c) for c in i.columns),
                              include=tuple(n(c) for c in i.include),
                              where=tuple(replace(p, column=n(p.column)) for p in i.where))
                      for i in tdef.indexes),
        checks=tuple(replace(c, left=n(c.left), right=n(c.right)) for c in tdef.checks),
        references=tuple(replace(r, columns=tuple(n(c) for c in r.columns))
                         for r in tdef.references))


def table_renames(current: Mapping[str, TableDef], proposed: Mapping[str, TableDef],
                  candidates: Iterable[str] | None = None) -> dict[str, str]:
    """new name → old name of the tables a proposal renames with ``renamed_from`` (among
    ``candidates``, default every proposed table): the old name is in ``current`` only,
    the new one in ``proposed`` only."""
    out = {}
    for name in (proposed if candidates is None else candidates):
        tdef = proposed.get(name)
        if (tdef is not None and tdef.renamed_from and name not in current
                and tdef.renamed_from in current and tdef.renamed_from not in proposed):
            out[name] = tdef.renamed_from
    return out


def retarget(tdef: TableDef, renames: Mapping[str, str]) -> TableDef:
    """``tdef`` with its references to the tables in ``renames`` (old → new name) following
    them: a foreign key points at a table, not at a name, so PostgreSQL's rename of the
    referenced table carries the key along."""
    from dataclasses import replace

    if not renames or not tdef.referenced_tables & set(renames):
        return tdef

    def ref(value: str) -> str:
        table, _, column = value.partition(".")
        return f"{renames[table]}.{column}"

    return replace(
        tdef,
        columns=tuple(replace(c, references=ref(c.references))
                      if c.references and c.ref_table in renames else c
                      for c in tdef.columns),
        references=tuple(replace(r, to=renames[r.to]) if r.to in renames else r
                         for r in tdef.references))


def rename_table(tdef: TableDef, new: str) -> TableDef:
    """``tdef`` under the name ``new``, its references to itself following it."""
    from dataclasses import replace

    return replace(retarget(tdef, {tdef.table: new}), table=new)
