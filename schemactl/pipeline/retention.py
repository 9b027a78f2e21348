"""Retention of backups: ``[backup] keep_last`` and ``max_total_mb``, and what is never pruned.

Never pruned: the newest backup, and for every table the newest good backup holding its
data while the run it was taken for is still applied (one of that run's revisions is
still in migrations/versions/: a rollback removes the file). A scoped backup may be the
only copy of a table's rows from before the change that touched it, so count and size
limits yield to it; ``kept_over_limit`` says when they had to.

All of it is per database (a fleet's targets share the backup folder): ``keep_last`` counts
each database's backups, and a table is a table of one database, so one tenant's apply
never prunes another tenant's only copy. ``max_total_mb`` is the folder's total.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from schemactl.adapters import migrator
from schemactl.errors import BadInputError, SchemactlError
from schemactl.model.repo import SchemaRepo
from schemactl.pipeline.backup_store import Backup, cleanup_incomplete, list_backups, remove_path

MB = 1024 * 1024


def _applied(repo: SchemaRepo) -> set[str]:
    try:
        return set(migrator.revisions_upto(repo))
    except SchemactlError:  # several heads or a broken chain: every file counts
        return set(migrator.read_revisions(repo))


def protected(repo: SchemaRepo, backups: list[Backup]) -> dict[str, list[str]]:
    """Backup id → the tables it is the newest good backup of (backups: newest first)."""
    applied = _applied(repo)

    def still_applied(b: Backup) -> bool:
        if b.revisions:
            return any(r in applied for r in b.revisions)
        # An older manifest without the run's revisions: something after it is applied.
        return b.revision_before is None or b.revision_before in applied

    universe = {t for b in backups for t in b.tables} | {"*"}
    out: dict[str, list[str]] = {}
    for table in sorted(universe):
        for b in backups:
            holds = b.scope == "full" if table == "*" else b.holds(table)
            if holds and still_applied(b):
                out.setdefault(b.id, []).append("every table" if table == "*" else table)
                break
    return out


def prune(repo: SchemaRepo, keep_last: int | None = None,
          max_total_mb: float | None = None) -> dict[str, Any]:
    """Apply retention (defaults from schemactl.toml); half-written backups go too.

    Keeps the newest ``keep_last`` complete backups of each database, then removes the
    oldest ones while the total is over ``max_total_mb`` (0: no limit), never a protected
    one (see the module).

    Returns:
        ``{"removed": [ids], "kept": [ids], "cleaned": [file names],
        "protected": {id: [tables]}, "total_bytes": int, "kept_over_limit": bool}``.

    Raises:
        BadInputError: ``keep_last`` below 1 or ``max_total_mb`` below 0 (exit 2).
    """
    keep = repo.config.keep_last if keep_last is None else keep_last
    limit = repo.config.max_total_mb if max_total_mb is None else max_total_mb
    if keep < 1:
        raise BadInputError("keep_last must be at least 1",
                            hint="a backup is the way back from a bad apply")
    if limit < 0:
        raise BadInputError("max_total_mb must be 0 (no limit) or more")
    cleaned = cleanup_incomplete(repo)
    complete = list_backups(repo)
    by_database: dict[str, list[Backup]] = {}
    for b in complete:  # newest first within each database, as list_backups orders them
        by_database.setdefault(b.database, []).append(b)
    guard: dict[str, list[str]] = {}
    for backups in by_database.values():
        guard.update(protected(repo, backups))
        guard.setdefault(backups[0].id, []).append("newest")
    rank = {b.id: i for backups in by_database.values() for i, b in enumerate(backups)}
    kept = [b for b in complete if rank[b.id] < keep or b.id in guard]
    gone = [b for b in complete if b not in kept]
    total = sum(b.size for b in kept)
    if limit:
        for b in reversed(list(kept)):  # oldest first
            if total <= limit * MB:
                break
            if b.id in guard:
                continue
            kept.remove(b)
            gone.append(b)
            total -= b.size
    for b in gone:
        remove_path(Path(b.path))
        Path(b.manifest_path).unlink(missing_ok=True)
    return {"removed": [b.id for b in gone], "kept": [b.id for b in kept], "cleaned": cleaned,
            "protected": {k: v for k, v in guard.items() if any(b.id == k for b in kept)},
            "total_bytes": total, "kept_over_limit": bool(limit) and total > limit * MB}
