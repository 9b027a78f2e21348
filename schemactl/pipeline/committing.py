"""The git side of a pipeline run: the files it writes, its commit, once and only once.

A recovered run may pass here a second time: writing the files is idempotent, and a commit
that is already there (its ``Schemactl-Audit`` trailer, or the files committed by hand) is
taken as done rather than failing with "nothing to commit".
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

from schemactl.adapters import gitops
from schemactl.adapters.database import Target
from schemactl.errors import EnvironmentError_
from schemactl.model.repo import SchemaRepo
from schemactl.pipeline import journal
from schemactl.pipeline.operation import Committer


def encode_files(files: dict[str, bytes | None]) -> dict[str, str | None]:
    return {p: None if d is None else base64.b64encode(d).decode() for p, d in files.items()}


def write_journal_files(repo: SchemaRepo, files: dict[str, str | None]) -> None:
    """Write (or remove) the run's repository files; idempotent, so recovery may repeat it."""
    for rel, data in files.items():
        path = repo.root / rel
        if data is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(base64.b64decode(data))
            os.replace(tmp, path)


def commit_with_retry(repo: SchemaRepo, paths: list[Path], subject: str,
                       trailers: dict[str, str | None]) -> str:
    last: EnvironmentError_ | None = None
    for delay in (0.0, 0.5, 1.0, 2.0):
        time.sleep(delay)
        try:
            return gitops.commit(repo.root, paths, subject, trailers)
        except EnvironmentError_ as exc:
            last = exc
            if "index.lock" not in exc.message:
                raise
    assert last is not None
    raise last


def commit_once(repo: SchemaRepo, paths: list[Path], subject: str,
                 trailers: dict[str, str | None], committer: Committer | None) -> str | None:
    """Commit a run's files unless that is done already (idempotent for recovery).

    Done already: a commit carries the run's ``Schemactl-Audit`` trailer, or the files are
    clean (someone committed them, e.g. with a merge): "nothing to commit" is success.
    """
    audit_id = trailers.get("Schemactl-Audit")
    if audit_id:
        found = gitops.find_commit(repo.root, "Schemactl-Audit", audit_id)
        if found is not None:
            return found
    if committer is None and not gitops.is_dirty(repo.root, [str(p) for p in paths]):
        return gitops.head_sha(repo.root)
    journal.fail_commit_hook()
    return (committer or commit_with_retry)(repo, paths, subject, trailers)


def subject(action: str, revisions: list[str], target: Target, failed: bool) -> str:
    revs = ", ".join(revisions) if len(revisions) <= 3 else \
        f"{revisions[0]} … {revisions[-1]} ({len(revisions)})"
    where = f"{target.database} ({target.host_port})"
    return f"{action}{' FAILED' if failed else ''}: {revs or '-'} → {where}"
