"""What a run expects of a database, built once per git commit and shared by every target.

The definitions at a commit, the MetaData built from them and the set of managed tables
depend only on the repository's content at that commit, never on a database: a fleet run
of 50 targets used to read and build them 50 times (three times per target for the managed
tables alone). They are memoised here by commit sha, which names immutable content, so a
later commit (a new proposal, a rollback) simply gets its own entry. Everything returned is
shared between threads and must be treated as read-only: callers copy before changing.
Definitions that do not come from a commit (the work tree, for a migration not committed
yet) are never cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from schemactl.adapters import gitops
from schemactl.model.repo import SchemaRepo

if TYPE_CHECKING:
    from sqlalchemy import MetaData

    from schemactl.model.definitions import TableDef

T = TypeVar("T")
_LIMIT = 32  # commits kept per kind: a run needs two or three
_lock = threading.Lock()
_memo: dict[str, OrderedDict[tuple[Any, ...], Any]] = {}


def _once(kind: str, key: tuple[Any, ...], make: Callable[[], T]) -> T:
    with _lock:
        table = _memo.setdefault(kind, OrderedDict())
        if key in table:
            table.move_to_end(key)
            return table[key]  # type: ignore[no-any-return]
    value = make()  # outside the lock: two threads may build the same entry, one wins
    with _lock:
        table[key] = value
        while len(table) > _LIMIT:
            table.popitem(last=False)
    return value


def clear() -> None:
    """Forget everything (tests that rewrite history under the same sha)."""
    with _lock:
        _memo.clear()


def resolve(repo: SchemaRepo, rev: str) -> str | None:
    """The commit sha of ``rev`` when it is "HEAD" or a full sha; None for anything else
    (a branch name moves: loaded uncached, as before)."""
    if rev == "HEAD":
        return gitops.head_sha(repo.root)
    if len(rev) == 40 and all(c in "0123456789abcdef" for c in rev):
        return rev
    return None


def definitions_at(repo: SchemaRepo, sha: str) -> dict[str, TableDef]:
    """The dynamic definitions committed at ``sha`` (shared: do not change them)."""
    from schemactl.model.loading import load_at_rev

    root = repo.root.resolve()
    return _once("definitions", (root, sha), lambda: dict(load_at_rev(root, sha)))


def metadata_at(repo: SchemaRepo, sha: str, *, include_deprecated: bool = True) -> MetaData:
    """The MetaData of core tables plus the definitions at ``sha`` (shared, read-only)."""
    from schemactl.codegen.metadata import build_metadata

    root = repo.root.resolve()
    return _once("metadata", (root, sha, include_deprecated),
                 lambda: build_metadata(definitions_at(repo, sha),
                                        include_deprecated=include_deprecated))


def managed_tables(repo: SchemaRepo) -> set[str]:
    """Tables schemactl manages: core models plus every dynamic definition at HEAD."""
    from schemactl.codegen.metadata import build_metadata
    from schemactl.model.loading import load_at_rev

    sha = gitops.head_sha(repo.root)
    if sha is None:
        defs = dict(load_at_rev(repo.root, "HEAD"))
        return set(build_metadata(defs).tables) | set(defs)
    root = repo.root.resolve()
    found: frozenset[str] = _once(
        "managed", (root, sha),
        lambda: frozenset(set(metadata_at(repo, sha).tables) | set(definitions_at(repo, sha))))
    return set(found)


def commit_adding(repo: SchemaRepo, rel: str) -> str | None:
    """The commit that added ``rel`` (a migration file), as of the current HEAD."""
    head = gitops.head_sha(repo.root)
    if head is None:
        return None
    root = repo.root.resolve()
    return _once("added", (root, head, rel), lambda: gitops.commit_adding(root, rel))
