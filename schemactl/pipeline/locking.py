"""One apply at a time per database: a session-level PostgreSQL advisory lock.

The lock is taken on a connection of its own, before anything else the
pipeline does, and held until the pipeline ends (or the process dies: the
server then drops the session and its lock). A session-level lock, unlike a
transaction-level one, survives the per-migration commits and Alembic's
``autocommit_block`` (DESIGN.md, Known pitfalls).

The migration connection takes a second key (:data:`MIGRATION_KEY`) for the
same reason from the other side: a server backend still running DDL for a
client that was killed keeps that key until its statement ends, so a new
apply cannot interleave with it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from schemactl.adapters.database import Target, connect
from schemactl.errors import ConflictError

if TYPE_CHECKING:
    import psycopg


def stable_key(name: str) -> int:
    """A signed 64-bit advisory lock key derived from ``name`` (same on every machine)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


APPLY_KEY = stable_key("schemactl.apply")
MIGRATION_KEY = stable_key("schemactl.apply.migration")


def application_name(actor: str, action: str = "apply") -> str:
    """What pg_stat_activity shows for schemactl's sessions (63 bytes at most)."""
    return f"schemactl {action} {actor}"[:63]


def holders(conn: psycopg.Connection[Any], key: int = APPLY_KEY) -> list[dict[str, Any]]:
    """Sessions holding the advisory lock ``key`` in this database."""
    classid, objid = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF
    rows = conn.execute(
        "select a.pid, a.application_name, a.client_addr::text, a.backend_start "
        "from pg_locks l join pg_stat_activity a on a.pid = l.pid "
        "where l.locktype = 'advisory' and l.granted and l.classid = %s and l.objid = %s "
        "and l.objsubid = 1 and l.database = (select oid from pg_database "
        "where datname = current_database())",
        (classid, objid)).fetchall()
    return [{"pid": r[0], "application_name": r[1], "client": r[2] or "local",
             "since": r[3].isoformat() if r[3] else None} for r in rows]


def _describe(found: list[dict[str, Any]]) -> str:
    if not found:
        return "another session (it just released it, or is invisible to this role)"
    h = found[0]
    return f"{h['application_name'] or 'an unnamed session'} (pid {h['pid']}, {h['client']})"


@contextmanager
def apply_lock(target: Target, actor: str, *, wait: float | None = None,
               action: str = "apply", poll: float = 0.2) -> Iterator[psycopg.Connection[Any]]:
    """Hold the database's apply lock for the duration of the block.

    Args:
        target: the database.
        actor: who applies (shown to a second caller through application_name).
        wait: None to fail at once when the lock is held; a number of seconds to wait
            (0 or less: wait without limit).
        action: the pipeline's action, for application_name.
        poll: seconds between attempts while waiting.

    Yields:
        The autocommit connection holding the lock (usable for small queries).

    Raises:
        ConflictError: another session holds the lock (after ``wait`` seconds, if given).
    """
    conn = connect(target)
    try:
        conn.execute("select set_config('application_name', %s, false)",
                     (application_name(actor, action),))
        deadline = None if wait is None or wait <= 0 else time.monotonic() + wait
        while True:
            row = conn.execute("select pg_try_advisory_lock(%s)", (APPLY_KEY,)).fetchone()
            if row and row[0]:
                break
            if wait is None or (deadline is not None and time.monotonic() >= deadline):
                found = holders(conn)
                waited = "" if wait is None else f" (waited {wait:g} s)"
                raise ConflictError(
                    f"another apply holds the lock on {target.display}: "
                    f"{_describe(found)}{waited}",
                    hint="wait for it to finish, or run `schemactl apply --wait`",
                    code="locked", details={"holders": found})
            time.sleep(poll)
        try:
            yield conn
        finally:
            try:
                conn.execute("select pg_advisory_unlock(%s)", (APPLY_KEY,))
            except Exception:  # noqa: BLE001 - closing the session releases it anyway
                pass
    finally:
        conn.close()
