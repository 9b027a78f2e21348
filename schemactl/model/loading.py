"""Sets of definitions: a folder of the work tree, or a git revision; one table per file."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from schemactl.model.config import cache_mode
from schemactl.model.definitions import DefinitionError, TableDef, is_definition_file
from schemactl.model.parsing import parse_definition
from schemactl.model.tableset import DictTables, TableSet

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class SourceFile:
    """A definition file's location and bytes (from the work tree, git or stdin)."""

    path: str
    data: bytes


# (path, bytes) → parsed definition: a file unchanged between two revisions is parsed once.
ParseCache = dict[tuple[str, bytes], TableDef]


def add_table(tables: dict[str, TableDef], tdef: TableDef, where: str = "") -> None:
    """Put ``tdef`` into ``tables``, refusing a table another file already defines.

    Args:
        where: appended to the other file's name (`` at HEAD``).

    Raises:
        DefinitionError: ``tables`` already holds a table of that name.
    """
    other = tables.get(tdef.table)
    if other is not None:
        raise duplicate_table(tdef.source, tdef.table, other.source, where)
    tables[tdef.table] = tdef


def parse_files(files: Iterable[SourceFile], cache: ParseCache | None = None,
                where: str = "") -> dict[str, TableDef]:
    """Parse many definition files into a table-name → definition map.

    Args:
        cache: reuse (and fill) parsed definitions by path and bytes.
        where: where the files come from, for the error (`` at HEAD``).

    Raises:
        DefinitionError: a file cannot be parsed, or two files define the same table.
    """
    tables: dict[str, TableDef] = {}
    for f in files:
        tdef = cache.get((f.path, f.data)) if cache is not None else None
        if tdef is None:
            tdef = parse_definition(f.data, f.path)
            if cache is not None:
                cache[(f.path, f.data)] = tdef
        add_table(tables, tdef, where)
    return tables


def files_in_dir(folder: Path, rel_to: Path | None = None) -> list[SourceFile]:
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and is_definition_file(path.name):
            shown = str(path.relative_to(rel_to)) if rel_to else str(path)
            out.append(SourceFile(shown, path.read_bytes()))
    return out


def files_at_rev(repo_root: Path, rev: str) -> list[SourceFile]:
    from schemactl.adapters import gitops

    return [SourceFile(f.path, f.data) for f in gitops.files_at(repo_root, rev, "dynamic_schema")
            if is_definition_file(Path(f.path).name)]


def load_dir(folder: Path, rel_to: Path | None = None) -> dict[str, TableDef]:
    """The definitions in a folder (the work tree's dynamic_schema/), every file parsed."""
    return parse_files(files_in_dir(folder, rel_to))


def load_at_rev(repo_root: Path, rev: str = "HEAD") -> dict[str, TableDef]:
    """The definitions committed at a git revision (empty before the first commit).

    Every definition, as a dict: in a repository with a parse cache they are decoded
    from it in bulk, not parsed (see :func:`tables_at_rev` for the indexed set, which
    reads only what is asked).
    """
    return as_dict(tables_at_rev(repo_root, rev))


def as_dict(tables: TableSet) -> dict[str, TableDef]:
    """Every definition of a set (a cached tree's decoded in bulk)."""
    bulk = getattr(tables, "definitions", None)
    return dict(bulk()) if callable(bulk) else {n: tables[n] for n in tables}


def load_worktree(root: Path) -> dict[str, TableDef]:
    """The definitions in the work tree's dynamic_schema/, as :func:`load_dir` gives them.

    With a parse cache, a file whose size, times and inode are as recorded (or whose
    bytes hash to a cached blob) is decoded from the cache; only new bytes are parsed.
    """
    import os
    from dataclasses import replace

    from schemactl.adapters.gitobjects import blob_id
    from schemactl.model.cache import CacheUnusable, trusted_stat

    folder = root / FOLDER
    cache = open_cache(root, create=False)
    if cache is None or not folder.is_dir():
        return load_dir(folder, root)
    try:
        recorded = cache.worktree()
        blobs: dict[str, str] = {}
        read: dict[str, bytes] = {}
        stats: list[tuple[str, os.stat_result, str]] = []
        for path in sorted(folder.iterdir()):
            if not (path.is_file() and is_definition_file(path.name)):
                continue
            rel = path.relative_to(root).as_posix()
            st = path.stat()
            blob = trusted_stat(recorded.get(rel), st)
            if blob is None:
                read[rel] = path.read_bytes()
                blob = blob_id(read[rel])
                stats.append((rel, st, blob))
            blobs[rel] = blob
        models = cache.models_of(blobs.values())
        tables: dict[str, TableDef] = {}
        parsed: list[tuple[str, TableDef]] = []
        for rel, blob in blobs.items():
            tdef = models.get(blob)
            if tdef is None:
                data = read.get(rel)
                if data is None:
                    data = (root / rel).read_bytes()
                tdef = parse_definition(data, rel)
                parsed.append((blob_id(data), tdef))
            elif tdef.source != rel:
                tdef = replace(tdef, source=rel)
            add_table(tables, tdef)
        cache.put_models(parsed)
        cache.put_worktree(stats, set(blobs))
        return tables
    except CacheUnusable:
        return load_dir(folder, root)


