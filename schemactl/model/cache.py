"""The parse cache: normalised definitions by git blob id, and per-tree indexes of their facts.

Stored in ``.schemactl/cache/definitions.sqlite3``: each definition as JSON of the
normalised model (`schemactl.model.records`, never pickle), keyed by its git blob id
(content-addressed, so it cannot go stale); each tree of dynamic_schema/ as an index of
its facts (`schemactl.model.treeindex`), so whole-state questions are point queries and
nothing unchanged is read again. Work-tree files are known by stat key and content hash
(their blob id).

The cache is only ever a shortcut: a row whose digest does not match, a file that is
not a database, or one written by another schemactl version or model schema is
ignored and rebuilt; any failure to read or write it falls back to parsing from git.
Writes are SQLite transactions (atomic; safe with concurrent processes).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path

from schemactl.model.config import package_version
from schemactl.model.definitions import TableDef
from schemactl.model.records import model_schema, table_from_record, to_record
from schemactl.model.repo import CACHE_PATH
from schemactl.model.tableset import fact_keys

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any

CACHE_DIR = CACHE_PATH.parent
CACHE_FILE = CACHE_PATH.name
LAYOUT = 4  # the tables below and what they index; bump when either changes
# Racy-git: a file modified within this window of being recorded may change again
# without its mtime moving, so its recorded hash is not trusted.
RACY_NS = 2_000_000_000

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE blobs (blob TEXT PRIMARY KEY, tname TEXT NOT NULL, names TEXT NOT NULL,
                    model TEXT NOT NULL, digest TEXT NOT NULL);
CREATE TABLE trees (tree TEXT PRIMARY KEY, parent TEXT, depth INTEGER NOT NULL,
                    tables INTEGER NOT NULL, rows INTEGER NOT NULL, names INTEGER NOT NULL,
                    used REAL NOT NULL);
CREATE TABLE tree_tables (tree TEXT NOT NULL, path TEXT NOT NULL, tname TEXT, blob TEXT,
                          PRIMARY KEY (tree, path)) WITHOUT ROWID;
CREATE INDEX tree_tables_by_name ON tree_tables (tree, tname);
CREATE TABLE tree_names (tree TEXT NOT NULL, name TEXT NOT NULL, tname TEXT NOT NULL,
                         blob TEXT NOT NULL, PRIMARY KEY (tree, name, tname)) WITHOUT ROWID;
CREATE TABLE worktree (path TEXT PRIMARY KEY, size INTEGER NOT NULL,
                       mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
                       inode INTEGER NOT NULL, blob TEXT NOT NULL, seen_ns INTEGER NOT NULL);
"""


def cache_version() -> str:
    """What a cache must have been written by: schemactl's version, model schema, layout."""
    return f"{package_version()}/{model_schema()}/{LAYOUT}"


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\0".join(parts).encode("utf-8", "surrogatepass"),
                           digest_size=16).hexdigest()


class CacheUnusable(Exception):
    """The cache cannot answer (corrupt, locked, unwritable): callers parse from git."""


def _decode(tdef_json: str) -> TableDef:
    return table_from_record(json.loads(tdef_json))


