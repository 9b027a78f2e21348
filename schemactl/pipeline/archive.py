"""The archive schema: where rolled-back tables and column values go instead of a DROP.

A rollback never drops (DESIGN.md, Rollback): the generated downgrade moves a table
it created into ``schemactl_archive`` and copies a column's values into an archive
table before the column goes, recording each move in
``schemactl_archive.archive_registry``. This module reads that schema:

- :func:`snapshot` and :func:`diff` tell what one rollback archived, by comparing the
  catalog before and after (a moved table keeps its oid; an archived column is the
  column that left a table and appears in a new archive table), so the report does not
  depend on the names the migration chose;
- :func:`list_entries` describes everything the archive holds (source, revision, rows,
  time), from the registry, falling back to the archive table's name and columns.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemactl.codegen.sqltext import sql_literal
from schemactl.model.naming import (
    ARCHIVE_REGISTRY,
    ARCHIVE_SCHEMA,
    DYNAMIC_SCHEMA,
    IDENTIFIER_CHARS,
)

if TYPE_CHECKING:
    from schemactl.adapters.database import Target


# query(sql) -> rows: a psycopg connection or cursor, or a SQLAlchemy connection, wrapped.
Query = Callable[[str], list[tuple[Any, ...]]]

# <table>__<column>__<revision>[_n] or <table>__<revision>[_n]; revisions are NNNN_<hex8>.
_NAME = re.compile(rf"^(?P<table>{IDENTIFIER_CHARS}?)__(?:(?P<column>{IDENTIFIER_CHARS}?)__)?"
                   r"(?P<revision>\d{4}_[0-9a-f]{8})(?:_\d+)?$")


@dataclass(frozen=True)
class Relation:
    """One table of the dynamic or the archive schema, as the catalog shows it."""

    schema: str
    name: str
    columns: frozenset[str]


Snapshot = dict[int, Relation]


def snapshot(query: Query, schema: str = DYNAMIC_SCHEMA) -> Snapshot:
    """Every table of ``schema`` and of the archive schema, by oid, with its column names."""
    rows = query(
        "select c.oid::bigint, n.nspname, c.relname, "
        "coalesce(array_agg(a.attname::text) filter (where a.attnum > 0 "
        "and not a.attisdropped), '{}') "
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "left join pg_attribute a on a.attrelid = c.oid "
        f"where c.relkind in ('r', 'p') and n.nspname in ({sql_literal(schema)}, "
        f"{sql_literal(ARCHIVE_SCHEMA)}) group by 1, 2, 3")
    return {int(r[0]): Relation(str(r[1]), str(r[2]), frozenset(r[3] or ())) for r in rows}


def sqlalchemy_query(connection: Any) -> Query:
    """A :data:`Query` over a SQLAlchemy connection (inside its current transaction)."""
    from sqlalchemy import text

    return lambda sql: [tuple(r) for r in connection.execute(text(sql)).fetchall()]


def cursor_query(cursor: Any) -> Query:
    """A :data:`Query` over a DB-API (psycopg) cursor or connection."""

    def run(sql: str) -> list[tuple[Any, ...]]:
        cur = cursor.execute(sql)
        return [tuple(r) for r in (cur if cur is not None else cursor).fetchall()]

    return run


def diff(before: Snapshot, after: Snapshot, schema: str = DYNAMIC_SCHEMA) -> list[dict[str, str]]:
    """What moved into the archive between two snapshots: ``[{kind, from, to}]``.

    A table whose oid went from ``schema`` to the archive moved there (kind ``table``). A
    new archive table holding a column that left a table of ``schema`` archived that
    column (kind ``column``); any other new archive table is reported with ``from`` None.
    """
    lost: dict[str, list[tuple[str, str]]] = {}
    for oid, rel in before.items():
        now = after.get(oid)
        if rel.schema == schema and now is not None and now.schema == schema:
            for col in sorted(rel.columns - now.columns):
                lost.setdefault(col, []).append((rel.name, col))
    out: list[dict[str, str]] = []
    for oid, rel in sorted(after.items(), key=lambda kv: kv[1].name):
        if rel.schema != ARCHIVE_SCHEMA or rel.name == ARCHIVE_REGISTRY:
            continue
        old = before.get(oid)
        if old is not None:
            if old.schema == schema:
                out.append({"kind": "table", "from": f"{schema}.{old.name}",
                            "to": f"{ARCHIVE_SCHEMA}.{rel.name}"})
            continue
        sources = [src for col in sorted(rel.columns) for src in lost.get(col, [])]
        # Two tables losing a column of the same name: the archive name starts with its table.
        sources.sort(key=lambda s: not rel.name.startswith(f"{s[0]}__"))
        source = f"{schema}.{sources[0][0]}.{sources[0][1]}" if sources else None
        out.append({"kind": "column" if sources else "unknown", "from": source or "",
                    "to": f"{ARCHIVE_SCHEMA}.{rel.name}"})
    return out


@dataclass(frozen=True)
class ArchiveEntry:
    """One table of the archive schema, described."""

    archive_table: str
    kind: str
    source: str | None
    source_table: str | None
    source_column: str | None
    revision: str | None
    rows: int
    archived_at: str | None

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def list_entries(conn: Any, schema: str = DYNAMIC_SCHEMA) -> list[ArchiveEntry]:
    """Everything the archive schema holds, oldest first (``conn``: a psycopg connection).

    The registry row of a table (the newest when there are several) gives its source,
    revision and time; a table the registry does not know is described from its name
    (``<table>__<column>__<revision>``) and its ``archived_at`` column.
    """
    from psycopg import sql

    tables = [str(r[0]) for r in conn.execute(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relkind in ('r', 'p') and c.relname <> %s "
        "order by c.relname", (ARCHIVE_SCHEMA, ARCHIVE_REGISTRY)).fetchall()]
    registry: dict[str, tuple[Any, ...]] = {}
    has_registry = conn.execute("select to_regclass(%s)",
                                (f"{ARCHIVE_SCHEMA}.{ARCHIVE_REGISTRY}",)).fetchone()
    if has_registry and has_registry[0]:
        for r in conn.execute(sql.SQL(
                "select archive_table, kind, source_schema, source_table, source_column, "
                "revision, to_char(archived_at at time zone 'UTC', "
                "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') from {}.{} order by id").format(
                    sql.Identifier(ARCHIVE_SCHEMA), sql.Identifier(ARCHIVE_REGISTRY))).fetchall():
            registry[str(r[0])] = tuple(r)
    out: list[ArchiveEntry] = []
    at: str | None
    source: str | None
    for name in tables:
        ident = sql.Identifier(ARCHIVE_SCHEMA, name)
        count = conn.execute(sql.SQL("select count(*) from {}").format(ident)).fetchone()
        rows = int(count[0]) if count else 0
        reg = registry.get(name)
        if reg is not None:
            _t, kind, src_schema, src_table, src_col, revision, at = reg
            source = ".".join(x for x in (src_schema, src_table, src_col) if x)
            out.append(ArchiveEntry(f"{ARCHIVE_SCHEMA}.{name}", str(kind), source,
                                    src_table, src_col, revision, rows, at))
            continue
        m = _NAME.match(name)
        table = m.group("table") if m else None
        column = m.group("column") if m else None
        at = None
        has_at = conn.execute(
            "select 1 from information_schema.columns where table_schema = %s "
            "and table_name = %s and column_name = 'archived_at'", (ARCHIVE_SCHEMA, name)
        ).fetchone()
        if has_at and column:
            got = conn.execute(sql.SQL(
                "select to_char(max(archived_at) at time zone 'UTC', "
                "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') from {}").format(ident)).fetchone()
            at = got[0] if got else None
        source = ".".join(x for x in (schema, table, column) if x) if table else None
        out.append(ArchiveEntry(f"{ARCHIVE_SCHEMA}.{name}",
                                "column" if column else ("table" if table else "unknown"),
                                source, table, column, m.group("revision") if m else None,
                                rows, at))
    return sorted(out, key=lambda e: (e.archived_at or "", e.archive_table))


def archive_entries(target: Target) -> list[dict[str, Any]]:
    """What the archive schema holds, as JSON (see :func:`list_entries`)."""
    from schemactl.adapters.database import connect

    with connect(target) as conn:
        return [e.to_json() for e in list_entries(conn, DYNAMIC_SCHEMA)]