# -- through the parse cache (schemactl.model.cache) ----------------------------------------

FOLDER = "dynamic_schema"
# Below this many definitions parsing is cheaper than opening the cache: none is made
# (one already there is used). SCHEMACTL_PARSE_CACHE=off never uses it, =on always does.
MIN_CACHED = 64

_warm: dict[Path, Any] | None = None  # root → DefinitionCache, in long-running processes
_warm_sets: dict[tuple[Path, str], TableSet] = {}  # (root, tree id) → its set, likewise


def keep_warm(enabled: bool = True) -> None:
    """Keep each repository's cache open, with the definitions it decoded, between calls.

    For long-running processes (the MCP server): a later call asks git only whether the
    tree changed, and decodes only definitions it has not seen.
    """
    global _warm
    if enabled and _warm is None:
        _warm = {}
    elif not enabled and _warm is not None:
        for c in _warm.values():
            c.close()
        _warm = None
        _warm_sets.clear()


def open_cache(root: Path, *, create: bool) -> Any:
    """The repository's DefinitionCache, or None (disabled, absent and not wanted, broken)."""
    mode = cache_mode()
    if mode == "off":
        return None
    key = root.resolve()
    if _warm is not None and key in _warm:
        return _warm[key]
    from schemactl.model.repo import CACHE_PATH

    if not create and mode == "auto" and not (key / CACHE_PATH).exists():
        return None  # a small repository's cold path never imports the cache (or sqlite3)
    from schemactl.model.cache import CacheUnusable, DefinitionCache
    try:
        cache = DefinitionCache(key, create=create or mode == "on")
    except CacheUnusable:
        return None
    if _warm is not None:
        _warm[key] = cache
    return cache


def duplicate_table(path: str, table: str, other: str, where: str = "") -> DefinitionError:
    """The error of a table that two definition files define (exit 2)."""
    return DefinitionError(f"{path}: table {table!r} is also defined in {other}{where}")


def _parse_blobs(root: Path, entries: list[tuple[str, str]], where: str = "",
                 data: dict[str, bytes] | None = None) -> TableSet:
    """Parse (path, blob) entries read from git, refusing a table defined twice."""
    from schemactl.adapters import gitobjects

    if data is None:
        data = gitobjects.read_blobs(root, [b for _, b in entries])
    tables: dict[str, TableDef] = {}
    ids: dict[str, str] = {}
    for path, blob in entries:
        tdef = parse_definition(data[blob], path)
        if tdef.table in tables:
            raise duplicate_table(path, tdef.table, tables[tdef.table].source, where)
        tables[tdef.table] = tdef
        ids[tdef.table] = blob
    return DictTables(tables, ids)


def _index_tree(cache: Any, root: Path, tree: str, entries: list[tuple[str, str]] | None,
                where: str) -> None:
    """Record a tree in the cache: as a delta of the last tree used when git says little
    changed, else from one listing; only blobs the cache lacks are read and parsed."""
    from schemactl.adapters import gitobjects
    from schemactl.model import treeindex

    base_id = treeindex.latest_tree(cache)
    base = treeindex.open_tree(cache, base_id) if entries is None and base_id and \
        base_id != tree else None
    if base is not None and base.depth < treeindex.MAX_DEPTH:
        changes = [(f"{FOLDER}/{n}", b) for n, b in gitobjects.tree_changes(root, base.tree, tree)
                   if is_definition_file(n)]
        if len(changes) <= 256:
            added = [(p, b) for p, b in changes if b is not None]
            facts = _facts(cache, root, added)
            gone = {p for p, _ in changes}
            seen: dict[str, str] = {}
            for path, blob in sorted(added):
                tname = facts[blob][0]
                other = seen.get(tname)
                if other is None:
                    found = base.of_table(tname)
                    other = found[0] if found and found[0] not in gone else None
                if other is not None:
                    first, second = sorted((path, other))
                    raise duplicate_table(second, tname, first, where)
                seen[tname] = path
            treeindex.put_delta(cache, tree, base, [p for p, b in changes if b is None],
                                [(p, facts[b][0], b, facts[b][1]) for p, b in added])
            return
    if entries is None:
        entries = _listing(root, tree)
    facts = _facts(cache, root, entries)
    firsts: dict[str, str] = {}
    rows = []
    for path, blob in entries:
        tname, owned = facts[blob]
        if tname in firsts:
            raise duplicate_table(path, tname, firsts[tname], where)
        firsts[tname] = path
        rows.append((path, tname, blob, owned))
    treeindex.put_full(cache, tree, rows)


