"""The parse cache: normalised definitions by git blob id, and per-tree indexes of their facts.

Stored in ``.schemactl/cache/definitions.sqlite3``: each definition as JSON of the
normalised model (`schemactl.model.records`, never pickle), keyed by its git blob id
(content-addressed, so it cannot go stale); each tree of dynamic_schema/ as rows
(table → path, blob) and (relation name → owning table), so whole-state questions are
point queries and nothing unchanged is read again. Work-tree files are known by size,
mtime and content hash (their blob id).

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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from schemactl.model.definitions import TableDef
from schemactl.model.records import model_schema, table_from_record, to_record
from schemactl.model.tableset import TableSet, owned_names

CACHE_DIR = Path(".schemactl") / "cache"
CACHE_FILE = "definitions.sqlite3"
LAYOUT = 1  # the tables below; bump when they change
KEEP_TREES = 8  # tree indexes kept (HEAD, a base branch, a few recent commits)
# Racy-git: a file modified within this window of being recorded may change again
# without its mtime moving, so its recorded hash is not trusted.
RACY_NS = 2_000_000_000

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE blobs (blob TEXT PRIMARY KEY, tname TEXT NOT NULL, names TEXT NOT NULL,
                    model TEXT NOT NULL, digest TEXT NOT NULL);
CREATE TABLE trees (tree TEXT PRIMARY KEY, tables INTEGER NOT NULL, names INTEGER NOT NULL,
                    used REAL NOT NULL);
CREATE TABLE tree_tables (tree TEXT NOT NULL, path TEXT NOT NULL, tname TEXT NOT NULL,
                          blob TEXT NOT NULL, PRIMARY KEY (tree, path)) WITHOUT ROWID;
CREATE INDEX tree_tables_by_name ON tree_tables (tree, tname);
CREATE TABLE tree_names (tree TEXT NOT NULL, name TEXT NOT NULL, tname TEXT NOT NULL,
                         PRIMARY KEY (tree, name, tname)) WITHOUT ROWID;
CREATE TABLE worktree (path TEXT PRIMARY KEY, size INTEGER NOT NULL,
                       mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
                       inode INTEGER NOT NULL, blob TEXT NOT NULL, seen_ns INTEGER NOT NULL);
"""


