"""The pipeline runner: one :class:`~schemactl.pipeline.operation.Operation` through every step.

    lock ─► drift check ─► pg_dump backup ─► migrate (timeouts, retries) ─► verify
         ─► audit row + audit line ─► git commit

:func:`run_pipeline` runs those steps for any operation (apply upgrades; a rollback
downgrades with the same steps). Each step is recorded in the journal
(`schemactl.pipeline.journal`) so that a run killed at any point is finished or cleanly
redone by the next one (`schemactl.pipeline.recovery`), and ``status`` can say what
happened.

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

import uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from schemactl.adapters import gitops, gitstate
from schemactl.adapters.database import Target
from schemactl.errors import (
    ConflictError,
    DatabaseError,
    EnvironmentError_,
    SchemactlError,
    translate,
)
from schemactl.model.naming import DYNAMIC_SCHEMA
from schemactl.model.repo import SchemaRepo
from schemactl.pipeline import audit, backup, committing, drift, journal, locking, recovery
from schemactl.pipeline.migrate import (
    AuditInTransaction,
    current_revision,
    invalid_indexes,
    managed_tables,
    migrate_with_retries,
)
from schemactl.pipeline.operation import (
    ApplyResult,
    Committer,
    Operation,
    Plan,
    Progress,
    say,
)

if TYPE_CHECKING:
    import psycopg


@dataclass
class _Run:
    """One pipeline run in progress: what a failure needs to audit, commit and journal."""

    repo: SchemaRepo
    target: Target
    actor: str
    op: Operation
    lock_conn: psycopg.Connection[Any]
    j: journal.Journal
    id: str
    details: dict[str, Any] = field(default_factory=dict)
    rules_run: list[str] = field(default_factory=list)
    waivers: list[dict[str, Any]] = field(default_factory=list)
    committer: Committer | None = None

    def entry(self, status: str, error: str | None) -> audit.AuditEntry:
        return replace(recovery.entry_from(self.j, status, error, self.details),
                       rules_run=list(self.rules_run), waivers=list(self.waivers))

    def _audit_failed(self, entry: audit.AuditEntry) -> str | None:
        """Write the failed row where the database answers (the lock connection, else a new
        one: a cut connection is not a dead server); returns the revision seen, if any."""
        from schemactl.adapters.database import connect

        try:
            if audit.table_exists(self.lock_conn):
                audit.update_status(self.lock_conn, entry)
            return current_revision(self.lock_conn)
        except Exception:  # noqa: BLE001 - the original error matters more
            pass
        try:
            with connect(self.target) as conn:
                if audit.table_exists(conn):
                    audit.update_status(conn, entry)
                return current_revision(conn)
        except Exception:  # noqa: BLE001 - the database does not answer: the journal says it
            return entry.revision_before

    def fail(self, exc: SchemactlError, changed: bool) -> None:
        """Audit a failed run; when it changed the database, git hears of it too."""
        repo, target, op = self.repo, self.target, self.op
        entry = self.entry("failed", target.scrub(exc.message))
        now = self._audit_failed(entry)
        if changed:
            entry = replace(entry, revision=now)
            audit.append_line(repo, entry)
            try:
                (self.committer or committing.commit_with_retry)(
                    repo, [repo.audit_file],
                    committing.subject(op.action, op.revisions, target, True),
                    {"Schemactl-Action": op.action, "Schemactl-Revision": now,
                     "Schemactl-Backup": self.j.backup_id, "Schemactl-Actor": self.actor,
                     "Schemactl-Audit": self.id, "Schemactl-Database": target.display,
                     "Schemactl-Status": "failed"})
            except SchemactlError:
                pass
        if exc.details.get("invalid_indexes_left") or exc.details.get("cleanup_failed") \
                or exc.code == "connection_lost":
            # Keep the journal: the next run drops what this one could not (an invalid
            # index), or finds out where a run whose connection died stopped.
            journal.write(repo, self.j.at("upgrade", failed=exc.message))
        else:
            journal.clear(repo, journal.key_of(target))
        exc.message = target.scrub(exc.message)


def _revision_or(conn: psycopg.Connection[Any], unknown: str | None) -> str | None:
    """The database's revision, or ``unknown`` when the connection died."""
    try:
        return current_revision(conn)
    except Exception:  # noqa: BLE001 - a dead connection: assume the worst (changed)
        return unknown


