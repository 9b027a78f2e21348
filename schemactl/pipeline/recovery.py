"""The end of a pipeline run, and the recovery of one that died.

:func:`finish` verifies, audits and commits a run whose migrations are done; the runner
calls it for every run, and :func:`recover` for a run a kill interrupted after its
migrations. :func:`recover` reads the dead run's journal and either finishes it or hands
it back to be redone (:func:`done_by`: what of it the database already holds).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from schemactl.adapters import gitops
from schemactl.adapters.database import Target
from schemactl.errors import DatabaseError, EnvironmentError_, SchemactlError
from schemactl.model.repo import SchemaRepo
from schemactl.pipeline import audit, backup, committing, drift, journal
from schemactl.pipeline.migrate import current_revision, drop_new_invalid_indexes, managed_tables
from schemactl.pipeline.operation import ApplyResult, Committer, Progress, say

if TYPE_CHECKING:
    import psycopg


def finish(repo: SchemaRepo, target: Target, lock_conn: psycopg.Connection[Any],
            j: journal.Journal, entry: audit.AuditEntry, progress: Progress | None,
            committer: Committer | None = None,
            ) -> tuple[journal.Journal, str | None, audit.AuditEntry]:
    """Verify, audit and commit a run whose migrations are done (also used to recover one).

    Returns:
        (journal, commit sha, final audit entry). Raises after auditing and committing when
        the verification fails.
    """
    say(progress, "verify")
    report = drift.check(repo, target, entry.revision, git_rev=j.verify_git_rev,
                         catalog=lock_conn)
    differences = drift.blocking(report.differences, managed_tables(repo))
    verify_error = None
    if differences:
        verify_error = "; ".join(d["message"] for d in differences[:10])
        entry = entry.with_status("failed", f"verify: {verify_error}")
        entry = replace(entry, extra={**entry.extra, "drift": differences})
    j = journal.write(repo, j.at("verified"))
    say(progress, "audit")
    if audit.table_exists(lock_conn):
        if verify_error or not audit.row_exists(lock_conn, entry.id):
            audit.update_status(lock_conn, entry)
    audit.append_line(repo, entry)
    j = journal.write(repo, j.at("audited"))
    say(progress, "commit")
    committing.write_journal_files(repo, j.files)
    # Paths already committed (a recovered run) are gone from disk and from HEAD: skip them.
    extra = [repo.root / p for p in j.commit_paths
             if (repo.root / p).exists() or gitops.read_at(repo.root, "HEAD", p) is not None]
    paths = [repo.audit_file, *extra]
    try:
        sha = committing.commit_once(
            repo, paths, committing.subject(j.action, j.revisions, target, bool(verify_error)),
            {"Schemactl-Action": j.action, "Schemactl-Revision": entry.revision,
             "Schemactl-Backup": entry.backup_id, "Schemactl-Actor": entry.actor,
             "Schemactl-Audit": entry.id, "Schemactl-Database": target.display,
             "Schemactl-Status": entry.status}, committer)
    except EnvironmentError_ as exc:
        # The journal stays at "audited": the next run commits what this one could not.
        gitops.unstage(repo.root, [str(p.relative_to(repo.root)) for p in paths])
        raise EnvironmentError_(
            f"the database was migrated to {entry.revision} and audited, but the git commit "
            f"failed ({exc.message}); the next apply records it",
            hint="fix the repository (`git status`), then run `schemactl apply` again",
            code="commit_failed", details={"revision": entry.revision}) from exc
    if sha is not None:
        # A deferred commit (sha None) keeps the journal at "audited" until the caller commits.
        journal.clear(repo, journal.key_of(target))
    if verify_error:
        raise EnvironmentError_(
            f"{j.action} ran but the database does not match the definitions at HEAD: "
            f"{verify_error}",
            hint="the run is audited as failed and a backup was taken; inspect the differences "
                 "(`schemactl status`) and fix the migration",
            code="verify_failed", details={"drift": differences, "commit": sha})
    return j, sha, entry


def recover(repo: SchemaRepo, target: Target, lock_conn: psycopg.Connection[Any],
             j: journal.Journal, progress: Progress | None,
             committer: Committer | None = None,
             ) -> tuple[ApplyResult | None, journal.Journal | None]:
    """Finish or clean up a run that died.

    Returns:
        (its result when it was finished here, the journal of a run to redo). A run to redo
        keeps its journal until the new run replaces it, so that ``status`` can still say
        what happened when the redo is refused.
    """
    current = current_revision(lock_conn)
    if j.step in ("locked", "backup", "backup_done", "upgrade") \
            and current != j.revision_target:
        # The database is where the run started, or part-way: committed migrations stay,
        # a half-built concurrent index goes, a finished one stays (the redo's IF NOT
        # EXISTS keeps it), and this run redoes the rest.
        _dropped, left = drop_new_invalid_indexes(repo, lock_conn, j.invalid_indexes_before)
        if left:
            journal.write(repo, j.at(j.step, failed=f"invalid index(es) {', '.join(left)} "
                                                    "could not be dropped yet"))
            raise DatabaseError(
                f"the interrupted {j.action} left invalid index(es) {', '.join(left)} that "
                "cannot be dropped yet", code="invalid_index_left",
                hint="a long transaction uses the table; retry when it ends")
        return None, j
    if current != j.revision_target:
        journal.clear(repo, journal.key_of(target))
        return None, None
    # The migrations are all in: write what is missing (audit row, line, commit).
    entry = entry_from(j, status="success")
    _j, sha, entry = finish(repo, target, lock_conn, j, entry, progress, committer)
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
                       message="finished an interrupted run"), None


def done_by(redo: journal.Journal | None, before: str | None, todo: list[str],
            action: str) -> list[str]:
    """The revisions of ``redo`` (an interrupted apply) already in the database at ``before``,
    when this run (``action``, revisions ``todo``) is an apply that carries it on.

    Only an apply continues an apply: a database part-way through an interrupted rollback,
    or a rollback after an interrupted apply, keeps each run's own entry.
    """
    if redo is None or redo.action != "apply" or action != "apply" or before is None \
            or before not in redo.revisions or before in todo:
        return []
    return redo.revisions[: redo.revisions.index(before) + 1]


def entry_from(j: journal.Journal, status: str, error: str | None = None,
                details: dict[str, Any] | None = None) -> audit.AuditEntry:
    return audit.AuditEntry(
        id=j.id, action=j.action, actor=j.actor, status=status, database=j.database,
        revision_before=j.revision_before, revision=j.revision_target,
        revisions=list(j.revisions), backup_id=j.backup_id, git_commit=j.git_commit,
        git_branch=j.git_branch, error=error, extra=dict(details or {}))
