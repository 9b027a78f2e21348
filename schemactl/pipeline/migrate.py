"""The migrate step: Alembic under lock_timeout, retried with backoff, audit row in its transaction.

A failed concurrent index build leaves an invalid index; this step drops the ones it made
(never one that was invalid before the run) so that a retry or the next run can build it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from schemactl.adapters import migrator
from schemactl.adapters.database import Target, make_engine
from schemactl.errors import DatabaseError, EnvironmentError_, SchemactlError, translate
from schemactl.model.naming import DYNAMIC_SCHEMA
from schemactl.model.repo import SchemaRepo
from schemactl.pipeline import audit, journal, locking
from schemactl.pipeline.operation import Operation, Progress, say

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy.engine import Connection

LOCK_NOT_AVAILABLE = "55P03"


def session_options(repo: SchemaRepo) -> dict[str, str]:
    """libpq options of the migration session (set at connect: no SET before Alembic)."""
    cfg = repo.config
    return {"lock_timeout": f"{cfg.lock_timeout_ms}ms",
            "statement_timeout": f"{cfg.statement_timeout_ms}ms",
            # A backend whose client was killed stops its DDL within a second.
            "client_connection_check_interval": "1000"}


def sqlstate(exc: BaseException) -> str | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, SchemactlError) and seen.details.get("sqlstate"):
            return str(seen.details["sqlstate"])
        state = getattr(getattr(seen, "orig", None), "sqlstate", None) \
            or getattr(seen, "sqlstate", None)
        if state:
            return str(state)
        seen = seen.__cause__ or seen.__context__
    return None


def current_revision(conn: psycopg.Connection[Any]) -> str | None:
    return migrator.current_revision(conn)


def invalid_indexes(conn: psycopg.Connection[Any], tables: set[str], schema: str) -> list[str]:
    rows = conn.execute(
        "select c.relname, t.relname from pg_index i "
        "join pg_class c on c.oid = i.indexrelid join pg_class t on t.oid = i.indrelid "
        "join pg_namespace n on n.oid = c.relnamespace "
        "where not i.indisvalid and n.nspname = %s", (schema,)).fetchall()
    return sorted(str(r[0]) for r in rows if r[1] in tables)


def managed_tables(repo: SchemaRepo) -> set[str]:
    """Tables schemactl manages: core models plus every dynamic definition at HEAD."""
    from schemactl.pipeline import expected

    return expected.managed_tables(repo)


def drop_new_invalid_indexes(repo: SchemaRepo, conn: psycopg.Connection[Any],
                             before: list[str]) -> tuple[list[str], list[str]]:
    """Drop invalid indexes a failed CONCURRENTLY build left on managed tables.

    Only indexes that were not already invalid before the run are dropped (``before``):
    an object schemactl did not make is never touched. ``DROP INDEX CONCURRENTLY`` waits
    for the transactions using the table, so it gets a bounded lock_timeout; an index it
    could not drop is returned as left for the next run.

    Returns:
        (dropped, left) index names.
    """
    import psycopg
    from psycopg import sql

    schema = DYNAMIC_SCHEMA
    wait_ms = max(2000, repo.config.lock_timeout_ms)
    dropped: list[str] = []
    left: list[str] = []
    for name in invalid_indexes(conn, managed_tables(repo), schema):
        if name in before:
            continue
        try:
            conn.execute(f"set lock_timeout = '{int(wait_ms)}ms'")
            conn.execute(sql.SQL("drop index concurrently if exists {}.{}").format(
                sql.Identifier(schema), sql.Identifier(name)))
            dropped.append(name)
        except psycopg.Error:
            left.append(name)
    return dropped, left


class AuditInTransaction:
    """Writes the audit row inside the last migration's transaction (a commit event)."""

    def __init__(self, entry: audit.AuditEntry) -> None:
        self.entry = entry
        self.written = False
        self.paused = False

    def __call__(self, conn: Connection) -> None:
        from psycopg.pq import TransactionStatus

        raw = conn.connection.dbapi_connection
        if raw is None or self.written:
            return
        if raw.info.transaction_status != TransactionStatus.INTRANS:
            return
        cur = raw.cursor()
        try:
            cur.execute("savepoint schemactl_audit")
            cur.execute("select to_regclass('public.alembic_version') is not null, "
                        "to_regclass('public.audit_log') is not null")
            has_version, has_audit = cur.fetchone() or (False, False)
            current = None
            if has_version:
                cur.execute("select version_num from alembic_version")
                row = cur.fetchone()
                current = row[0] if row else None
            if current == self.entry.revision:
                if has_audit:
                    audit.insert_row(cur, self.entry)
                    self.written = True
                if not self.paused:
                    self.paused = True
                    # Test hook: the last migration's DDL and audit row, not yet committed.
                    journal.pause_at("migration")
            cur.execute("release savepoint schemactl_audit")
        except Exception:  # noqa: BLE001 - never fail a migration for its audit row
            try:
                cur.execute("rollback to savepoint schemactl_audit")
            except Exception:  # noqa: BLE001
                pass
        finally:
            cur.close()


