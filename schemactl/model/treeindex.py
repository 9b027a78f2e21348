"""Tree indexes of the parse cache: a git tree of dynamic_schema/ as rows of facts.

A tree is (path → table, blob id) rows and (relation name → owning table, blob id) rows.
It is stored whole, or as only the rows that differ from its parent tree (what
`git diff-tree` reported), up to MAX_DEPTH deep: recording a new commit costs what the
commit changed, not the size of the schema. A lookup resolves through the chain of
trees, nearest first; a removed file is a row without a table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace

from schemactl.model.cache import CacheUnusable, DefinitionCache
from schemactl.model.definitions import TableDef
from schemactl.model.tableset import TableSet

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any

MAX_DEPTH = 32  # deltas on deltas before a tree is stored whole again
KEEP = 8  # recently used trees kept (with the trees their deltas rest on)

Entry = tuple[str, str, str, list[str]]  # path, table, blob id, owned relation names

_CHAIN = """
WITH RECURSIVE c(tree, parent, n) AS (
    SELECT tree, parent, 0 FROM trees WHERE tree = ?
    UNION ALL SELECT t.tree, t.parent, c.n + 1 FROM trees t JOIN c ON t.tree = c.parent
    WHERE c.n < 1000)
SELECT c.tree, c.parent, t.depth, t.tables, t.rows, t.names
FROM c JOIN trees t ON t.tree = c.tree ORDER BY c.n
"""


class TreeIndex:
    """The facts of one tree, answered by point queries through its chain."""

    def __init__(self, cache: DefinitionCache, chain: list[str], depth: int, size: int) -> None:
        self.cache = cache
        self.tree = chain[0]
        self.chain = chain
        self.depth = depth
        self.size = size
        self._rank = {t: i for i, t in enumerate(chain)}
        self._marks = ",".join("?" * len(chain))

    def _nearest(self, rows: list[Any]) -> list[Any]:
        return sorted(rows, key=lambda r: self._rank[r[0]])

    def at_path(self, path: str) -> tuple[str, str] | None:
        """(table, blob id) of the definition at ``path``."""
        rows = self.cache.fetch(f"SELECT tree, tname, blob FROM tree_tables WHERE path = ? "
                                f"AND tree IN ({self._marks})", [path, *self.chain])
        if not rows:
            return None
        _tree, tname, blob = self._nearest(rows)[0]
        return (str(tname), str(blob)) if tname is not None else None

    def of_table(self, table: str) -> tuple[str, str] | None:
        """(path, blob id) of ``table``'s definition."""
        # Without INDEXED BY, SQLite takes the primary key (tree, path) and reads every
        # row of the base tree: 8 ms at 10,000 tables instead of a point lookup.
        rows = self.cache.fetch(f"SELECT tree, path, blob FROM tree_tables INDEXED BY "
                                f"tree_tables_by_name WHERE tname = ? "
                                f"AND tree IN ({self._marks})", [table, *self.chain])
        for _tree, path, blob in self._nearest(rows):
            if self.at_path(path) == (table, blob):  # not replaced or removed since
                return str(path), str(blob)
        return None

    def owners(self, name: str) -> frozenset[str]:
        rows = self.cache.fetch(f"SELECT DISTINCT tname, blob FROM tree_names WHERE name = ? "
                                f"AND tree IN ({self._marks})", [name, *self.chain])
        return frozenset(t for t, b in rows if (e := self.of_table(t)) and e[1] == b)

    def paths(self) -> dict[str, tuple[str, str]]:
        """path → (table, blob id) of every definition."""
        out: dict[str, tuple[str, str] | None] = {}
        rows = self.cache.fetch(f"SELECT tree, path, tname, blob FROM tree_tables "
                                f"WHERE tree IN ({self._marks})", self.chain)
        for _tree, path, tname, blob in sorted(rows, key=lambda r: -self._rank[r[0]]):
            out[path] = (tname, blob) if tname is not None else None
        return {p: e for p, e in out.items() if e is not None}


def open_tree(cache: DefinitionCache, tree: str) -> TreeIndex | None:
    """The tree's index when it is complete (every tree of its chain, every row counted)."""
    rows = cache.fetch(_CHAIN, [tree])
    if not rows or rows[-1][1] is not None:
        return None
    chain = [r[0] for r in rows]
    marks = ",".join("?" * len(chain))
    counts = dict(cache.fetch(f"SELECT tree, count(*) FROM tree_tables WHERE tree IN ({marks}) "
                              "GROUP BY tree", chain))
    names = dict(cache.fetch(f"SELECT tree, count(*) FROM tree_names WHERE tree IN ({marks}) "
                             "GROUP BY tree", chain))
    if any((counts.get(r[0], 0), names.get(r[0], 0)) != (r[4], r[5]) for r in rows):
        return None
    cache.run(lambda: cache.db.execute("UPDATE trees SET used = ? WHERE tree = ?",
                                       (time.time(), tree)))
    return TreeIndex(cache, chain, int(rows[0][2]), int(rows[0][3]))