def package_version() -> str:
    """schemactl's version: ``schemactl.__version__``, read from the package this module
    belongs to (always imported before it) rather than imported upwards across layers."""
    import sys

    return str(getattr(sys.modules.get("schemactl"), "__version__", "unknown"))


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

    def _run(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except self._sqlite.Error as exc:
            raise CacheUnusable(str(exc)) from exc

    def _fetch(self, sql: str, args: list[str]) -> list[Any]:
        return list(self.db.execute(sql, args).fetchall())

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
            row = self._run(lambda: self.db.execute(
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

    def facts(self, blobs: Iterable[str]) -> dict[str, tuple[str, list[str]]]:
        """blob → (table, owned relation names) for the blobs cached intact."""
        wanted = list(blobs)
        out: dict[str, tuple[str, list[str]]] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT blob, tname, names, model, digest FROM blobs WHERE blob IN ({marks})"
            rows = self._run(partial(self._fetch, sql, chunk))
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
            names = json.dumps(owned_names(tdef))
            model = json.dumps(to_record(tdef), separators=(",", ":"))
            rows.append((blob, tdef.table, names, model, _digest(blob, tdef.table, names, model)))
        if rows:
            self._write(lambda: self.db.executemany(
                "INSERT OR REPLACE INTO blobs VALUES (?, ?, ?, ?, ?)", rows))

    def _write(self, fn: Callable[[], Any]) -> None:
        def txn() -> None:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                fn()
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        self._run(txn)

    # -- tree indexes -------------------------------------------------------------------

    def has_tree(self, tree: str) -> bool:
        """The tree's index is complete (its row counts match what was recorded)."""
        def probe() -> bool:
            row = self.db.execute("SELECT tables, names FROM trees WHERE tree = ?",
                                  (tree,)).fetchone()
            if row is None:
                return False
            n_tables = self.db.execute("SELECT count(*) FROM tree_tables WHERE tree = ?",
                                       (tree,)).fetchone()[0]
            n_names = self.db.execute("SELECT count(*) FROM tree_names WHERE tree = ?",
                                      (tree,)).fetchone()[0]
            if (n_tables, n_names) != tuple(row):
                return False
            self.db.execute("UPDATE trees SET used = ? WHERE tree = ?", (time.time(), tree))
            return True
        return bool(self._run(probe))

    def latest_tree(self) -> str | None:
        row = self._run(lambda: self.db.execute(
            "SELECT tree FROM trees ORDER BY used DESC LIMIT 1").fetchone())
        return str(row[0]) if row else None

    def put_tree(self, tree: str, entries: list[tuple[str, str, str, list[str]]]) -> None:
        """Record a tree: (path, table, blob, owned names) per definition."""
        tables = [(tree, path, tname, blob) for path, tname, blob, _ in entries]
        names = sorted({(tree, n, tname) for _, tname, _, owned in entries for n in owned})

        def fill() -> None:
            self._forget(tree)
            self.db.executemany("INSERT INTO tree_tables VALUES (?, ?, ?, ?)", tables)
            self.db.executemany("INSERT INTO tree_names VALUES (?, ?, ?)", names)
            self.db.execute("INSERT INTO trees VALUES (?, ?, ?, ?)",
                            (tree, len(tables), len(names), time.time()))
            old = [r[0] for r in self.db.execute(
                "SELECT tree FROM trees ORDER BY used DESC LIMIT -1 OFFSET ?",
                (KEEP_TREES,)).fetchall()]
            for t in old:
                self._forget(t)
        self._write(fill)

    def derive_tree(self, tree: str, base: str, removed: Iterable[str],
                    added: list[tuple[str, str, str, list[str]]]) -> None:
        """Record ``tree`` as ``base`` without the ``removed`` paths, plus ``added`` entries."""
        gone = sorted(set(removed) | {a[0] for a in added})

        def fill() -> None:
            self._forget(tree)
            self.db.execute("CREATE TEMP TABLE IF NOT EXISTS gone (path TEXT PRIMARY KEY)")
            self.db.execute("DELETE FROM gone")
            self.db.executemany("INSERT OR IGNORE INTO gone VALUES (?)", [(p,) for p in gone])
            self.db.execute(
                "INSERT INTO tree_tables SELECT ?, path, tname, blob FROM tree_tables "
                "WHERE tree = ? AND path NOT IN (SELECT path FROM gone)", (tree, base))
            self.db.execute(
                "INSERT INTO tree_names SELECT ?, n.name, n.tname FROM tree_names n "
                "WHERE n.tree = ? AND n.tname IN (SELECT tname FROM tree_tables "
                "WHERE tree = ?)", (tree, base, tree))
            self.db.executemany("INSERT INTO tree_tables VALUES (?, ?, ?, ?)",
                                [(tree, p, t, b) for p, t, b, _ in added])
            self.db.executemany("INSERT OR IGNORE INTO tree_names VALUES (?, ?, ?)",
                                sorted({(tree, n, t) for _, t, _, owned in added
                                        for n in owned}))
            n_tables = self.db.execute("SELECT count(*) FROM tree_tables WHERE tree = ?",
                                       (tree,)).fetchone()[0]
            n_names = self.db.execute("SELECT count(*) FROM tree_names WHERE tree = ?",
                                      (tree,)).fetchone()[0]
            self.db.execute("INSERT INTO trees VALUES (?, ?, ?, ?)",
                            (tree, n_tables, n_names, time.time()))
        self._write(fill)

    def _forget(self, tree: str) -> None:
        for table in ("trees", "tree_tables", "tree_names"):
            self.db.execute(f"DELETE FROM {table} WHERE tree = ?", (tree,))

    def tree_entry(self, tree: str, *, path: str | None = None, table: str | None = None
                   ) -> tuple[str, str, str] | None:
        """(path, table, blob) of the tree's definition at ``path`` or of ``table``."""
        column, arg = ("path", path) if path is not None else ("tname", table or "")
        sql = f"SELECT path, tname, blob FROM tree_tables WHERE tree = ? AND {column} = ?"
        row = self._run(lambda: self.db.execute(sql, (tree, arg)).fetchone())
        return (str(row[0]), str(row[1]), str(row[2])) if row else None

    def tree_table_names(self, tree: str) -> list[str]:
        return [r[0] for r in self._run(lambda: self.db.execute(
            "SELECT tname FROM tree_tables WHERE tree = ? ORDER BY tname", (tree,)).fetchall())]

    def tree_paths(self, tree: str) -> dict[str, tuple[str, str]]:
        """path → (table, blob) of every definition in the tree."""
        return {r[0]: (r[1], r[2]) for r in self._run(lambda: self.db.execute(
            "SELECT path, tname, blob FROM tree_tables WHERE tree = ?", (tree,)).fetchall())}

    def tree_size(self, tree: str) -> int:
        row = self._run(lambda: self.db.execute("SELECT tables FROM trees WHERE tree = ?",
                                                (tree,)).fetchone())
        return int(row[0]) if row else 0

    def owners(self, tree: str, name: str) -> frozenset[str]:
        return frozenset(r[0] for r in self._run(lambda: self.db.execute(
            "SELECT tname FROM tree_names WHERE tree = ? AND name = ?",
            (tree, name)).fetchall()))

    # -- work-tree files ----------------------------------------------------------------

    def worktree(self) -> dict[str, tuple[tuple[int, int, int, int], str, int]]:
        """path → (stat key, blob id, when recorded) of work-tree files seen before."""
        return {r[0]: ((r[1], r[2], r[3], r[4]), r[5], r[6])
                for r in self._run(lambda: self.db.execute(
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
        self._write(fill)


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


class CachedTables(TableSet):
    """The definitions of one git tree, answered from the parse cache.

    Definitions are decoded on first use; a damaged entry is read again from git
    (``reread``) and parsed, and a cache that fails mid-way is replaced by the whole
    tree parsed from git (``rebuild``): the cache never decides what a definition says.
    """

    def __init__(self, cache: DefinitionCache, tree: str,
                 reread: Callable[[str, str], TableDef],
                 rebuild: Callable[[], TableSet]) -> None:
        self.cache = cache
        self.tree = tree
        self._reread = reread
        self._rebuild = rebuild
        self._fallback: TableSet | None = None
        self._entries: dict[str, tuple[str, str] | None] = {}  # table → (path, blob)
        self._names: list[str] | None = None
        self._owners: dict[str, frozenset[str]] = {}

    def _fallen(self) -> TableSet:
        """The tree parsed from git, for when the cache fails mid-way (damaged, locked)."""
        if self._fallback is None:
            self._fallback = self._rebuild()
        return self._fallback

    def entry(self, table: str) -> tuple[str, str] | None:
        """(path, blob id) of a table's definition in this tree."""
        if table not in self._entries:
            found = self.cache.tree_entry(self.tree, table=table)
            self._entries[table] = (found[0], found[2]) if found else None
        return self._entries[table]

    def at_path(self, path: str) -> str | None:
        """The table defined by the file at ``path`` in this tree."""
        if self._fallback is None:
            try:
                found = self.cache.tree_entry(self.tree, path=path)
                if found is None:
                    return None
                self._entries.setdefault(found[1], (found[0], found[2]))
                return found[1]
            except CacheUnusable:
                pass
        return next((t for t, d in self._fallen().items() if d.source == path), None)

    def __getitem__(self, table: str) -> TableDef:
        if self._fallback is None:
            try:
                entry = self.entry(table)
                if entry is None:
                    raise KeyError(table)
                path, blob = entry
                tdef = self.cache.model(blob, path)
                if tdef is None or tdef.table != table:
                    tdef = self._reread(blob, path)
                    self.cache.put_models([(blob, tdef)])
                return tdef
            except CacheUnusable:
                pass
        return self._fallen()[table]

    def __contains__(self, table: object) -> bool:
        if not isinstance(table, str):
            return False
        if self._fallback is None:
            try:
                return self.entry(table) is not None
            except CacheUnusable:
                pass
        return table in self._fallen()

    def __iter__(self) -> Iterator[str]:
        if self._fallback is None and self._names is None:
            try:
                self._names = self.cache.tree_table_names(self.tree)
            except CacheUnusable:
                pass
        return iter(self._names if self._names is not None else self._fallen())

    def __len__(self) -> int:
        if self._fallback is None:
            try:
                return len(self._names) if self._names is not None \
                    else self.cache.tree_size(self.tree)
            except CacheUnusable:
                pass
        return len(self._fallen())

    def owners_of(self, name: str) -> frozenset[str]:
        if self._fallback is None:
            try:
                if name not in self._owners:
                    self._owners[name] = self.cache.owners(self.tree, name)
                return self._owners[name]
            except CacheUnusable:
                pass
        return self._fallen().owners_of(name)

    def identity(self, table: str) -> str | None:
        if self._fallback is None:
            try:
                entry = self.entry(table)
                return entry[1] if entry else None
            except CacheUnusable:
                pass
        return self._fallen().identity(table)

    def paths(self) -> dict[str, tuple[str, str | None]]:
        if self._fallback is None:
            try:
                return dict(self.cache.tree_paths(self.tree))
            except CacheUnusable:
                pass
        return self._fallen().paths()
