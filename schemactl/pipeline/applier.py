"""The migration pipeline, and `schemactl apply` on top of it.

    lock ─► drift check ─► pg_dump backup ─► migrate (timeouts, retries) ─► verify
         ─► audit row + audit line ─► git commit

:func:`run_pipeline` runs those steps for any :class:`Operation` (apply upgrades;
a rollback downgrades with the same steps). Each step is recorded in the journal
(`schemactl.pipeline.journal`) so that a run killed at any point is finished or cleanly
redone by the next one, and ``status`` can say what happened.

Where the audit row is written: inside the transaction of the last migration
(a SQLAlchemy ``commit`` event on the migration connection inserts it just before
that migration commits, once ``alembic_version`` holds the target revision), so
the schema change and its audit row commit together. When that is not possible
(the connection is in an autocommit block, or audit_log does not exist yet) it is
written right after. A failed verify turns the row's status to ``failed``.

Failures: a run that changed nothing (lock timeout, drift, backup failure)
leaves the database's schema and the repository as they were, with one
``failed`` row in audit_log when the table exists. A run that changed the
database and then failed also gets its audit line and commit, so git always
hears about a change to the database.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schemactl.adapters import gitops, migrator
from schemactl.adapters.database import Target, make_engine
from schemactl.errors import (
    ConflictError,
    DatabaseError,
    EnvironmentError_,
    SchemactlError,
)
from schemactl.model.repo import SchemaRepo
from schemactl.pipeline import audit, backup, drift, journal, locking
from schemactl.results import Result

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy.engine import Connection

# progress(step, done, total): the pipeline's steps and the backup's bytes.
Progress = Callable[[str, int, int | None], None]

LOCK_NOT_AVAILABLE = "55P03"


@dataclass(frozen=True)
class ApplyResult(Result):
    applied: list[str] = field(default_factory=list)
    revision_before: str | None = None
    revision: str | None = None
    database: str = ""
    backup: dict[str, Any] | None = None
    commit: str | None = None
    audit_id: str | None = None
    attempts: int = 0
    # "in_transaction": the audit row committed with the last migration; "after": right after.
    audit_row: str | None = None
    recovered: str | None = None
    # Live tables no definition or core model names: reported, never touched.
    unmanaged: list[str] = field(default_factory=list)
    message: str = ""


@dataclass(frozen=True)
class Operation:
    """What one pipeline run changes, decided under the lock from the database's revision.

    Attributes:
        action: "apply" or "rollback" (audit action, commit trailer, application_name).
        revisions: the revisions this run applies (or undoes), in order.
        revision_target: the revision the database is at when the run succeeds.
        migrate: runs Alembic on the given SQLAlchemy connection (upgrade or downgrade).
            Called again on a retry; committed migrations are then already done.
        verify_git_rev: the git revision whose definitions the result must match ("HEAD"),
            or None for the definitions of the commit that added ``revision_target``.
        details: extra audit details (e.g. archived tables of a rollback).
        commit_paths: repository paths (relative) that ``migrate`` changes and the run's
            commit must carry besides the audit file (a rollback removes its migration file
            and restores definitions, so git follows the database).
    """

    action: str
    revisions: list[str]
    revision_target: str | None
    migrate: Callable[[Connection], None]
    verify_git_rev: str | None = "HEAD"
    details: dict[str, Any] = field(default_factory=dict)
    commit_paths: list[str] = field(default_factory=list)
    # Repository files to write (None: remove) after the migrations, before the commit.
    files: dict[str, bytes | None] = field(default_factory=dict)


def _encode_files(files: dict[str, bytes | None]) -> dict[str, str | None]:
    return {p: None if d is None else base64.b64encode(d).decode() for p, d in files.items()}


def _write_journal_files(repo: SchemaRepo, files: dict[str, str | None]) -> None:
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


# plan(current_revision) -> Operation, or None when there is nothing to do.
Plan = Callable[[str | None], Operation | None]


@dataclass(frozen=True)
class Guard:
    """Who may change the database, checked by the layer that calls the pipeline.

    The pipeline never imports the policy that decides; the verb layer hands one in
    (`schemactl.verbs.policy.guard_for`). ``refuse_early(action)`` runs before anything
    is touched; ``wrap(plan)`` may re-check under the lock, where the plan is decided.
    """

    refuse_early: Callable[[str], None] = lambda action: None
    wrap: Callable[[Plan], Plan] = lambda plan: plan


NO_GUARD = Guard()


def session_options(repo: SchemaRepo) -> dict[str, str]:
    """libpq options of the migration session (set at connect: no SET before Alembic)."""
    cfg = repo.config
    return {"lock_timeout": f"{cfg.lock_timeout_ms}ms",
            "statement_timeout": f"{cfg.statement_timeout_ms}ms",
            # A backend whose client was killed stops its DDL within a second.
            "client_connection_check_interval": "1000"}


# -- small helpers -------------------------------------------------------------------------


def _sqlstate(exc: BaseException) -> str | None:
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


def _say(progress: Progress | None, step: str) -> None:
    if progress is not None:
        progress(step, 0, None)


def _current_revision(conn: psycopg.Connection[Any]) -> str | None:
    return migrator.current_revision(conn)


def _invalid_indexes(conn: psycopg.Connection[Any], tables: set[str], schema: str) -> list[str]:
    rows = conn.execute(
        "select c.relname, t.relname from pg_index i "
        "join pg_class c on c.oid = i.indexrelid join pg_class t on t.oid = i.indrelid "
        "join pg_namespace n on n.oid = c.relnamespace "
        "where not i.indisvalid and n.nspname = %s", (schema,)).fetchall()
    return sorted(str(r[0]) for r in rows if r[1] in tables)


def managed_tables(repo: SchemaRepo) -> set[str]:
    """Tables schemactl manages: core models plus every dynamic definition at HEAD."""
    from schemactl.codegen.metadata import build_metadata
    from schemactl.model.definitions import load_at_rev

    defs = dict(load_at_rev(repo.root, "HEAD"))
    return set(build_metadata(defs).tables) | set(defs)


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

    schema = repo.config.dynamic_schema
    wait_ms = max(2000, repo.config.lock_timeout_ms)
    dropped: list[str] = []
    left: list[str] = []
    for name in _invalid_indexes(conn, managed_tables(repo), schema):
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


def _commit_with_retry(repo: SchemaRepo, paths: list[Path], subject: str,
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


def _subject(action: str, revisions: list[str], target: Target, failed: bool) -> str:
    revs = ", ".join(revisions) if len(revisions) <= 3 else \
        f"{revisions[0]} … {revisions[-1]} ({len(revisions)})"
    where = f"{target.database} ({target.host_port})"
    return f"{action}{' FAILED' if failed else ''}: {revs or '-'} → {where}"


# -- the steps ---------------------------------------------------------------------------------


class _AuditInTransaction:
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


def _migrate_with_retries(repo: SchemaRepo, target: Target, actor: str, op: Operation,
                          lock_conn: psycopg.Connection[Any], j: journal.Journal,
                          hook: _AuditInTransaction,
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
            dropped, left = drop_new_invalid_indexes(repo, lock_conn, j.invalid_indexes_before)
            state = _sqlstate(exc)
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
                    _say(progress, f"lock timeout, retry {attempt + 1}/{tries} in {delay:.1f} s")
                    time.sleep(delay)
                    continue
                raise EnvironmentError_(
                    f"{op.action} gave up: a lock was not granted within "
                    f"{cfg.lock_timeout_ms} ms on {tries} tries",
                    hint="another session holds a lock on the table; retry when it ends "
                         "(see pg_stat_activity), or raise [apply] lock_retries",
                    code="lock_timeout",
                    details={"attempts": attempt, "dropped_invalid_indexes": dropped}) from exc
            if isinstance(exc, SchemactlError):
                if dropped:
                    exc.details["dropped_invalid_indexes"] = dropped
                raise
            from sqlalchemy.exc import DBAPIError

            if isinstance(exc, DBAPIError):
                first = str(getattr(exc, "orig", exc)).strip().splitlines()
                raise DatabaseError(f"{op.action} failed: {first[0] if first else exc}",
                                    details={"sqlstate": state,
                                             "dropped_invalid_indexes": dropped}) from exc
            raise
        finally:
            engine.dispose()
    raise AssertionError("unreachable")


def _finish(repo: SchemaRepo, target: Target, lock_conn: psycopg.Connection[Any],
            j: journal.Journal, entry: audit.AuditEntry,
            progress: Progress | None) -> tuple[journal.Journal, str | None, audit.AuditEntry]:
    """Verify, audit and commit a run whose migrations are done (also used to recover one).

    Returns:
        (journal, commit sha, final audit entry). Raises after auditing and committing when
        the verification fails.
    """
    _say(progress, "verify")
    report = drift.check(repo, target, entry.revision, git_rev=j.verify_git_rev)
    differences = drift.blocking(report.differences, managed_tables(repo))
    verify_error = None
    if differences:
        verify_error = "; ".join(d["message"] for d in differences[:10])
        entry = entry.with_status("failed", f"verify: {verify_error}")
        entry = replace(entry, extra={**entry.extra, "drift": differences})
    j = journal.write(repo, j.at("verified"))
    _say(progress, "audit")
    if audit.table_exists(lock_conn):
        if verify_error or not audit.row_exists(lock_conn, entry.id):
            audit.update_status(lock_conn, entry)
    audit.append_line(repo, entry)
    j = journal.write(repo, j.at("audited"))
    _say(progress, "commit")
    _write_journal_files(repo, j.files)
    # Paths already committed (a recovered run) are gone from disk and from HEAD: skip them.
    extra = [repo.root / p for p in j.commit_paths
             if (repo.root / p).exists() or gitops.read_at(repo.root, "HEAD", p) is not None]
    sha = _commit_with_retry(
        repo, [repo.audit_file, *extra],
        _subject(j.action, j.revisions, target, bool(verify_error)),
        {"Schemactl-Action": j.action, "Schemactl-Revision": entry.revision,
         "Schemactl-Backup": entry.backup_id, "Schemactl-Actor": entry.actor,
         "Schemactl-Audit": entry.id, "Schemactl-Database": target.display,
         "Schemactl-Status": entry.status})
    journal.clear(repo, journal.key_of(target))
    if verify_error:
        raise EnvironmentError_(
            f"{j.action} ran but the database does not match the definitions at HEAD: "
            f"{verify_error}",
            hint="the run is audited as failed and a backup was taken; inspect the differences "
                 "(`schemactl status`) and fix the migration",
            code="verify_failed", details={"drift": differences, "commit": sha})
    return j, sha, entry


def _recover(repo: SchemaRepo, target: Target, lock_conn: psycopg.Connection[Any],
             j: journal.Journal, progress: Progress | None) -> ApplyResult | None:
    """Finish or clean up a run that died; returns its result when it was finished here."""
    current = _current_revision(lock_conn)
    if j.step in ("locked", "backup", "backup_done", "upgrade") \
            and current != j.revision_target:
        # The database is where the run started, or part-way: committed migrations stay,
        # a half-built concurrent index goes, and this run redoes the rest.
        _dropped, left = drop_new_invalid_indexes(repo, lock_conn, j.invalid_indexes_before)
        if left:
            raise DatabaseError(
                f"the interrupted {j.action} left invalid index(es) {', '.join(left)} that "
                "cannot be dropped yet", code="invalid_index_left",
                hint="a long transaction uses the table; retry when it ends")
        journal.clear(repo, journal.key_of(target))
        return None
    if current != j.revision_target:
        journal.clear(repo, journal.key_of(target))
        return None
    # The migrations are all in: write what is missing (audit row, line, commit).
    entry = _entry_from(j, status="success")
    _j, sha, entry = _finish(repo, target, lock_conn, j, entry, progress)
    b = None
    if j.backup_id:
        try:
            b = backup.get_backup(repo, j.backup_id).brief()
        except SchemactlError:
            b = {"id": j.backup_id, "path": None, "sha256": None}
    return ApplyResult(command=j.action, applied=list(j.revisions),
                       revision_before=j.revision_before, revision=current,
                       database=target.display, backup=b, commit=sha, audit_id=entry.id,
                       recovered=f"finished the interrupted {j.action} {j.id}",
                       message="finished an interrupted run")


def _entry_from(j: journal.Journal, status: str, error: str | None = None,
                details: dict[str, Any] | None = None) -> audit.AuditEntry:
    return audit.AuditEntry(
        id=j.id, action=j.action, actor=j.actor, status=status, database=j.database,
        revision_before=j.revision_before, revision=j.revision_target,
        revisions=list(j.revisions), backup_id=j.backup_id, git_commit=j.git_commit,
        git_branch=j.git_branch, error=error, extra=dict(details or {}))


def run_pipeline(repo: SchemaRepo, target: Target, actor: str, plan: Plan, *,
                 action: str = "apply", wait: float | None = None,
                 progress: Progress | None = None, rules_run: list[str] | None = None,
                 waivers: list[dict[str, Any]] | None = None) -> ApplyResult:
    """Run lock, drift check, backup, migration, verify, audit and commit for one operation.

    Args:
        repo: the schema repository.
        target: the database.
        actor: who acts (audit entry, commit trailer, application_name).
        plan: called under the lock with the database's revision; returns the
            :class:`Operation` to run, or None when there is nothing to do.
        action: the action name used before the plan exists (lock, messages).
        wait: None to fail at once when another run holds the lock, else seconds to wait
            (0 or less: no limit).
        progress: called with (step, done, total) as the run advances; never prints.
        rules_run: safety rule codes that checked these migrations (recorded in the audit).
        waivers: waivers in force (recorded in the audit).

    Raises:
        ConflictError: the lock is held, or the live schema drifted from git (exit 4).
        EnvironmentError_: pg_dump missing or failing, lock timeouts on every try, a failed
            migration or verification (exit 3).
    """
    with locking.apply_lock(target, actor, wait=wait, action=action) as lock_conn:
        _say(progress, "lock")
        backup.cleanup_incomplete(repo)
        recovered: ApplyResult | None = None
        previous = journal.load(repo, journal.key_of(target))
        if previous is not None:
            recovered = _recover(repo, target, lock_conn, previous, progress)
        before = _current_revision(lock_conn)
        op = plan(before)
        if op is None:
            if recovered is not None:
                return recovered
            return ApplyResult(command=action, applied=[], revision_before=before,
                               revision=before, database=target.display,
                               message="nothing to do")
        schema = repo.config.dynamic_schema
        run_id = str(uuid.uuid4())
        j = journal.new(repo, key=journal.key_of(target), id=run_id, action=op.action,
                        database=target.display, actor=actor,
                        revision_before=before, revision_target=op.revision_target,
                        revisions=list(op.revisions), git_commit=gitops.head_sha(repo.root),
                        git_branch=gitops.current_branch(repo.root),
                        verify_git_rev=op.verify_git_rev, commit_paths=list(op.commit_paths),
                        files=_encode_files(op.files))
        details = {**op.details, **({"recovered_from": previous.id} if previous else {})}

        def failed(exc: SchemactlError, changed: bool) -> None:
            entry = replace(_entry_from(j, "failed", target.scrub(exc.message), details),
                            rules_run=list(rules_run or []), waivers=list(waivers or []))
            try:
                if audit.table_exists(lock_conn):
                    audit.update_status(lock_conn, entry)
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
            if changed:
                now = _current_revision(lock_conn)
                entry = replace(entry, revision=now)
                audit.append_line(repo, entry)
                try:
                    _commit_with_retry(
                        repo, [repo.audit_file],
                        _subject(op.action, op.revisions, target, True),
                        {"Schemactl-Action": op.action, "Schemactl-Revision": now,
                         "Schemactl-Backup": j.backup_id, "Schemactl-Actor": actor,
                         "Schemactl-Audit": run_id, "Schemactl-Database": target.display,
                         "Schemactl-Status": "failed"})
                except SchemactlError:
                    pass
            if exc.details.get("invalid_indexes_left"):
                # Keep the journal: the next run drops what this one could not.
                journal.write(repo, j.at("upgrade", failed=exc.message))
            else:
                journal.clear(repo, journal.key_of(target))
            exc.message = target.scrub(exc.message)

        # 1. drift: the live schema must be what git says for this revision.
        _say(progress, "drift check")
        try:
            report = drift.check(repo, target, before)
        except SchemactlError as exc:
            journal.clear(repo, journal.key_of(target))
            raise exc
        managed = managed_tables(repo)
        unmanaged = drift.unmanaged_tables(report.differences, managed)
        if drift.blocking(report.differences, managed):
            journal.clear(repo, journal.key_of(target))
            shown = "; ".join(d["message"] for d in report.differences[:5])
            more = len(report.differences) - 5
            raise ConflictError(
                f"the database has drifted from git at revision {before}: {shown}"
                + (f" (+{more} more)" if more > 0 else ""),
                hint="nothing was changed; bring the database back to its definitions (or "
                     "the definitions to the database, through a proposal) and apply again",
                code="drift", details={"drift": report.differences})

        # 2. backup, before anything changes.
        j = journal.write(repo, j.at("backup"))
        _say(progress, "backup")
        try:
            b = backup.create_backup(repo, target, before, progress=progress)
        except SchemactlError as exc:
            failed(exc, changed=False)
            raise
        j = journal.write(repo, j.at("backup_done", backup_id=b.id))

        # 3. migrate, with timeouts and retries.
        invalid_before = _invalid_indexes(lock_conn, managed_tables(repo), schema)
        j = journal.write(repo, j.at("upgrade", invalid_indexes_before=invalid_before))
        entry = replace(_entry_from(j, "success", None, details),
                        rules_run=list(rules_run or []), waivers=list(waivers or []))
        hook = _AuditInTransaction(entry)
        _say(progress, op.action)
        try:
            attempts = _migrate_with_retries(repo, target, actor, op, lock_conn, j, hook,
                                             progress)
        except SchemactlError as exc:
            failed(exc, changed=_current_revision(lock_conn) != before)
            raise
        after = _current_revision(lock_conn)
        if after != op.revision_target:
            wrong = DatabaseError(f"{op.action} ended at revision {after}, expected "
                                  f"{op.revision_target}")
            failed(wrong, changed=after != before)
            raise wrong
        j = journal.write(repo, j.at("upgraded", audit_row=hook.written))

        # 4. verify, audit, commit.
        _j, sha, entry = _finish(repo, target, lock_conn, j, entry, progress)
        return ApplyResult(command=op.action, applied=list(op.revisions),
                           revision_before=before, revision=after, database=target.display,
                           backup=b.brief(), commit=sha, audit_id=run_id, attempts=attempts,
                           audit_row="in_transaction" if hook.written else "after",
                           recovered=recovered.recovered if recovered else None,
                           unmanaged=unmanaged,
                           message=f"{op.action}: {len(op.revisions)} revision(s)")


def apply_plan(repo: SchemaRepo) -> Plan:
    """The plan of `schemactl apply`: upgrade to the single head of migrations/."""

    def plan(current: str | None) -> Operation | None:
        todo = migrator.pending(repo, current)
        if not todo:
            return None
        top = todo[-1]
        return Operation(action="apply", revisions=todo, revision_target=top,
                         migrate=lambda conn: migrator.upgrade(repo, conn, top),
                         verify_git_rev="HEAD")

    return plan


def apply(repo: SchemaRepo, target: Target, actor: str, *, wait: float | None = None,
          progress: Progress | None = None, guard: Guard = NO_GUARD) -> ApplyResult:
    """Upgrade the database to the single head of migrations/, through the whole pipeline.

    Raises:
        ConflictError: another apply holds the lock, the database drifted from git, is at a
            revision git does not know, or migrations/ has several heads (exit 4).
        EnvironmentError_: the database cannot be reached, no usable pg_dump, lock timeouts
            on every try, a failed migration or verification (exit 3).
        PolicyError: the guard refused the actor (exit 1, nothing changed).
    """
    # Agents: "never" refuses before the lock; "safe" re-checks under the lock (the guard).
    guard.refuse_early("apply")
    waivers = [{"rule": w.rule, "reason": w.reason, "table": w.table, "column": w.column}
               for w in repo.config.waivers]
    return run_pipeline(repo, target, actor, guard.wrap(apply_plan(repo)),
                        action="apply", wait=wait, progress=progress, waivers=waivers)


def pipeline_state(repo: SchemaRepo, target: Target) -> str | None:
    """What an interrupted or running pipeline left for ``target`` (None: nothing)."""
    j = journal.load(repo, journal.key_of(target))
    return j.describe() if j is not None else None

