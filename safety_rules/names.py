"""The names a definition introduces, for the naming rules."""

from __future__ import annotations

from collections.abc import Iterator

from schemactl.model.definitions import TableDef


def names_of(tdef: TableDef) -> Iterator[tuple[str, str, str | None]]:
    """(kind, name, column) for the table, its columns, explicit index names and opclasses."""
    yield "table", tdef.table, None
    for col in tdef.columns:
        yield "column", col.name, col.name
    for idx in tdef.indexes:
        if idx.name is not None:
            yield "index", idx.name, None
        for c in idx.columns:
            yield "indexed column", c, None
    for ref in tdef.references:
        for c in ref.columns:
            yield "referencing column", c, None


def reference_parts(tdef: TableDef) -> Iterator[tuple[str, str]]:
    """(column, part) for each dot-separated part of each ``references``."""
    for col in tdef.columns:
        if col.references:
            for part in col.references.split("."):
                yield col.name, part
    for ref in tdef.references:
        for part in (*ref.to.split("."), *ref.to_columns):
            yield ref.columns[0], part
