"""Online changes as the pipeline sees them: which are under way (for drift and status).

The steps themselves run inside the migration (``schemactl/templates/online_helpers.py``,
written into the file so plain Alembic runs them); their progress rows live in
``schemactl_archive.online_progress``, committed with each backfill batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from schemactl.adapters.database import Target
    from schemactl.model.repo import SchemaRepo


def under_way(connection: Connection) -> list[dict[str, Any]]:
    """Online changes started and not finished: revision, table, column, step, shadow, rows."""
    from sqlalchemy import text

    present = connection.execute(
        text("SELECT to_regclass('schemactl_archive.online_progress')")).scalar()
    if present is None:
        return []
    rows = connection.execute(text(
        "SELECT revision, table_name, column_name, step, shadow, rows_done "
        "FROM schemactl_archive.online_progress WHERE step <> 'done' ORDER BY started_at"))
    return [{"revision": r[0], "table": r[1], "column": r[2], "step": r[3], "shadow": r[4],
             "rows_done": int(r[5])} for r in rows]


def hide_shadows(connection: Connection, differences: list[dict[str, Any]]
                 ) -> list[dict[str, Any]]:
    """Drift without the shadow columns of online changes under way (the next run resumes)."""
    shadows = {(u["table"], u["shadow"]) for u in under_way(connection)}
    if not shadows:
        return differences
    return [d for d in differences
            if not (d.get("kind") == "extra_column" and (d.get("table"), d.get("column"))
                    in shadows)]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def abort_under_way(repo: SchemaRepo, target: Target, actor: str, applied: set[str],
                    wait: float | None = None) -> list[dict[str, Any]]:
    """Undo the expand of online changes whose migration never finished (rollback mid-way).

    The old column was never touched (the shadow and the trigger only copy it), so the old
    shape comes back by dropping the trigger, its function, the NOT NULL check and the
    shadow column. Each abort is audited with the rows it had backfilled. The migration
    stays pending: the next apply starts it again.

    Returns:
        The aborted changes (revision, table, column, step, rows_done), empty when none.
    """
    import uuid

    from schemactl.adapters.database import connect
    from schemactl.pipeline import audit, locking

    with connect(target) as conn:
        present = conn.execute(
            "SELECT to_regclass('schemactl_archive.online_progress')").fetchone()
        if present is None or present[0] is None:
            return []
    done: list[dict[str, Any]] = []
    with locking.apply_lock(target, actor, wait=wait, action="rollback"):
        with connect(target) as conn:
            rows = conn.execute(
                "SELECT revision, table_name, column_name, step, shadow, trigger_name, "
                "function_name, check_name, rows_done, old_column "
                "FROM schemactl_archive.online_progress "
                "WHERE step NOT IN ('done', 'contract', 'archive')").fetchall()
            for rev, table, column, step, shadow, trig, func, check, rows_done, old in rows:
                if rev.split(":")[0] in applied:
                    continue  # its migration is applied: `rollback` runs its downgrade
                t = f"public.{_q(table)}"
                cols = {r[0] for r in conn.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND "
                    "attnum > 0 AND NOT attisdropped", (t,)).fetchall()}
                with conn.transaction():
                    conn.execute(f"SET LOCAL lock_timeout = {int(repo.config.lock_timeout_ms)}")
                    conn.execute(f"DROP TRIGGER IF EXISTS {_q(trig)} ON {t}")
                    conn.execute(f"DROP FUNCTION IF EXISTS public.{_q(func)}()")
                    conn.execute(f"ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {_q(check)}")
                    # A rename's shadow is the new name; the old column must still be there.
                    if shadow in cols and old in cols and shadow != old:
                        conn.execute(f"ALTER TABLE {t} DROP COLUMN {_q(shadow)}")
                    conn.execute("DELETE FROM schemactl_archive.online_progress WHERE "
                                 "revision = %s AND table_name = %s AND column_name = %s",
                                 (rev, table, column))
                    item = {"revision": rev, "table": table, "column": column, "step": step,
                            "rows_backfilled": int(rows_done)}
                    entry = audit.AuditEntry(
                        id=str(uuid.uuid4()), action="rollback", actor=actor, status="success",
                        database=target.display, revision_before=None, revision=None,
                        revisions=[rev], extra={"online_aborted": item})
                    if audit.table_exists(conn):
                        audit.insert_row(conn, entry)
                audit.append_line(repo, entry)
                done.append(item)
            conn.commit()
    return done


def under_way_psycopg(conn: Any) -> list[dict[str, Any]]:
    """:func:`under_way` on a psycopg connection (status)."""
    row = conn.execute("SELECT to_regclass('schemactl_archive.online_progress')").fetchone()
    if row is None or row[0] is None:
        return []
    rows = conn.execute(
        "SELECT revision, table_name, column_name, step, shadow, rows_done "
        "FROM schemactl_archive.online_progress WHERE step <> 'done' ORDER BY started_at"
    ).fetchall()
    return [{"revision": r[0], "table": r[1], "column": r[2], "step": r[3], "shadow": r[4],
             "rows_done": int(r[5])} for r in rows]
