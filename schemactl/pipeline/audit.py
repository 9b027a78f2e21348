"""Audit entries: one `audit_log` row and one line of the repository's audit file per run.

The row lives in the database it describes; the line (`audit.jsonl`, one JSON
object per line) lives in git, committed with the apply. Both carry the same
``id`` (the row's primary key), so writing either twice is harmless: a crashed
apply that is finished later never audits a revision twice.

``git_commit`` names the commit whose migrations and definitions were applied
(the repository's HEAD when the apply started), not the apply's own commit: that
commit contains the audit line, so the line cannot name it. The apply commit
names the audit entry back through its ``Schemactl-Audit:`` trailer.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from schemactl.model.repo import SchemaRepo

INSERT_SQL = (
    "insert into audit_log (id, action, actor, details, git_commit, git_branch, status) "
    "values (%s, %s, %s, %s::jsonb, %s, %s, %s) on conflict (id) do nothing"
)


@dataclass(frozen=True)
class AuditEntry:
    """What one apply (or rollback) did."""

    id: str
    action: str
    actor: str
    status: str
    database: str
    revision_before: str | None
    revision: str | None
    revisions: list[str] = field(default_factory=list)
    backup_id: str | None = None
    rules_run: list[str] = field(default_factory=list)
    waivers: list[dict[str, Any]] = field(default_factory=list)
    git_commit: str | None = None
    git_branch: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                  time.gmtime()))

    def details(self) -> dict[str, Any]:
        """The `details` jsonb of the audit_log row."""
        out: dict[str, Any] = {
            "revision_before": self.revision_before, "revision": self.revision,
            "revisions": self.revisions, "backup_id": self.backup_id,
            "rules_run": self.rules_run, "waivers": self.waivers, "database": self.database,
        }
        if self.error:
            out["error"] = self.error
        out.update(self.extra)
        return out

    def line(self) -> dict[str, Any]:
        """The object written to the audit file."""
        return asdict(self)

    def with_status(self, status: str, error: str | None = None) -> AuditEntry:
        return AuditEntry(**{**asdict(self), "status": status, "error": error or self.error})


def insert_row(cursor: Any, entry: AuditEntry) -> None:
    """Insert the row through a psycopg connection or cursor (inside the caller's transaction)."""
    cursor.execute(INSERT_SQL, (entry.id, entry.action, entry.actor[:100],
                                json.dumps(entry.details(), default=str), entry.git_commit,
                                (entry.git_branch or "")[:100] or None, entry.status))


def update_status(conn: Any, entry: AuditEntry) -> None:
    """Set the row's status and details (inserting it when it is missing)."""
    insert_row(conn, entry)
    conn.execute("update audit_log set status = %s, details = %s::jsonb where id = %s",
                  (entry.status, json.dumps(entry.details(), default=str), entry.id))


def row_exists(conn: Any, entry_id: str) -> bool:
    row = conn.execute("select to_regclass('public.audit_log') is not null").fetchone()
    if not row or not row[0]:
        return False
    return conn.execute("select 1 from audit_log where id = %s", (entry_id,)).fetchone() \
        is not None


def table_exists(conn: Any) -> bool:
    row = conn.execute("select to_regclass('public.audit_log') is not null").fetchone()
    return bool(row and row[0])


def read_lines(repo: SchemaRepo) -> list[dict[str, Any]]:
    """Every entry of the audit file, oldest first (unreadable lines are skipped)."""
    try:
        text = repo.audit_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash; the next append starts a new line
        if isinstance(obj, dict):
            out.append(obj)
    return out


def has_line(repo: SchemaRepo, entry_id: str) -> bool:
    return any(e.get("id") == entry_id for e in read_lines(repo))


# The targets of a fleet run append from threads of one process: one at a time, so that no
# check for an unfinished last line sees another thread's line half-way.
_append_lock = threading.Lock()


def append_line(repo: SchemaRepo, entry: AuditEntry) -> bool:
    """Append the entry to the audit file unless it is there already; True when written."""
    with _append_lock:
        if has_line(repo, entry.id):
            return False
        path = repo.audit_file
        prefix = b""
        if path.exists() and path.stat().st_size:
            with open(path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    prefix = b"\n"  # never glue onto a line a crash left unfinished
        line = json.dumps(entry.line(), sort_keys=True, default=str).encode() + b"\n"
        # One write of the whole line (O_APPEND): another process's line never lands inside.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            data = prefix + line
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)
        return True


def _entry_view(obj: dict[str, Any], source: str) -> dict[str, Any]:
    return {"id": obj.get("id"), "action": obj.get("action"), "actor": obj.get("actor"),
            "revision": obj.get("revision"), "revision_before": obj.get("revision_before"),
            "revisions": list(obj.get("revisions") or []),
            "backup_id": obj.get("backup_id"), "git_commit": obj.get("git_commit"),
            "status": obj.get("status"), "created_at": obj.get("created_at"),
            "database": obj.get("database"), "error": obj.get("error"), "source": source}


def history(repo: SchemaRepo, conn: Any | None, database: str,
            limit: int = 50) -> list[dict[str, Any]]:
    """Audit entries of ``database``, newest first: the audit_log rows, plus any line of the
    audit file that the database lacks (``conn`` None: the file only)."""
    entries: dict[str, dict[str, Any]] = {}
    if conn is not None and table_exists(conn):
        rows = conn.execute(
            "select id::text, action, actor, details, git_commit, git_branch, status, "
            # created_at is a timestamp in the server's zone: shown in UTC like the file.
            "(created_at at time zone current_setting('TimeZone')) at time zone 'UTC' "
            "from audit_log order by created_at desc limit %s", (limit,)).fetchall()
        for r in rows:
            details = r[3] if isinstance(r[3], dict) else {}
            created = r[7].strftime("%Y-%m-%dT%H:%M:%SZ") if r[7] is not None else None
            entries[r[0]] = _entry_view({
                "id": r[0], "action": r[1], "actor": r[2], "git_commit": r[4],
                "status": r[6], "created_at": created, **{k: details.get(k) for k in (
                    "revision", "revision_before", "revisions", "backup_id", "database",
                    "error")}},
                "database")
    for obj in read_lines(repo):
        if obj.get("database") == database and obj.get("id") not in entries:
            entries[str(obj.get("id"))] = _entry_view(obj, "file")
    ordered = sorted(entries.values(), key=lambda e: str(e.get("created_at") or ""),
                     reverse=True)
    return ordered[:limit]