def run_pipeline(repo: SchemaRepo, target: Target, actor: str, plan: Plan, *,
                 action: str = "apply", wait: float | None = None,
                 progress: Progress | None = None, rules_run: list[str] | None = None,
                 waivers: list[dict[str, Any]] | None = None,
                 committer: Committer | None = None) -> ApplyResult:
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
        committer: takes the run's commit instead of the runner, called as
            ``committer(repo, paths, subject, trailers)``; a fleet run collects every
            target's and commits once. When it returns None the journal stays at
            ``audited`` until the caller has committed and cleared it
            (``journal.clear(repo, journal.key_of(target))``), so a run killed before that
            commit is finished by the next one.

    Raises:
        ConflictError: the lock is held, or the live schema drifted from git (exit 4).
        EnvironmentError_: pg_dump missing or failing, lock timeouts on every try, a failed
            migration or verification (exit 3).
    """
    # Git must be able to take the run's commit: refuse before anything changes.
    gitstate.ensure_committable(repo.root)
    with locking.apply_lock(target, actor, wait=wait, action=action) as lock_conn:
        say(progress, "lock")
        backup.cleanup_incomplete(repo)
        recovered: ApplyResult | None = None
        redo: journal.Journal | None = None
        journal.identify(target, lock_conn)
        journal.adopt_legacy(repo, target)
        previous = journal.load(repo, journal.key_of(target))
        if previous is not None:
            recovered, redo = recovery.recover(repo, target, lock_conn, previous, progress,
                                               committer)
        before = current_revision(lock_conn)
        op = plan(before)
        if op is None:
            if redo is not None:
                journal.clear(repo, journal.key_of(target))
            if recovered is not None:
                return recovered
            return ApplyResult(command=action, applied=[], revision_before=before,
                               revision=before, database=target.display,
                               message="nothing to do")
        schema = DYNAMIC_SCHEMA
        run_id = str(uuid.uuid4())
        # Revisions an interrupted run committed before it died have no audit entry of their
        # own (a run's entry is written with its last migration): this run's entry covers
        # them, from where that run started.
        done = recovery.done_by(redo, before, op.revisions, op.action)
        j = journal.new(repo, key=journal.key_of(target), id=run_id, action=op.action,
                        database=target.display, actor=actor,
                        revision_before=redo.revision_before if done and redo else before,
                        revision_target=op.revision_target,
                        revisions=[*done, *op.revisions], git_commit=gitops.head_sha(repo.root),
                        git_branch=gitops.current_branch(repo.root),
                        verify_git_rev=op.verify_git_rev, commit_paths=list(op.commit_paths),
                        files=committing.encode_files(op.files))
        run = _Run(repo, target, actor, op, lock_conn, j, run_id,
                   details={**op.details, **({"recovered_from": previous.id} if previous else {})},
                   rules_run=list(rules_run or []), waivers=list(waivers or []),
                   committer=committer)

        # 1. drift: the live schema must be what git says for this revision.
        say(progress, "drift check")

        def refused(message: str) -> None:
            # The interrupted run's journal stays (marked failed) so that status says why.
            if redo is not None:
                journal.write(repo, redo.at(redo.step, failed=target.scrub(message)))
            else:
                journal.clear(repo, journal.key_of(target))

        try:
            report = drift.check(repo, target, before, catalog=lock_conn)
            differences = report.differences
            if redo is not None:
                # What the interrupted run already made (a built index) is its own work.
                differences = drift.mark_pending(repo, target, differences, redo.revisions,
                                                 redo.revision_target, redo.verify_git_rev)
            elif any(d.get("kind") == "missing_view" for d in differences):
                # An old-name view gone by hand that a pending contract drops anyway.
                differences = drift.mark_pending(repo, target, differences,
                                                 list(op.revisions), op.revision_target,
                                                 op.verify_git_rev)
        except SchemactlError as exc:
            refused(exc.message)
            raise exc
        managed = managed_tables(repo)
        unmanaged = drift.unmanaged_tables(differences, managed)
        blocked = drift.blocking(differences, managed, allow_pending=redo is not None)
        if blocked:
            shown = "; ".join(d["message"] for d in blocked[:5])
            more = len(blocked) - 5
            refused(f"drift: {shown}")
            raise ConflictError(
                f"the database has drifted from git at revision {before}: {shown}"
                + (f" (+{more} more)" if more > 0 else ""),
                hint="nothing was changed; bring the database back to its definitions (or "
                     "the definitions to the database, through a proposal) and apply again",
                code="drift", details={"drift": differences})
        adopted = [d for d in differences if d.get("pending")]
        if adopted:
            run.details["adopted"] = adopted

        # 2. backup, before anything changes.
        j = run.j = journal.write(repo, j.at("backup"))
        say(progress, "backup")
        try:
            b = backup.create_backup(repo, target, before, touches=op.touches,
                                     progress=progress)
        except SchemactlError as exc:
            run.fail(exc, changed=False)
            raise
        except OSError as raw:  # ENOSPC on the backup disk, EROFS...
            known = translate(raw) or EnvironmentError_(str(raw))
            known.message = f"backup failed: {known.message}; nothing was changed"
            run.fail(known, changed=False)
            raise known from raw
        j = run.j = journal.write(repo, j.at("backup_done", backup_id=b.id))

        # 3. migrate, with timeouts and retries.
        invalid_before = invalid_indexes(lock_conn, managed_tables(repo), schema)
        j = run.j = journal.write(repo, j.at("upgrade", invalid_indexes_before=invalid_before))
        entry = run.entry("success", None)
        hook = AuditInTransaction(entry)
        say(progress, op.action)
        try:
            attempts = migrate_with_retries(repo, target, actor, op, lock_conn, j, hook,
                                             progress)
        except SchemactlError as exc:
            run.fail(exc, changed=_revision_or(lock_conn, op.revision_target) != before)
            raise
        after = current_revision(lock_conn)
        if after != op.revision_target:
            wrong = DatabaseError(f"{op.action} ended at revision {after}, expected "
                                  f"{op.revision_target}")
            run.fail(wrong, changed=after != before)
            raise wrong
        j = journal.write(repo, j.at("upgraded", audit_row=hook.written))

        # 4. verify, audit, commit.
        _j, sha, entry = recovery.finish(repo, target, lock_conn, j, entry, progress, committer)
        return ApplyResult(command=op.action, applied=list(op.revisions),
                           revision_before=before, revision=after, database=target.display,
                           backup=b.brief(), commit=sha, audit_id=run_id, attempts=attempts,
                           audit_row="in_transaction" if hook.written else "after",
                           recovered=recovered.recovered if recovered else
                           (f"redid the interrupted {redo.action} {redo.id}" if redo else None),
                           unmanaged=unmanaged,
                           message=f"{op.action}: {len(op.revisions)} revision(s)")


def pipeline_state(repo: SchemaRepo, target: Target) -> str | None:
    """What an interrupted or running pipeline left for ``target`` (None: nothing)."""
    from schemactl.adapters.database import connect

    try:
        with connect(target) as conn:
            journal.identify(target, conn)
    except DatabaseError:
        pass  # the URL's key: still finds what a run through this URL left
    journal.adopt_legacy(repo, target)
    j = journal.load(repo, journal.key_of(target))
    return j.describe() if j is not None else None
