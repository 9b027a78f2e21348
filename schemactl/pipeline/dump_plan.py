"""What a pre-change dump holds: its scope, the rows it keeps, and the marks to compare later.

`schemactl.pipeline.backup` runs the dump; this module decides its tables (the touched ones
that exist, with their partitions; every other relation is dumped without data) and takes
the marks `rollback --restore-backup` compares with: for a scoped backup in the very
snapshot pg_dump dumps (:class:`Snapshot`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemactl.adapters import pgtools
from schemactl.adapters.database import Target, connect
from schemactl.errors import EnvironmentError_, SchemactlError
from schemactl.model.naming import DYNAMIC_SCHEMA
from schemactl.model.repo import SchemaRepo

if TYPE_CHECKING:
    import psycopg

    from schemactl.pipeline.scope import Touches


def relations(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """(schema, table) of every relation pg_dump may dump data of."""
    rows = conn.execute(
        "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where c.relkind in ('r', 'p', 'm') and n.nspname not in ('pg_catalog', "
        "'information_schema') and n.nspname not like 'pg\\_toast%%' "
        "and n.nspname not like 'pg\\_temp%%' order by 1, 2").fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def data_tables(conn: psycopg.Connection[Any], touched: tuple[str, ...]) -> list[str]:
    """The touched tables that exist now, with their partitions (their rows live there)."""
    out: list[str] = []
    for qualified in touched:
        schema, _, table = qualified.partition(".")
        # pg_partition_tree is empty for a plain table: the table itself comes first.
        rows = conn.execute(
            "with r as (select to_regclass(%s) as oid), t as ("
            "  select r.oid as relid, -1 as level from r where r.oid is not null"
            "  union select p.relid, p.level from r, pg_partition_tree(r.oid) p) "
            "select n.nspname, c.relname from t join pg_class c on c.oid = t.relid "
            "join pg_namespace n on n.oid = c.relnamespace order by t.level, 1, 2",
            (pgtools.table_pattern(schema, table),)).fetchall()
        for r in rows:
            name = f"{r[0]}.{r[1]}"
            if name not in out:
                out.append(name)
    return out


def count_rows(conn: psycopg.Connection[Any], qualified: str) -> int:
    from psycopg import sql

    schema, _, table = qualified.partition(".")
    got = conn.execute(sql.SQL("select count(*) from only {}.{}").format(
        sql.Identifier(schema), sql.Identifier(table))).fetchone()
    return int(got[0]) if got else 0


def write_marks(repo: SchemaRepo, target: Target) -> dict[str, Any] | None:
    """What `rollback --restore-backup` compares with later: a transaction id and row counts.

    ``txid`` is a fresh ``txid_current()``: a row whose ``xmin`` is at least as new was written
    after it. ``row_counts`` holds the exact count of every dynamic table (definitions at HEAD)
    that exists. None when they cannot be taken: the backup itself never fails for them.
    """
    import psycopg

    from schemactl.model.loading import tables_at_rev

    schema = DYNAMIC_SCHEMA
    try:
        tables = sorted(tables_at_rev(repo.root, "HEAD"))  # names, from the cache's index
        with connect(target) as conn:
            row = conn.execute("select txid_current()").fetchone()
            conn.commit()
            counts: dict[str, int] = {}
            for table in tables:
                reg = conn.execute("select to_regclass(%s)",
                                   (pgtools.table_pattern(schema, table),)).fetchone()
                if reg and reg[0]:
                    counts[table] = count_rows(conn, f"{schema}.{table}")
        return {"txid": int(row[0]) if row else None, "row_counts": counts}
    except (psycopg.Error, SchemactlError):
        return None


@dataclass(frozen=True)
class DumpPlan:
    scope: str                      # "touched" or "full"
    reason: str | None              # why it is full
    data: list[str]                 # schema.table whose data the dump holds
    excluded: list[str]             # schema.table dumped without data
    marks: dict[str, Any] | None    # see write_marks (full scope; a scoped one counts later)
    estimate: int                   # bytes to expect (for progress)


def plan_dump(repo: SchemaRepo, target: Target, touches: Touches | None) -> DumpPlan:
    """What the dump holds (a full one: also the marks to compare with later)."""
    config = repo.config
    reason = None
    if config.backup_scope == "full":
        reason = '[backup] scope = "full"'
    elif touches is None:
        reason = "the run did not say what it touches"
    elif touches.full:
        reason = touches.full
    with connect(target) as conn:
        everything = [f"{s}.{t}" for s, t in relations(conn)]
        if reason is not None:
            row = conn.execute("select pg_database_size(current_database())").fetchone()
            conn.commit()
            return DumpPlan("full", reason, everything, [], write_marks(repo, target),
                          int(row[0]) if row else 0)
        assert touches is not None
        data = data_tables(conn, touches.tables)
        size = 0
        for t in data:
            got = conn.execute("select pg_table_size(to_regclass(%s))",
                               (pgtools.table_pattern(*t.split(".", 1)),)).fetchone()
            size += int(got[0] or 0) if got else 0
    return DumpPlan("touched", None, data, [t for t in everything if t not in data], None, size)


class Snapshot:
    """A snapshot exported for pg_dump (``--snapshot``), and the row counts taken in it.

    The data tables are counted in the very snapshot pg_dump dumps, on a thread while it
    runs: the manifest's counts are exactly the dump's rows, at no extra wall time. The
    marks' ``txid`` is the snapshot's xmin: a row whose ``xmin`` is at least as new may be
    missing from the dump, so a later restore counts it as written since (more careful,
    never less).
    """

    def __init__(self, target: Target, data: list[str]) -> None:
        import threading

        self.conn = connect(target)
        self.conn.execute("begin isolation level repeatable read")
        row = self.conn.execute("select pg_export_snapshot(), "
                                "pg_snapshot_xmin(pg_current_snapshot())::text").fetchone()
        assert row is not None
        self.id, self.xmin = str(row[0]), int(row[1])
        self.counts: dict[str, int] = {}
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._count, args=(data,), daemon=True)
        self._thread.start()

    def _count(self, data: list[str]) -> None:
        try:
            for t in data:
                self.counts[t] = count_rows(self.conn, t)
        except BaseException as exc:  # noqa: BLE001 - reported by marks()
            self.error = exc

    def marks(self) -> dict[str, Any]:
        """Wait for the counts; the marks of a scoped backup."""
        self._thread.join()
        if self.error is not None:
            raise EnvironmentError_(f"counting the rows of the backup failed: {self.error}",
                                    code="backup_failed")
        return {"txid": self.xmin,
                "row_counts": {t.split(".", 1)[1]: n for t, n in self.counts.items()
                               if t.split(".", 1)[0] == DYNAMIC_SCHEMA}}

    def close(self) -> None:
        self._thread.join(timeout=60)
        try:
            self.conn.rollback()
        finally:
            self.conn.close()
