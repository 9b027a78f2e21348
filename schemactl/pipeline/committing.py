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


def others_lines(repo: SchemaRepo, own: set[str]) -> bytes | None:
    """The audit file to commit when it holds lines of other runs not committed yet.

    A run killed after its audit line but before its commit (a fleet target, a failed git
    commit) keeps its journal: that line belongs to its own recovery, which commits it with
    its own message and trailers. Another run's commit therefore leaves it out: the file's
    content without those lines (None: nothing to leave out, commit the file as it is).
    Lines already in git stay, whoever wrote them.
    """
    theirs = {j.id for j in journal.every(repo)} - own
    if not theirs or not repo.audit_file.exists():
        return None
    rel = str(repo.audit_file.relative_to(repo.root))
    committed = gitops.read_at(repo.root, "HEAD", rel) or b""
    in_git = {_line_id(ln) for ln in committed.splitlines()}
    text = repo.audit_file.read_bytes()
    lines = text.splitlines(keepends=True)
    kept = [ln for ln in lines if _line_id(ln) not in theirs or _line_id(ln) in in_git]
    if len(kept) == len(lines):
        return None
    out = b"".join(kept)
    return out if not out or out.endswith(b"\n") else out + b"\n"


def _line_id(line: bytes) -> str | None:
    import json

    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return str(obj.get("id")) if isinstance(obj, dict) else None


def commit_run(repo: SchemaRepo, paths: list[Path] | list[str], subject: str,
               trailers: dict[str, str | None], own: set[str],
               extra: list[tuple[str, str]] | None = None) -> str:
    """Commit a run's paths; the audit file without other runs' pending lines."""
    rel = str(repo.audit_file.relative_to(repo.root))
    wanted = {str(Path(p).relative_to(repo.root)) if Path(p).is_absolute() else str(p)
              for p in paths}
    audit_text = others_lines(repo, own) if rel in wanted else None
    if audit_text is not None:
        return gitops.commit_contents(repo.root, paths, {rel: audit_text}, subject, trailers,
                                      extra_trailers=extra or [])
    return gitops.commit(repo.root, paths, subject, trailers, extra_trailers=extra or [])


def commit_with_retry(repo: SchemaRepo, paths: list[Path] | list[str], subject: str,
                      trailers: dict[str, str | None],
                      extra: list[tuple[str, str]] | None = None) -> str:
    """Commit a run's paths (:func:`commit_run`), retried while another git holds index.lock.

    The run's own audit lines are the ``Schemactl-Audit`` trailer's (one run) or the
    ``extra`` trailers' of that name (a fleet run): the others stay for their recovery.
    """
    own = {value for key, value in extra or [] if key == "Schemactl-Audit"}
    if trailers.get("Schemactl-Audit"):
        own.add(str(trailers["Schemactl-Audit"]))
    last: EnvironmentError_ | None = None
    for delay in (0.0, 0.5, 1.0, 2.0):
        time.sleep(delay)
        try:
            return commit_run(repo, paths, subject, trailers, own, extra)
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