def migrate_with_retries(repo: SchemaRepo, target: Target, actor: str, op: Operation,
                          lock_conn: psycopg.Connection[Any], j: journal.Journal,
                          hook: AuditInTransaction,
                          progress: Progress | None) -> int:
    """Run ``op.migrate`` with lock_timeout, retrying on lock timeouts with backoff.

    Returns:
        The number of attempts made.

    Raises:
        EnvironmentError_: lock timeouts on every try (code ``lock_timeout``), or the
            migration failed (transactional work rolled back, invalid indexes dropped).
    """
    from sqlalchemy import event, text

    cfg = repo.config
    tries = max(1, cfg.lock_retries)
    for attempt in range(1, tries + 1):
        engine = make_engine(target, session_options(repo))
        try:
            with engine.connect() as conn:
                conn.execute(text("select set_config('application_name', :n, false)"),
                             {"n": locking.application_name(actor, op.action)})
                conn.execute(text("select pg_advisory_lock(:k)"), {"k": locking.MIGRATION_KEY})
                # Commit now: a transaction open when Alembic configures would be treated as
                # external and never committed (DESIGN.md, Known pitfalls).
                conn.commit()
                event.listen(conn, "commit", hook)
                op.migrate(conn)
            return attempt
        except Exception as exc:
            dropped, left, cleanup_failed = _clean_up_after(repo, lock_conn, j)
            state = sqlstate(exc)
            if left:
                # A retry would find the invalid index "already there" (IF NOT EXISTS): stop.
                raise DatabaseError(
                    f"{op.action} failed and the invalid index(es) {', '.join(left)} left by a "
                    f"failed concurrent build could not be dropped yet",
                    hint="a long transaction uses the table; the next apply drops them first",
                    code="invalid_index_left",
                    details={"sqlstate": state, "invalid_indexes_left": left,
                             "dropped_invalid_indexes": dropped}) from exc
            if state == LOCK_NOT_AVAILABLE:
                if attempt < tries:
                    delay = cfg.retry_backoff_ms / 1000 * 2 ** (attempt - 1)
                    say(progress, f"lock timeout, retry {attempt + 1}/{tries} in {delay:.1f} s")
                    time.sleep(delay)
                    continue
                raise EnvironmentError_(
                    f"{op.action} gave up: a lock was not granted within "
                    f"{cfg.lock_timeout_ms} ms on {tries} tries",
                    hint="another session holds a lock on the table; retry when it ends "
                         "(see pg_stat_activity), or raise [apply] lock_retries",
                    code="lock_timeout",
                    details={"attempts": attempt, "dropped_invalid_indexes": dropped}) from exc
            failure = _attempt_failure(exc, op.action, state, dropped, cleanup_failed)
            if failure is exc:
                raise
            raise failure from exc
        finally:
            engine.dispose()
    raise AssertionError("unreachable")


def _clean_up_after(repo: SchemaRepo, lock_conn: psycopg.Connection[Any],
                    j: journal.Journal) -> tuple[list[str], list[str], bool]:
    """After a failed attempt: drop the invalid indexes it left; (dropped, left, failed)."""
    try:
        dropped, left = drop_new_invalid_indexes(repo, lock_conn, j.invalid_indexes_before)
    except Exception:  # noqa: BLE001 - the lock connection died too: the next run cleans
        return [], [], True
    return dropped, left, False


def _attempt_failure(exc: Exception, action: str, state: str | None, dropped: list[str],
                     cleanup_failed: bool) -> BaseException:
    """The one-line error a failed attempt ends with (``exc`` itself when it is one already
    or nothing better is known); its details say what the clean-up did."""
    from sqlalchemy.exc import DBAPIError

    cleanup = {"dropped_invalid_indexes": dropped}
    if isinstance(exc, SchemactlError):
        if dropped:
            exc.details.update(cleanup)
        return exc
    if isinstance(exc, DBAPIError):
        import psycopg

        first = str(getattr(exc, "orig", exc)).strip().splitlines()
        lost = bool(exc.connection_invalidated) or cleanup_failed or (
            isinstance(exc.orig, psycopg.OperationalError) and state is None)
        return DatabaseError(f"{action} failed: {first[0] if first else exc}",
                             code="connection_lost" if lost else None,
                             details={"sqlstate": state, "cleanup_failed": cleanup_failed,
                                      **cleanup})
    if isinstance(exc, RuntimeError):
        # A migration's own refusal (existing rows violate a new check, ...): its
        # transaction was rolled back; say why in one line.
        return DatabaseError(f"{action} failed: {exc}", code="migration_refused",
                             details=cleanup)
    # PendingRollbackError, a psycopg error outside SQLAlchemy, a full disk...
    known = translate(exc)
    if known is None:
        return exc
    known.message = f"{action} failed: {known.message}"
    known.details["cleanup_failed"] = cleanup_failed
    return known
