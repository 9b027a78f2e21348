"""Reading a proposal: bounded reads of files and stdin, and the work tree as a change.

Nothing is read past the size limit (the file becomes an SC406 violation). In the work
tree's dynamic_schema/ (`validate` alone) a file whose stat key (size, mtime, ctime,
inode) matches what the parse cache recorded is known by its recorded blob id without
being read; any other file is read and hashed as git would. A file with the committed
blob id at its path is unchanged and never parsed; the others are parsed (or decoded
from the cache by blob id).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from safety_rules.violation import Violation
from schemactl.model.config import Config
from schemactl.model.definitions import TableDef
from schemactl.model.tableset import as_table_set

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any

# Above this size nothing is read, whatever the configured limit: input is bounded.
HARD_MAX_BYTES = 16 * 1024 * 1024


def oversized_file(source: str, size: int, config: Config, table: str | None) -> Violation:
    from safety_rules.sc406_limits import Limits

    return Limits().oversized(source, size, config.limits.max_definition_bytes, table)


def bounded_read(path: Any, config: Config, shown: str) -> tuple[bytes | None, int]:
    """A file's bytes, or (None, size) when it is larger than the limit (then it is not read)."""
    from schemactl.errors import BadInputError

    try:
        size = path.stat().st_size
        if size > config.limits.max_definition_bytes or size > HARD_MAX_BYTES:
            return None, size
        with open(path, "rb") as fh:
            data = fh.read(HARD_MAX_BYTES + 1)
    except FileNotFoundError:
        raise BadInputError(f"{shown}: no such file",
                            hint="pass definition files (YAML or JSON) or - for stdin") from None
    except IsADirectoryError:
        raise BadInputError(f"{shown}: is a directory, not a definition file") from None
    except OSError as exc:
        raise BadInputError(f"{shown}: cannot be read ({exc.strerror})") from None
    return data, len(data)


def read_stream(stream: Any, limit: int) -> tuple[bytes | None, int]:
    """Read at most ``limit`` bytes; past it, count (and drop) the rest up to the hard cap."""
    head = stream.read(limit + 1)
    if isinstance(head, str):
        head = head.encode("utf-8", errors="surrogateescape")
    if len(head) <= limit:
        return head, len(head)
    size = len(head)
    while size <= HARD_MAX_BYTES:
        chunk = stream.read(65536)
        if not chunk:
            break
        size += len(chunk)
    return None, size


def worktree_changes(root: Path, current: Mapping[str, TableDef], config: Config
                     ) -> tuple[dict[str, TableDef | None], list[Violation]]:
    """The tables whose state the work tree changes (None: removed), and oversized files.

    Raises:
        DefinitionError: a changed definition cannot be parsed.
        BadInputError: two files define the same table; a file cannot be read.
    """
    from schemactl.adapters import gitobjects
    from schemactl.errors import BadInputError
    from schemactl.model.cache import CacheUnusable, trusted_stat
    from schemactl.model.definitions import is_definition_file
    from schemactl.model.loading import open_cache
    from schemactl.model.parsing import parse_definition

    cache: Any = getattr(current, "cache", None) or open_cache(root, create=False)
    try:
        recorded = cache.worktree() if cache is not None else {}
    except CacheUnusable:
        cache, recorded = None, {}
    head = as_table_set(current).paths()
    folder = root / "dynamic_schema"
    paths = sorted(p for p in folder.iterdir() if p.is_file()
                   and is_definition_file(p.name)) if folder.is_dir() else []
    seen: dict[str, str] = {}  # table → the work-tree file defining it
    edits: dict[str, TableDef | None] = {}
    oversized: list[Violation] = []
    stats: list[tuple[str, os.stat_result, str]] = []
    parsed: list[tuple[str, TableDef]] = []
    for path in paths:
        rel = path.relative_to(root).as_posix()
        old_table, old_blob = head.get(rel, (None, None))
        st = path.stat()
        blob = trusted_stat(recorded.get(rel), st)
        data: bytes | None = None
        if blob is None or st.st_size > config.limits.max_definition_bytes:
            data, size = bounded_read(path, config, rel)
            if data is None:
                oversized.append(oversized_file(rel, size, config, old_table))
                if old_table is not None:
                    seen.setdefault(old_table, rel)  # unknown new state: keep the old one
                continue
            blob = gitobjects.blob_id(data)
            stats.append((rel, st, blob))
        if blob == old_blob and old_table is not None:
            table, tdef = old_table, None  # the committed bytes: nothing to parse
        else:
            tdef = None
            if cache is not None:
                try:
                    tdef = cache.model(blob, rel)
                except CacheUnusable:
                    cache = None
            if tdef is None:
                if data is None:
                    data, _ = bounded_read(path, config, rel)
                    if data is None or gitobjects.blob_id(data) != blob:
                        raise BadInputError(f"{rel}: changed while being read, validate again")
                tdef = parse_definition(data, rel)
                parsed.append((blob, tdef))
            table = tdef.table
        if table in seen:
            from schemactl.model.loading import duplicate_table

            raise duplicate_table(rel, table, seen[table])
        seen[table] = rel
        if tdef is None:
            continue
        if table in current:
            ident = getattr(current, "identity", lambda t: None)(table)
            if ident == blob or current[table].same_state(tdef):
                continue
        edits[table] = tdef
    for table in current:
        if table not in seen:
            edits[table] = None
    if cache is not None:
        try:
            cache.put_models(parsed)
            cache.put_worktree(stats, {p.relative_to(root).as_posix() for p in paths})
        except CacheUnusable:
            pass
    return edits, oversized
