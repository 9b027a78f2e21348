"""Sets of definitions with indexed facts: what rules ask of the whole state, by key.

A :class:`TableSet` is a read-only table name → :class:`TableDef` mapping that also
answers "which tables own this relation name" (a table, one of its indexes, its primary
key or unique constraints share the schema's namespace) without walking every
definition. :class:`DictTables` holds parsed definitions; `schemactl.model.cache` backs
one with the parse cache (definitions loaded on first use); :class:`Overlay` is a base
set with a few tables replaced or removed (a proposal).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cached_property

from schemactl.model.definitions import TableDef
from schemactl.model.naming import pk_name, uq_name


def key_index_names(tdef: TableDef) -> list[str]:
    """The indexes behind a table's primary key and unique columns (as migrations name them)."""
    names = [pk_name(tdef.table)] if tdef.primary_key else []
    return names + [uq_name(tdef.table, c.name) for c in tdef.columns
                    if c.unique and not c.primary_key]


def owned_names(tdef: TableDef) -> list[str]:
    """Every relation name a table takes in the schema: itself, its indexes and keys, and
    while a table rename is under way (``renamed_from``) the view left under the old name."""
    view = [tdef.renamed_from] if tdef.renamed_from else []
    return [tdef.table, *view, *(i.index_name(tdef.table) for i in tdef.indexes),
            *key_index_names(tdef)]


# Index key of "references this table": a NUL cannot be in an identifier (SC401).
REFERS = "\0refers:"


def fact_keys(tdef: TableDef) -> list[str]:
    """What the index files a table under: its relation names, and each table it
    references (``REFERS`` + name)."""
    refs = sorted(tdef.referenced_tables)
    return owned_names(tdef) + [REFERS + r for r in refs]


class TableSet(Mapping[str, TableDef]):
    """A read-only set of definitions by table name, with indexed facts."""

    def owners_of(self, name: str) -> frozenset[str]:
        """The tables owning relation ``name`` (named so, or an index or key named so)."""
        raise NotImplementedError

    def referrers(self, table: str) -> frozenset[str]:
        """The tables with a column that references ``table``."""
        return self.owners_of(REFERS + table)

    def identity(self, table: str) -> str | None:
        """A token equal for two sets' entries when their definitions' bytes are equal
        (a git blob id), or None when unknown (then compare the definitions)."""
        return None

    def at_path(self, path: str) -> str | None:
        """The table the definition file at ``path`` defines (None: no such file)."""
        return next((t for t, d in self.items() if d.source == path), None)

    def paths(self) -> dict[str, tuple[str, str | None]]:
        """Source path → (table, identity) of every definition."""
        return {d.source: (t, self.identity(t)) for t, d in self.items()}


class DictTables(TableSet):
    """Parsed definitions in memory; owners found by one walk on first use."""

    def __init__(self, tables: Mapping[str, TableDef],
                 identities: Mapping[str, str] | None = None) -> None:
        self._tables = dict(tables)
        self._ids = dict(identities or {})

    def __getitem__(self, name: str) -> TableDef:
        return self._tables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)

    def __contains__(self, name: object) -> bool:
        return name in self._tables

    @cached_property
    def _owners(self) -> dict[str, frozenset[str]]:
        found: dict[str, set[str]] = {}
        for tname, tdef in self._tables.items():
            for n in fact_keys(tdef):
                found.setdefault(n, set()).add(tname)
        return {k: frozenset(v) for k, v in found.items()}

    def owners_of(self, name: str) -> frozenset[str]:
        return self._owners.get(name, frozenset())

    def identity(self, table: str) -> str | None:
        return self._ids.get(table)


def as_table_set(tables: Mapping[str, TableDef]) -> TableSet:
    return tables if isinstance(tables, TableSet) else DictTables(tables)


class Overlay(TableSet):
    """``base`` with some tables replaced (a definition) or removed (None)."""

    def __init__(self, base: Mapping[str, TableDef],
                 changes: Mapping[str, TableDef | None]) -> None:
        self.base = as_table_set(base)
        self.changes = dict(changes)

    def __getitem__(self, name: str) -> TableDef:
        if name in self.changes:
            tdef = self.changes[name]
            if tdef is None:
                raise KeyError(name)
            return tdef
        return self.base[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str) and name in self.changes:
            return self.changes[name] is not None
        return name in self.base

    def __iter__(self) -> Iterator[str]:
        for name in self.base:
            if name not in self.changes:
                yield name
        for name, tdef in self.changes.items():
            if tdef is not None:
                yield name

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def owners_of(self, name: str) -> frozenset[str]:
        kept = {t for t in self.base.owners_of(name) if t not in self.changes}
        for tname, tdef in self.changes.items():
            if tdef is not None and name in fact_keys(tdef):
                kept.add(tname)
        return frozenset(kept)

    def identity(self, table: str) -> str | None:
        return None if table in self.changes else self.base.identity(table)