def _facts(cache: Any, root: Path, entries: list[tuple[str, str]]
           ) -> dict[str, tuple[str, list[str]]]:
    from schemactl.adapters import gitobjects
    from schemactl.model.tableset import fact_keys

    facts = cache.facts(b for _, b in entries)
    missing = [(p, b) for p, b in entries if b not in facts]
    if missing:
        data = gitobjects.read_blobs(root, [b for _, b in missing])
        parsed = []
        for path, blob in missing:
            tdef = parse_definition(data[blob], path)
            parsed.append((blob, tdef))
            facts[blob] = (tdef.table, fact_keys(tdef))
        cache.put_models(parsed)
    return dict(facts)


def _listing(root: Path, tree: str) -> list[tuple[str, str]]:
    from schemactl.adapters import gitobjects

    return [(f"{FOLDER}/{n}", b) for n, b in gitobjects.tree_blobs(root, tree)
            if is_definition_file(n)]


def tables_at_rev(root: Path, rev: str = "HEAD") -> TableSet:
    """The definitions committed at ``rev``, as a set with indexed facts.

    In a repository with a parse cache (made once it holds MIN_CACHED definitions),
    nothing that the cache knows is read or parsed again: a known tree costs one small
    git process; a new one is derived from the last tree through `git diff-tree`.

    Raises:
        BadInputError: ``rev`` does not name a commit.
        DefinitionError: a definition cannot be parsed, or two define the same table.
    """
    from schemactl.adapters import gitobjects

    where = "" if rev == "HEAD" else f" at {rev}"
    cache = open_cache(root, create=False)
    entries: list[tuple[str, str]] | None = None
    if cache is None:
        # No cache (yet): one `git cat-file --batch` reads the tree and, in a small
        # repository, every definition.
        reader = gitobjects.BatchReader(root)
        try:
            found_tree, names = gitobjects.folder_at(reader, rev, FOLDER)
            if found_tree is None:
                return DictTables({})
            tree = found_tree
            entries = [(f"{FOLDER}/{n}", b) for n, b in names if is_definition_file(n)]
            if len(entries) < MIN_CACHED or cache_mode() == "off":
                objs = reader.get([b for _, b in entries])
                data = {b: o[2] for (_, b), o in zip(entries, objs, strict=True) if o}
                return _parse_blobs(root, entries, where, data)
        finally:
            reader.close()
        cache = open_cache(root, create=True)
        if cache is None:
            return _parse_blobs(root, entries, where)
    else:
        known = gitobjects.folder_tree(root, rev, FOLDER)
        if known is None:
            return DictTables({})
        tree = known

    from schemactl.model import treeindex
    from schemactl.model.cache import CacheUnusable

    def reread(blob: str, path: str) -> TableDef:
        return parse_definition(gitobjects.read_blobs(root, [blob])[blob], path)

    def rebuild() -> TableSet:
        return _parse_blobs(root, _listing(root, tree), where)

    key = (root.resolve(), tree)
    if _warm is not None and key in _warm_sets:
        return _warm_sets[key]
    try:
        index = treeindex.open_tree(cache, tree)
        if index is None:
            _index_tree(cache, root, tree, entries, where)
            index = treeindex.open_tree(cache, tree)
        if index is None:
            raise CacheUnusable(f"tree {tree} was not recorded")
        found: TableSet = treeindex.CachedTables(index, reread, rebuild)
    except CacheUnusable:
        return rebuild()
    if _warm is not None:
        if len(_warm_sets) >= 4:
            _warm_sets.pop(next(iter(_warm_sets)))
        _warm_sets[key] = found
    return found


def changed_between(root: Path, before: TableSet, after: TableSet) -> list[str]:
    """The tables whose state differs between two sets, sorted.

    Two trees from the cache are compared through `git diff-tree` (only the files git
    says changed are looked at); other sets by identity, then by state.
    """
    from schemactl.adapters import gitobjects

    ta, tb = getattr(before, "tree", None), getattr(after, "tree", None)
    candidates: set[str]
    if isinstance(ta, str) and isinstance(tb, str):
        candidates = set()
        for name, _blob in gitobjects.tree_changes(root, ta, tb):
            if is_definition_file(name):
                for tables in (before, after):
                    found = tables.at_path(f"{FOLDER}/{name}")
                    if found:
                        candidates.add(found)
    else:
        candidates = set(before) | set(after)

    from schemactl.model.changeset import changed_tables

    # The same blob is the same definition: no need to compare states.
    same = {n for n in candidates if n in before and n in after
            and before.identity(n) is not None and before.identity(n) == after.identity(n)}
    return changed_tables(before, after, candidates - same)
