"""Entity-relationship diagrams of a schema: pure functions from SQLAlchemy metadata to text.

- :func:`mermaid`: a Mermaid ``erDiagram`` (GitHub and GitLab render it in Markdown);
- :func:`dot`: Graphviz DOT with one HTML-like table per entity and a port per column,
  so that ``dot -Tsvg`` draws each foreign key from its column to the referenced key.

Both take the metadata `schemactl.codegen.metadata.build_metadata` gives (core models
and dynamic definitions alike) and draw the selected tables with their columns, keys
(PK, FK, UK) and foreign keys; a table outside the selection that a selected one
references, or that references one, appears by name with its edge. No database, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import MetaData, Table

FORMATS = ("mermaid", "dot")

# Mermaid's attribute type and name tokens (erDiagram grammar, ATTRIBUTE_WORD).
_MERMAID_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9\-_\[\]\(\)]*")
# Words the erDiagram lexer reads as key markers, never as attribute names.
_MERMAID_KEYS = {"pk", "fk", "uk"}
# PostgreSQL's long type names → the names definitions use.
_PG_NAMES = (
    (re.compile(r"^timestamp(\(\d+\))? with time zone"), r"timestamptz\1"),
    (re.compile(r"^timestamp(\(\d+\))? without time zone"), r"timestamp\1"),
    (re.compile(r"^time(\(\d+\))? with time zone"), r"timetz\1"),
    (re.compile(r"^time(\(\d+\))? without time zone"), r"time\1"),
    (re.compile(r"^character varying"), "varchar"),
)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    keys: tuple[str, ...]
    nullable: bool


@dataclass(frozen=True)
class Edge:
    """A foreign key: ``child.column`` references ``parent.ref_column``."""

    child: str
    column: str
    parent: str
    ref_column: str
    optional: bool  # the column is nullable: a child row may have no parent
    identifying: bool  # the column is part of the child's primary key
    one_to_one: bool  # the column is unique: at most one child per parent


@dataclass(frozen=True)
class Picture:
    """What a diagram shows: tables in full, tables by name only, and the edges."""

    tables: dict[str, tuple[Column, ...]]
    neighbours: tuple[str, ...]
    edges: tuple[Edge, ...]


def type_name(sa_type: Any) -> str:
    """The PostgreSQL name of a column type, lower case (``varchar(200)``, ``vector(3)``)."""
    try:
        from sqlalchemy.dialects import postgresql

        text = str(sa_type.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]
    except Exception:  # noqa: BLE001 - a type without a compiler still gets a name
        text = type(sa_type).__name__
    text = re.sub(r",\s+", ",", text.lower())  # numeric(10, 2) as definitions write it
    for pattern, short in _PG_NAMES:
        text = pattern.sub(short, text)
    return text


def _unique_columns(table: Table) -> set[str]:
    from sqlalchemy import UniqueConstraint

    single = {next(iter(c.columns)).name for c in table.constraints
              if isinstance(c, UniqueConstraint) and len(c.columns) == 1}
    # An expression key (lower(email)) makes no column unique by itself.
    single |= {next(iter(i.columns)).name for i in table.indexes
               if i.unique and len(i.columns) == 1 and len(i.expressions) == 1}
    return single


def picture(metadata: MetaData, tables: Iterable[str] | None = None) -> Picture:
    """The tables to draw (all when ``tables`` is None), their columns and foreign keys.

    Raises:
        KeyError: a name in ``tables`` is not in ``metadata`` (the caller says which exist).
    """
    names = sorted(metadata.tables) if tables is None else list(dict.fromkeys(tables))
    missing = [n for n in names if n not in metadata.tables]
    if missing:
        raise KeyError(", ".join(missing))
    chosen = set(names)
    drawn: dict[str, tuple[Column, ...]] = {}
    for name in names:
        table = metadata.tables[name]
        uniques = _unique_columns(table)
        cols = []
        for col in table.columns:
            keys = []
            if col.primary_key:
                keys.append("PK")
            if col.foreign_keys:
                keys.append("FK")
            if col.name in uniques and not col.primary_key:
                keys.append("UK")
            cols.append(Column(col.name, type_name(col.type), tuple(keys), bool(col.nullable)))
        drawn[name] = tuple(cols)
    edges: list[Edge] = []
    for table in sorted(metadata.tables.values(), key=lambda t: t.name):
        uniques = _unique_columns(table)
        for fkc in sorted(table.foreign_key_constraints, key=lambda c: str(c.name)):
            elems = list(fkc.elements)
            if len(elems) < 2:
                continue  # drawn with its column below
            parent = elems[0].column.table.name
            if table.name not in chosen and parent not in chosen:
                continue
            # One edge for the whole key, labelled with its columns.
            edges.append(Edge(table.name, ", ".join(e.parent.name for e in elems), parent,
                              ", ".join(e.column.name for e in elems),
                              optional=any(bool(e.parent.nullable) for e in elems),
                              identifying=all(e.parent.primary_key for e in elems),
                              one_to_one=False))
        for col in table.columns:
            for fk in sorted(col.foreign_keys, key=lambda f: f.target_fullname):
                if fk.constraint is not None and len(fk.constraint.elements) > 1:
                    continue
                parent = fk.column.table.name
                if table.name not in chosen and parent not in chosen:
                    continue
                edges.append(Edge(table.name, col.name, parent, fk.column.name,
                                  optional=bool(col.nullable), identifying=col.primary_key,
                                  one_to_one=col.name in uniques or col.primary_key))
    neighbours = sorted({n for e in edges for n in (e.child, e.parent)} - chosen)
    return Picture(drawn, tuple(neighbours), tuple(edges))


# -- Mermaid ---------------------------------------------------------------------------


def _mermaid_string(text: str) -> str:
    # A Mermaid string cannot hold a double quote; the entity code #quot; shows one.
    return '"' + text.replace('"', "#quot;") + '"'


def _mermaid_attribute(col: Column) -> str:
    notes = []
    type_word = col.type.replace(" ", "_").replace(",", "_")
    if not _MERMAID_WORD.fullmatch(type_word):
        type_word = "type"
    if type_word != col.type:
        notes.append(col.type)
    name_word = col.name
    if name_word.lower() in _MERMAID_KEYS or not _MERMAID_WORD.fullmatch(name_word):
        name_word = re.sub(r"[^A-Za-z0-9_]", "_", name_word) + "_"
        notes.append(f"column {col.name}")
    if not col.nullable and "PK" not in col.keys:
        notes.append("not null")
    line = f"{type_word} {name_word}"
    if col.keys:
        line += " " + ", ".join(col.keys)
    if notes:
        line += " " + _mermaid_string("; ".join(notes))
    return line


def mermaid(metadata: MetaData, tables: Iterable[str] | None = None) -> str:
    """A Mermaid ``erDiagram``: one entity per table with its columns, one line per FK.

    An edge reads ``parent ||..o{ child : "column"``: a parent row has zero or more
    children; ``|o`` on the parent's side when the column is nullable, ``o|`` on the
    child's side when it is unique (one to one); a solid line (``--``) when the column is
    part of the child's primary key (identifying), dashed otherwise.
    """
    pic = picture(metadata, tables)
    lines = ["erDiagram"]
    for name, cols in pic.tables.items():
        lines.append(f"    {_mermaid_string(name)} {{")
        lines += [f"        {_mermaid_attribute(c)}" for c in cols]
        lines.append("    }")
    for name in pic.neighbours:
        lines.append(f"    {_mermaid_string(name)}")
    for e in pic.edges:
        left = "|o" if e.optional else "||"
        right = "o|" if e.one_to_one else "o{"
        label = e.column if e.ref_column == "id" else f"{e.column} → {e.ref_column}"
        line = "--" if e.identifying else ".."
        lines.append(f"    {_mermaid_string(e.parent)} {left}{line}{right} "
                     f"{_mermaid_string(e.child)} : {_mermaid_string(label)}")
    return "\n".join(lines) + "\n"


# -- Graphviz DOT -----------------------------------------------------------------------


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _html(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def dot(metadata: MetaData, tables: Iterable[str] | None = None) -> str:
    """Graphviz DOT: a record-like table per entity, an edge per FK from column to key."""
    pic = picture(metadata, tables)
    lines = ["digraph schema {", "    graph [rankdir=LR, fontname=\"Helvetica\"];",
             "    node [shape=plain, fontname=\"Helvetica\"];",
             "    edge [arrowhead=crow, arrowtail=none, dir=both, fontname=\"Helvetica\"];"]
    for name, cols in pic.tables.items():
        rows = [f'<tr><td colspan="3" bgcolor="lightgrey"><b>{_html(name)}</b></td></tr>']
        for c in cols:
            rows.append(f'<tr><td port="{_html(c.name)}" align="left">{_html(c.name)}</td>'
                        f'<td align="left">{_html(c.type)}{"" if c.nullable else " not null"}'
                        f'</td><td>{_html(", ".join(c.keys))}</td></tr>')
        label = '<table border="0" cellborder="1" cellspacing="0">' + "".join(rows) + "</table>"
        lines.append(f"    {_dot_id(name)} [label=<{label}>];")
    for name in pic.neighbours:
        lines.append(f"    {_dot_id(name)} [shape=box, style=dashed];")
    for e in pic.edges:
        # A composite key's edge leaves from (and reaches) its first column's row.
        child = f"{_dot_id(e.child)}:{_dot_id(e.column.split(', ')[0])}" \
            if e.child in pic.tables else _dot_id(e.child)
        parent = f"{_dot_id(e.parent)}:{_dot_id(e.ref_column.split(', ')[0])}" \
            if e.parent in pic.tables else _dot_id(e.parent)
        tail = "teeodot" if e.optional else "teetee"
        lines.append(f"    {parent} -> {child} [arrowtail={tail}, "
                     f"arrowhead={'teeodot' if e.one_to_one else 'crowodot'}, "
                     f"label={_dot_id(e.column)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(fmt: str, metadata: MetaData, tables: Iterable[str] | None = None) -> str:
    """The diagram in ``fmt`` (``mermaid`` or ``dot``).

    Raises:
        ValueError: an unknown format.
        KeyError: an unknown table.
    """
    if fmt == "mermaid":
        return mermaid(metadata, tables)
    if fmt == "dot":
        return dot(metadata, tables)
    raise ValueError(f"unknown diagram format {fmt!r}")