class DefinitionCache:
    """One repository's parse cache (an SQLite file); every method may raise CacheUnusable."""

    def __init__(self, root: Path, *, create: bool = True) -> None:
        import sqlite3

        self.root = root
        self.path = root / CACHE_DIR / CACHE_FILE
        self._sqlite = sqlite3
        self.models: dict[str, TableDef] = {}  # blob → definition, shared by every tree
        try:
            if not self.path.exists():
                if not create:
                    raise CacheUnusable("no cache yet")
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = self._open()
        except (OSError, sqlite3.Error) as exc:
            raise CacheUnusable(str(exc)) from exc

    def _open(self) -> Any:
        sqlite3 = self._sqlite
        for attempt in (1, 2):
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None,
                                 check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                rows = dict(db.execute("SELECT key, value FROM meta").fetchall()) \
                    if db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone() \
                    else {}
                if rows.get("version") == cache_version():
                    return db
                # Empty, foreign or from another version: start afresh.
                db.execute("BEGIN IMMEDIATE")
                for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'"
                                          ).fetchall():
                    db.execute(f'DROP TABLE IF EXISTS "{name}"')
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT INTO meta VALUES ('version', ?)", (cache_version(),))
                db.execute("COMMIT")
                return db
            except sqlite3.DatabaseError:
                db.close()
                if attempt == 2:
                    raise
                # Not a database (or damaged past reading): remove it and its journals.
                for suffix in ("", "-wal", "-shm", "-journal"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        raise CacheUnusable("unreachable")

    def run(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn``; a database error becomes CacheUnusable."""
        try:
            return fn()
        except self._sqlite.Error as exc:
            raise CacheUnusable(str(exc)) from exc

    def fetch(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        return list(self.run(lambda: self.db.execute(sql, tuple(args)).fetchall()))

    def close(self) -> None:
        try:
            self.db.close()
        except self._sqlite.Error:
            pass

    # -- definitions by blob ------------------------------------------------------------

    def model(self, blob: str, path: str) -> TableDef | None:
        """The cached definition of a blob (its source set to ``path``), None if absent
        or damaged."""
        tdef = self.models.get(blob)
        if tdef is None:
            row = self.run(lambda: self.db.execute(
                "SELECT tname, names, model, digest FROM blobs WHERE blob = ?",
                (blob,)).fetchone())
            if row is None or _digest(blob, row[0], row[1], row[2]) != row[3]:
                return None
            try:
                tdef = _decode(row[2])
            except (ValueError, TypeError, KeyError, RecursionError):
                return None
            if tdef.table != row[0]:
                return None
            self.models[blob] = tdef
        return tdef if tdef.source == path else replace(tdef, source=path)

    def models_of(self, blobs: Iterable[str]) -> dict[str, TableDef]:
        """blob → cached definition (source as cached) for the blobs cached intact: one
        query per 500, for callers that need every definition of a tree."""
        given = list(dict.fromkeys(blobs))
        out = {b: self.models[b] for b in given if b in self.models}
        wanted = [b for b in given if b not in out]
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT blob, tname, names, model, digest FROM blobs WHERE blob IN ({marks})"
            for blob, tname, names, model, digest in self.fetch(sql, chunk):
                if _digest(blob, tname, names, model) != digest:
                    continue
                try:
                    tdef = _decode(model)
                except (ValueError, TypeError, KeyError, RecursionError):
                    continue
                if tdef.table == tname:
                    self.models[blob] = out[blob] = tdef
        return out

    def facts(self, blobs: Iterable[str]) -> dict[str, tuple[str, list[str]]]:
        """blob → (table, owned relation names) for the blobs cached intact."""
        wanted = list(blobs)
        out: dict[str, tuple[str, list[str]]] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT blob, tname, names, model, digest FROM blobs WHERE blob IN ({marks})"
            rows = self.run(partial(self.fetch, sql, chunk))
            for blob, tname, names, model, digest in rows:
                if _digest(blob, tname, names, model) == digest:
                    try:
                        out[blob] = (tname, list(json.loads(names)))
                    except ValueError:
                        continue
        return out

    def put_models(self, items: Iterable[tuple[str, TableDef]]) -> None:
        rows = []
        for blob, tdef in items:
            self.models[blob] = tdef
            names = json.dumps(fact_keys(tdef))
            model = json.dumps(to_record(tdef), separators=(",", ":"))
            rows.append((blob, tdef.table, names, model, _digest(blob, tdef.table, names, model)))
        if rows:
            self.write(lambda: self.db.executemany(
                "INSERT OR REPLACE INTO blobs VALUES (?, ?, ?, ?, ?)", rows))

    def write(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` in one write transaction (all of it or nothing)."""
        def txn() -> None:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                fn()
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        self.run(txn)

    # -- work-tree files ----------------------------------------------------------------

    def worktree(self) -> dict[str, tuple[tuple[int, int, int, int], str, int]]:
        """path → (stat key, blob id, when recorded) of work-tree files seen before."""
        return {r[0]: ((r[1], r[2], r[3], r[4]), r[5], r[6])
                for r in self.run(lambda: self.db.execute(
                    "SELECT path, size, mtime_ns, ctime_ns, inode, blob, seen_ns FROM worktree"
                ).fetchall())}

    def put_worktree(self, rows: list[tuple[str, os.stat_result, str]], keep: set[str]
                     ) -> None:
        """Record work-tree files by stat key and blob id; forget files no longer there."""
        now = time.time_ns()

        def fill() -> None:
            self.db.executemany("INSERT OR REPLACE INTO worktree VALUES (?, ?, ?, ?, ?, ?, ?)",
                                [(p, *stat_key(st), b, now) for p, st, b in rows])
            stale = [(p,) for (p,) in self.db.execute("SELECT path FROM worktree").fetchall()
                     if p not in keep]
            self.db.executemany("DELETE FROM worktree WHERE path = ?", stale)
        self.write(fill)


def stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    """Size, mtime, ctime and inode: any write (or utime) moves ctime, which cannot be set."""
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def trusted_stat(entry: tuple[tuple[int, int, int, int], str, int] | None,
                 st: os.stat_result) -> str | None:
    """The recorded blob id of a work-tree file when its stat key still matches and it was
    not modified within RACY_NS of being recorded (then it could change unseen)."""
    if entry is None:
        return None
    key, blob, seen_ns = entry
    if key != stat_key(st) or max(st.st_mtime_ns, st.st_ctime_ns) >= seen_ns - RACY_NS:
        return None
    return blob