def latest_tree(cache: DefinitionCache) -> str | None:
    rows = cache.fetch("SELECT tree FROM trees ORDER BY used DESC LIMIT 1")
    return str(rows[0][0]) if rows else None


def _insert(cache: DefinitionCache, tree: str, parent: str | None, depth: int, tables: int,
            rows: list[tuple[str, str | None, str | None]], names: list[Entry]) -> None:
    name_rows = sorted({(tree, n, t, b) for _, t, b, owned in names for n in owned})

    def fill() -> None:
        _forget(cache, tree)
        cache.db.executemany("INSERT INTO tree_tables VALUES (?, ?, ?, ?)",
                             [(tree, p, t, b) for p, t, b in rows])
        cache.db.executemany("INSERT INTO tree_names VALUES (?, ?, ?, ?)", name_rows)
        cache.db.execute("INSERT INTO trees VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (tree, parent, depth, tables, len(rows), len(name_rows), time.time()))
        _prune(cache)
    cache.write(fill)


def put_full(cache: DefinitionCache, tree: str, entries: list[Entry]) -> None:
    """Record a tree whole: one row per definition."""
    _insert(cache, tree, None, 0, len(entries), [(p, t, b) for p, t, b, _ in entries], entries)


def put_delta(cache: DefinitionCache, tree: str, base: TreeIndex, removed: list[str],
              added: list[Entry]) -> None:
    """Record a tree as ``base`` without the ``removed`` paths and with ``added``."""
    touched = set(removed) | {e[0] for e in added}
    before = sum(1 for p in touched if base.at_path(p) is not None)
    rows: list[tuple[str, str | None, str | None]] = [(p, None, None) for p in sorted(removed)
                                                      if p not in {e[0] for e in added}]
    rows += [(p, t, b) for p, t, b, _ in added]
    _insert(cache, tree, base.tree, base.depth + 1, base.size - before + len(added), rows,
            added)


def _forget(cache: DefinitionCache, tree: str) -> None:
    for table in ("trees", "tree_tables", "tree_names"):
        cache.db.execute(f"DELETE FROM {table} WHERE tree = ?", (tree,))


def _prune(cache: DefinitionCache) -> None:
    """Keep the KEEP most recently used trees and the trees their chains rest on."""
    recent = [r[0] for r in cache.db.execute(
        "SELECT tree FROM trees ORDER BY used DESC LIMIT ?", (KEEP,)).fetchall()]
    keep: set[str] = set()
    for tree in recent:
        keep |= {r[0] for r in cache.db.execute(_CHAIN, (tree,)).fetchall()}
    for (tree,) in cache.db.execute("SELECT tree FROM trees").fetchall():
        if tree not in keep:
            _forget(cache, tree)


class CachedTables(TableSet):
    """The definitions of one git tree, answered from the parse cache.

    Definitions are decoded on first use; a damaged entry is read again from git
    (``reread``) and parsed, and a cache that fails mid-way is replaced by the whole
    tree parsed from git (``rebuild``): the cache never decides what a definition says.
    """

    def __init__(self, index: TreeIndex, reread: Callable[[str, str], TableDef],
                 rebuild: Callable[[], TableSet]) -> None:
        self.index = index
        self.cache = index.cache
        self.tree = index.tree
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
            self._entries[table] = self.index.of_table(table)
        return self._entries[table]

    def at_path(self, path: str) -> str | None:
        if self._fallback is None:
            try:
                found = self.index.at_path(path)
                return found[0] if found else None
            except CacheUnusable:
                pass
        return self._fallen().at_path(path)

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
                self._names = sorted(t for t, _ in self.index.paths().values())
            except CacheUnusable:
                pass
        return iter(self._names if self._names is not None else self._fallen())

    def __len__(self) -> int:
        return self.index.size if self._fallback is None else len(self._fallen())

    def owners_of(self, name: str) -> frozenset[str]:
        if self._fallback is None:
            try:
                if name not in self._owners:
                    self._owners[name] = self.index.owners(name)
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

    def definitions(self) -> dict[str, TableDef]:
        """Every definition of the tree, decoded from the cache in bulk (damaged entries
        read again from git): for the callers that need them all, such as drift."""
        if self._fallback is None:
            try:
                entries = self.index.paths()
                models = self.cache.models_of(b for _t, b in entries.values())
                out: dict[str, TableDef] = {}
                fresh = []
                for path, (table, blob) in sorted(entries.items()):
                    tdef = models.get(blob)
                    if tdef is None or tdef.table != table:
                        tdef = self._reread(blob, path)
                        fresh.append((blob, tdef))
                    out[table] = tdef if tdef.source == path else replace(tdef, source=path)
                if fresh:
                    self.cache.put_models(fresh)
                return out
            except CacheUnusable:
                pass
        fallen = self._fallen()
        return {n: fallen[n] for n in fallen}

    def paths(self) -> dict[str, tuple[str, str | None]]:
        if self._fallback is None:
            try:
                return dict(self.index.paths())
            except CacheUnusable:
                pass
        return self._fallen().paths()
