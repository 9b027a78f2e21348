"""The apply journal: where a running apply is, so that a crash can be finished or redone.

One small JSON file per database in the repository's git-ignored state directory
(`.schemactl/journal-<key>.json`, the key being the database's identity read from the
server, so that two URLs of one database share it), replaced atomically (write to a temp name,
fsync, rename) at each step of the pipeline. A missing file means no apply is
running or was interrupted. The file never holds a password: the database is
named by its redacted URL.

Test hook: ``SCHEMACTL_TEST_PAUSE_AT=<step>[,<step>...]`` makes the pipeline sleep
for ``SCHEMACTL_TEST_PAUSE_SECONDS`` (default 30) when it reaches a named step, so the
crash tests can kill -9 it there: every journal step (``locked``, ``backup``,
``backup_done``, ``upgrade``, ``upgraded``, ``verified``, ``audited``), plus ``dump``
(pg_dump running, the first bytes of the ``.partial`` file on disk) and ``migration``
(the last migration's DDL and audit row done, its transaction not yet committed).
It has no effect when unset. ``SCHEMACTL_TEST_FAIL_COMMIT=1`` makes the run's git commit
fail (after the DDL, as a full disk or a busy repository would).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schemactl.adapters.database import Target
from schemactl.model.repo import SchemaRepo

if TYPE_CHECKING:
    import psycopg

# Steps in the order the pipeline passes them.
STEPS = ("locked", "backup", "backup_done", "upgrade", "upgraded", "verified", "audited")


@dataclass(frozen=True)
class Journal:
    """The state of one apply (or rollback) of one database."""

    id: str
    action: str
    step: str
    database: str
    actor: str
    revision_before: str | None
    revision_target: str | None
    revisions: list[str] = field(default_factory=list)
    backup_id: str | None = None
    git_commit: str | None = None
    git_branch: str | None = None
    invalid_indexes_before: list[str] = field(default_factory=list)
    audit_row: bool = False
    verify_git_rev: str | None = "HEAD"
    failed: str | None = None
    # What names the journal file: the database, independent of the embedded server's port.
    key: str = ""
    # Repository paths the run's commit carries besides the audit file (a rollback's files).
    commit_paths: list[str] = field(default_factory=list)
    # Files the run writes once its migrations are done (path → base64 bytes, None: delete).
    # Kept here so that a run killed after the database changed still writes them on recovery.
    files: dict[str, str | None] = field(default_factory=dict)
    pid: int = 0
    host: str = ""
    started_at: str = ""
    updated_at: str = ""

    def at(self, step: str, **changes: Any) -> Journal:
        data = asdict(self)
        data.update(changes, step=step)
        return Journal(**data)

    @property
    def alive(self) -> bool:
        """Whether the process that wrote this journal still runs (on this host)."""
        if self.host != socket.gethostname() or self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def describe(self) -> str:
        """One line a person can act on: what the interrupted run did and what comes next."""
        revs = ", ".join(self.revisions) or self.revision_target or "-"
        who = f"{self.action} of {revs}"
        if self.alive:
            return f"{who} in progress (pid {self.pid}, step {self.step})"
        if self.failed:
            return f"{who} failed ({self.failed}); the next apply cleans up first"
        if self.step in ("locked", "backup"):
            return (f"{who} interrupted during backup; the database was not changed "
                    f"(the next apply redoes it)")
        if self.step in ("backup_done", "upgrade"):
            return (f"{who} interrupted during the upgrade; the next apply cleans up and "
                    f"finishes it")
        return f"{who}: applied, not yet committed (the next apply writes the audit and commit)"


# Identity keys read from servers in this process, by URL (see :func:`identify`).
_IDENTITIES: dict[str, str] = {}


def legacy_key(target: Target) -> str:
    """The key of a database named by its URL (the embedded server's port changes)."""
    return f"embedded/{target.database}" if target.embedded else target.display


def identify(target: Target, conn: psycopg.Connection[Any]) -> str:
    """Read the database's identity from the server and remember it as ``target``'s key.

    The identity is the cluster's system identifier (``pg_control_system()``) and the
    database's oid: the same database reached through a proxy, a DNS name or an IP has one
    journal. A role that may not read the control data keeps the URL key.
    """
    import psycopg

    try:
        row = conn.execute("select (select system_identifier from pg_control_system()), "
                           "(select oid from pg_database where datname = current_database())"
                           ).fetchone()
    except psycopg.Error:
        row = None
    key = f"db/{row[0]}/{row[1]}" if row and row[0] is not None else legacy_key(target)
    _IDENTITIES[target.url] = key
    return key


def key_of(target: Target) -> str:
    """The journal key of a database: its identity once :func:`identify` read it, else the
    URL's."""
    return _IDENTITIES.get(target.url) or legacy_key(target)


def adopt_legacy(repo: SchemaRepo, target: Target) -> None:
    """Move a journal written under the URL key to the identity key (older runs)."""
    key, old = key_of(target), legacy_key(target)
    if key == old or _path(repo, key).exists() or not _path(repo, old).exists():
        return
    j = load(repo, old)
    if j is not None:
        write(repo, Journal(**{**asdict(j), "key": key}))
    clear(repo, old)


def _path(repo: SchemaRepo, key: str) -> Path:
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return repo.state_dir / f"journal-{digest}.json"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def new(repo: SchemaRepo, *, key: str, id: str, action: str, database: str, actor: str,
        revision_before: str | None, revision_target: str | None, revisions: list[str],
        git_commit: str | None, git_branch: str | None,
        verify_git_rev: str | None = "HEAD",
        commit_paths: list[str] | None = None,
        files: dict[str, str | None] | None = None) -> Journal:
    """Start a journal at step ``locked`` (written at once)."""
    j = Journal(id=id, action=action, step="locked", database=database, actor=actor,
                revision_before=revision_before, revision_target=revision_target,
                revisions=revisions, git_commit=git_commit, git_branch=git_branch,
                verify_git_rev=verify_git_rev, commit_paths=list(commit_paths or []),
                files=dict(files or {}), key=key,
                pid=os.getpid(), host=socket.gethostname(), started_at=_now())
    return write(repo, j)


def write(repo: SchemaRepo, j: Journal) -> Journal:
    """Replace the journal atomically; then honour the test pause hook for its step."""
    j = Journal(**{**asdict(j), "updated_at": _now()})
    path = _path(repo, j.key or j.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(asdict(j), fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    pause_at(j.step)
    return j


def load(repo: SchemaRepo, key: str) -> Journal | None:
    """The journal of a database (see :func:`key_of`), or None; unreadable counts as none."""
    path = _path(repo, key)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Journal(**data)
    except (FileNotFoundError, ValueError, TypeError):
        return None


def every(repo: SchemaRepo) -> list[Journal]:
    """Every journal of the repository (one per database with a run under way or killed)."""
    found = []
    for path in sorted(repo.state_dir.glob("journal-*.json")):
        try:
            found.append(Journal(**json.loads(path.read_text(encoding="utf-8"))))
        except (FileNotFoundError, ValueError, TypeError):
            continue
    return found


def clear(repo: SchemaRepo, key: str) -> None:
    _path(repo, key).unlink(missing_ok=True)


def pause_at(step: str) -> None:
    """Test hook: sleep at ``step`` when $SCHEMACTL_TEST_PAUSE_AT names it."""
    wanted = os.environ.get("SCHEMACTL_TEST_PAUSE_AT", "")
    if wanted and step in {s.strip() for s in wanted.split(",")}:
        time.sleep(float(os.environ.get("SCHEMACTL_TEST_PAUSE_SECONDS", "30")))


def fail_commit_hook() -> None:
    """Test hook: fail the run's commit when $SCHEMACTL_TEST_FAIL_COMMIT is set."""
    if os.environ.get("SCHEMACTL_TEST_FAIL_COMMIT"):
        from schemactl.errors import EnvironmentError_

        raise EnvironmentError_("git commit failed: refused by SCHEMACTL_TEST_FAIL_COMMIT")
