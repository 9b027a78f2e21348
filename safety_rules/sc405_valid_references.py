"""SC405 valid-references."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from schemactl.model.definitions import Column, TableDef, parse_type
from schemactl.model.naming import pk_name, uq_name
from schemactl.model.tableset import key_index_names

from .base import Rule, RuleContext
from .core_tables import ALEMBIC_RELATIONS, CORE_INDEXES
from .typing_rules import STRING_TYPES
from .violation import Violation

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from schemactl.model.constraints import TableReference


def is_whole_key(tdef: TableDef, columns: tuple[str, ...]) -> bool:
    """Whether ``columns`` are exactly the primary key or a unique key of ``tdef``.

    A foreign key needs a unique constraint or a plain (non-partial) unique index over
    exactly its columns: one member of a composite key is not enough.
    """
    wanted = set(columns)
    if len(wanted) != len(columns):
        return False
    if tdef.primary_key and set(tdef.primary_key) == wanted:
        return True
    if len(columns) == 1:
        col = tdef.column(columns[0])
        if col is not None and col.unique:
            return True
    return any(i.unique and set(i.columns) == wanted and len(i.columns) == len(wanted)
               and not _partial(i) and not i.functions for i in tdef.indexes)


def _partial(idx: object) -> bool:
    return bool(getattr(idx, "where", None))


def _same_type(a: str, b: str) -> bool:
    sa, sb = parse_type(a), parse_type(b)
    if sa is None or sb is None:
        return a.strip() == b.strip()
    if sa.array != sb.array:
        return False
    if sa.base in STRING_TYPES and sb.base in STRING_TYPES:
        return True
    return sa.base == sb.base


class ValidReferences(Rule):
    """A reference to a missing table or column or of another type; a duplicated name.

    ``references: table.column`` must name a column of a dynamic table in the
    proposal or of a core table, with the same type, and that column must be
    the whole primary key or a whole unique key (one member of a composite
    key is not enough: PostgreSQL refuses the foreign key). A table's composite
    ``references: [{columns, to, to_columns}]`` names as many columns on each
    side, of the same types pairwise, and ``to_columns`` are exactly the
    primary key or a whole plain unique key of ``to`` (a reference to the
    table's own key needs that key from an earlier proposal: its index would be
    built after the statement adding the foreign key). Column names are
    unique within a table, index names within the schema (with the relations
    PostgreSQL and Alembic make, such as ``alembic_version_pkc``), and every
    indexed column exists and is listed once.

    **Anti-pattern**

    ```yaml
    table: characters
    columns:
      - {name: project_id, type: bigint, references: project.id}
      - {name: name, type: text}
      - {name: name, type: text}
    indexes:
      - {columns: [nickname]}
      - {columns: [name, name]}
    references:
      - {columns: [project_id, name], to: projects, to_columns: [id, title]}
    ```

    **Best practice**

    ```yaml
    table: characters
    columns:
      - {name: project_id, type: uuid, references: projects.id}
      - {name: name, type: text}
    indexes:
      - {columns: [name]}
    ```
    """

    code = "SC405"
    name = "valid-references"
    hint = ("reference an existing table.column of the same type that is a primary key or "
            "unique; give every column and index its own name")

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        changed = [ch.after for ch in ctx.proposed_changes if ch.after is not None]
        if not changed:
            return
        core = self._core_owners(ctx)
        for tdef in changed:
            yield from self._duplicates(tdef, lambda n: self._owners(ctx, core, n))
            for col in tdef.columns:
                if col.references:
                    yield from self._reference(ctx, tdef, col)
            for ref in tdef.references:
                yield from self._table_reference(ctx, tdef, ref)

    @staticmethod
    def _core_owners(ctx: RuleContext) -> dict[str, set[str]]:
        """Relation name → core tables owning it (tables, primary keys, unique, indexes)."""
        owners: dict[str, set[str]] = {}
        for tname, cols in ctx.core.items():
            owners.setdefault(tname, set()).add(tname)
            owners.setdefault(pk_name(tname), set()).add(tname)
            for cname, ccol in cols.items():
                if ccol.unique:
                    owners.setdefault(uq_name(tname, cname), set()).add(tname)
        for iname, tname in {**CORE_INDEXES, **ALEMBIC_RELATIONS}.items():
            owners.setdefault(iname, set()).add(tname)
        return owners

    @staticmethod
    def _owners(ctx: RuleContext, core: dict[str, set[str]], name: str) -> set[str]:
        """Tables owning relation ``name`` in the proposed state or the core schema.

        Primary keys and unique constraints are indexes too (``pk_<table>``,
        ``uq_<table>_<column>``): their names share the schema's namespace with tables and
        indexes, so an index or table named like one fails in PostgreSQL.
        """
        return set(ctx.relation_owners(name)) | core.get(name, set())

    def _duplicates(self, tdef: TableDef, owners: Callable[[str], set[str]]
                    ) -> Iterator[Violation]:
        t = tdef.table
        seen: set[str] = set()
        for col in tdef.columns:
            if col.name in seen:
                yield self.violation(f"column {t}.{col.name} is defined twice", table=t,
                                     column=col.name, tdef=tdef)
            seen.add(col.name)
        for other in sorted(owners(t) - {t}):
            yield self.violation(f"table name {t} is already taken by {other} (one of its "
                                 "indexes or keys, or the view its table rename leaves)",
                                 table=t, tdef=tdef, hint="give the table another name; a "
                                 "rename's view goes with the proposal that drops renamed_from")
        index_names: set[str] = set(key_index_names(tdef))
        for idx in tdef.indexes:
            iname = idx.index_name(t)
            if iname in index_names:
                yield self.violation(f"index name {iname} is used twice in {t}", table=t,
                                     tdef=tdef, hint="give each index its own name (or columns); "
                                     "a `unique: true` column already has its unique index")
            index_names.add(iname)
            others = owners(iname) - {t}
            if others or iname == t:
                yield self.violation(f"index name {iname} is already taken by "
                                     f"{', '.join(sorted(others)) or 'the table itself'}",
                                     table=t, tdef=tdef, hint="give the index another `name`")
            if not idx.columns:
                yield self.violation(f"an index of {t} lists no columns", table=t, tdef=tdef)
            keys = idx.key_words
            twice = sorted({c for c in keys if keys.count(c) > 1})
            if twice:
                yield self.violation(f"index {iname} of {t} lists {', '.join(twice)} twice",
                                     table=t, tdef=tdef,
                                     hint="list each column once in an index")
            for c in idx.columns:
                if c not in seen:
                    yield self.violation(f"index of {t} names the unknown column {c}", table=t,
                                         tdef=tdef, hint="index only columns the table defines")

    def _reference(self, ctx: RuleContext, tdef: TableDef, col: Column) -> Iterator[Violation]:
        t, ref = tdef.table, col.references or ""
        parts = ref.split(".")
        if len(parts) > 2:
            return  # schema-qualified: core-protected (SC501) reports it
        if len(parts) != 2 or not all(parts):
            yield self.violation(f"{t}.{col.name} references {ref!r}, not table.column",
                                 table=t, column=col.name, tdef=tdef,
                                 hint="write the reference as table.column, e.g. projects.id")
            return
        rtable, rcol = parts
        target_type: str | None = None
        keyed = False
        if rtable in ctx.proposed:
            target = ctx.proposed[rtable].column(rcol)
            if target is not None:
                target_type, keyed = target.type, is_whole_key(ctx.proposed[rtable], (rcol,))
        elif rtable in ctx.core:
            core_col = ctx.core[rtable].get(rcol)
            if core_col is not None:
                target_type, keyed = core_col.type, core_col.primary_key or core_col.unique
        else:
            yield self.violation(f"{t}.{col.name} references the unknown table {rtable}",
                                 table=t, column=col.name, tdef=tdef,
                                 hint=_renamed_hint(ctx, rtable) or (
                                     f"propose {rtable} first (a dynamic table) or reference "
                                     "a core table such as agents.id"))
            return
        if target_type is None:
            yield self.violation(f"{t}.{col.name} references the unknown column {ref}",
                                 table=t, column=col.name, tdef=tdef,
                                 hint=f"reference a column {rtable} defines, usually "
                                      f"{rtable}.id")
            return
        if not _same_type(col.type, target_type):
            yield self.violation(f"{t}.{col.name} is {col.type} but references {ref} of type "
                                 f"{target_type}", table=t, column=col.name, tdef=tdef,
                                 hint=f"declare {col.name} as {target_type}")
        if not keyed:
            yield self.violation(f"{t}.{col.name} references {ref}, which is neither the "
                                 f"primary key nor a whole unique key of {rtable}", table=t,
                                 column=col.name, tdef=tdef,
                                 hint="reference the primary key (usually id) of the table, or "
                                      "give the column `unique: true`")

    def _table_reference(self, ctx: RuleContext, tdef: TableDef, ref: TableReference
                         ) -> Iterator[Violation]:
        """A composite reference: same number of columns, pairwise types, a whole key."""
        t, to = tdef.table, ref.to
        what = f"{t}({', '.join(ref.columns)}) → {to}({', '.join(ref.to_columns)})"

        def v(message: str, hint: str | None = None) -> Violation:
            return self.violation(f"{what}: {message}", table=t, column=ref.columns[0],
                                  tdef=tdef, hint=hint)

        if "." in to:
            return  # schema-qualified: core-protected (SC501) reports it
        if len(ref.columns) != len(ref.to_columns):
            yield v(f"{len(ref.columns)} columns reference {len(ref.to_columns)}",
                    hint="name as many columns in to_columns as in columns, pairwise")
            return
        for side, cols in (("columns", ref.columns), ("to_columns", ref.to_columns)):
            twice = sorted({c for c in cols if cols.count(c) > 1})
            if twice:
                yield v(f"{side} lists {', '.join(twice)} twice", hint="list each column once")
                return
        for c in ref.columns:
            if tdef.column(c) is None:
                yield v(f"{t} has no column {c}", hint=f"reference from columns {t} defines")
        types: dict[str, str] = {}
        if to in ctx.proposed:
            target = ctx.proposed[to]
            types = {c.name: c.type for c in target.columns}
            keyed = is_whole_key(target, ref.to_columns)
            at_head = to in ctx.current and is_whole_key(ctx.current[to], ref.to_columns)
            if keyed and to == t and not at_head:
                # One migration would build the key's index after the statement that adds
                # the foreign key (CONCURRENTLY after the transaction, or after CREATE
                # TABLE): it cannot be referenced yet. Another table's key comes from its
                # own, earlier proposal.
                yield v(f"the key of {to} over ({', '.join(ref.to_columns)}) is new in the "
                        "same proposal", hint="propose the unique index first, then the "
                                              "reference to it")
        elif to in ctx.core:
            core = ctx.core[to]
            types = {n: c.type for n, c in core.items()}
            pk = {n for n, c in core.items() if c.primary_key}
            keyed = pk == set(ref.to_columns) or (len(ref.to_columns) == 1 and all(
                core[c].unique for c in ref.to_columns if c in core))
        else:
            yield v(f"references the unknown table {to}",
                    hint=_renamed_hint(ctx, to)
                    or f"propose {to} first (a dynamic table) or reference a core table")
            return
        for mine, theirs in zip(ref.columns, ref.to_columns, strict=True):
            if theirs not in types:
                yield v(f"{to} has no column {theirs}",
                        hint=f"reference columns {to} defines")
                return
            col = tdef.column(mine)
            if col is not None and not _same_type(col.type, types[theirs]):
                yield v(f"{mine} is {col.type} but {to}.{theirs} is {types[theirs]}",
                        hint=f"declare {mine} as {types[theirs]}")
        if not keyed:
            hint = (f"a core table's keys are fixed: reference {to}'s primary key" if to in
                    ctx.core and to not in ctx.proposed else
                    f"add {{columns: [{', '.join(ref.to_columns)}], unique: true}} to the "
                    f"indexes of {to} (not partial, plain columns), or reference its "
                    "primary key")
            yield v(f"({', '.join(ref.to_columns)}) is neither the primary key nor a whole "
                    f"unique key of {to}", hint=hint)


def _renamed_hint(ctx: RuleContext, name: str) -> str | None:
    """The hint for a reference to the old name of a table renamed online (a view)."""
    renamed = sorted(t for t in ctx.relation_owners(name)
                     if t in ctx.proposed and ctx.proposed[t].renamed_from == name)
    if not renamed:
        return None
    return (f"{name} is the old name of {renamed[0]} (a view until the contract, and a key "
            f"points at a table): reference {renamed[0]}")
