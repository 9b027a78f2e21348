"""`schemactl rollback`: undo applied dynamic migrations without losing a value.

Every rollback runs through the apply pipeline (:func:`schemactl.pipeline.runner.run_pipeline`):
advisory lock, drift check, a fresh backup, the change with lock_timeout and retries,
verify, audit row + audit line, and a git commit. Two ways back:

- the migration's own ``downgrade()`` (what ``alembic downgrade -1`` runs): a table the
  revision created moves to ``schemactl_archive``, an added column's values are copied
  there before the column goes, added indexes and constraints are removed. ``--to REV``
  repeats this one revision at a time, each step with its own backup, audit and commit.
- ``--restore-backup ID`` (:mod:`schemactl.pipeline.restore`): the tables the undone
  revisions touched come back from the pre-change dump an apply took.

Git follows the database: the rollback commit removes the undone revisions' migration
files and puts back the definitions their proposals changed, so ``status`` is clean and
``validate`` sees no DROP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schemactl.adapters import gitops, migrator
from schemactl.codegen.proposal import PROPOSE_MARK, proposal_origin
from schemactl.errors import (
    BadInputError,
    ConflictError,
    DatabaseError,
    EnvironmentError_,
    RejectedError,
)
from schemactl.model.naming import DYNAMIC_SCHEMA
from schemactl.model.repo import SchemaRepo
from schemactl.pipeline import archive, scope
from schemactl.results import Result

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from schemactl.adapters.database import Target
    from schemactl.pipeline.operation import ApplyResult, Guard, Operation, Plan, Progress


@dataclass(frozen=True)
class RollbackResult(Result):
    """What a rollback undid; with ``--to``, ``steps`` holds each step's own record."""

    rolled_back: str | None = None
    revisions: list[str] = field(default_factory=list)
    revision_before: str | None = None
    revision: str | None = None
    database: str = ""
    archived: list[dict[str, str]] = field(default_factory=list)
    backup: dict[str, Any] | None = None
    commit: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    restored_backup: str | None = None
    # The tables a --restore-backup brought back from the backup's data (the rest untouched).
    restored_tables: list[str] = field(default_factory=list)
    forced: bool = False
    rows_written: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""


# -- what may be rolled back ------------------------------------------------------------


def check_rollbackable(repo: SchemaRepo, revision: str) -> migrator.RevisionFile:
    """The revision's file, when schemactl may undo it.

    Raises:
        RejectedError: the core schema's migration, or one not written by propose (exit 1).
    """
    revs = migrator.read_revisions(repo)
    rf = revs.get(revision)
    if rf is None:
        raise ConflictError(f"revision {revision} is not in migrations/versions/",
                            hint="the database is ahead of git: check out the branch that made it")
    text = Path(rf.path).read_text(encoding="utf-8", errors="replace")
    if not rf.down_revisions:
        raise RejectedError(f"{revision} is the core schema's migration: schemactl never rolls "
                            "it back", code="core_protected",
                            hint="the core schema is owned by humans; change it with a reviewed "
                                 "migration")
    if PROPOSE_MARK not in text:
        raise RejectedError(f"{revision} was not made by `schemactl propose`: schemactl only "
                            "rolls back its own migrations", code="not_proposed",
                            hint="undo a hand-written migration with a reviewed migration")
    return rf


def expect_git_head(repo: SchemaRepo, current: str | None) -> str:
    """The database's revision, when it is the one git expects (the single head).

    Raises:
        RejectedError: the database was never migrated (nothing to roll back, exit 1).
        ConflictError: pending migrations, or a revision git does not have (exit 4).
    """
    head = migrator.head(repo)
    if current is None:
        raise RejectedError("the database was never migrated: nothing to roll back",
                            code="nothing_to_roll_back")
    todo = migrator.pending(repo, current)  # raises ConflictError when git lacks `current`
    if todo or current != head:
        raise ConflictError(
            f"the database is at {current} but git expects {head} "
            f"({len(todo)} migration(s) pending)",
            hint="apply the pending migrations first (or check out the commit that matches "
                 "the database), then roll back", code="not_at_head",
            details={"db_revision": current, "head": head, "pending": todo})
    return current


def _proposal_commit(repo: SchemaRepo, rf: migrator.RevisionFile) -> str:
    rel = str(Path(rf.path).resolve().relative_to(repo.root.resolve()))
    found = gitops.log(repo.root, 1, [rel])
    if not found:
        raise ConflictError(f"{rel} was never committed", code="uncommitted",
                            hint="commit the proposal first (schemactl propose does)")
    return found[0]["sha"]


def _dynamic_files(repo: SchemaRepo, rev: str) -> dict[str, bytes]:
    try:
        return {f.path: f.data for f in gitops.files_at(repo.root, rev, "dynamic_schema")}
    except Exception:  # noqa: BLE001 - the root commit has no parent: no files
        return {}


def undo_files(repo: SchemaRepo, revisions: list[str]) -> dict[str, bytes | None]:
    """The file changes that make git follow the database after undoing ``revisions``.

    Each revision's migration file goes; every definition its proposal commit changed
    goes back to what it was before that commit (None: the file did not exist).

    Args:
        revisions: newest first.
    """
    revs = migrator.read_revisions(repo)
    out: dict[str, bytes | None] = {}
    for rev in revisions:  # newest first: an older proposal's "before" wins
        rf = revs[rev]
        out[str(Path(rf.path).resolve().relative_to(repo.root.resolve()))] = None
        # A replaced migration stands for its original proposal (propose --replace).
        sha = proposal_origin(repo.root, "HEAD", Path(rf.path).name) \
            or _proposal_commit(repo, rf)
        after, before = _dynamic_files(repo, sha), _dynamic_files(repo, f"{sha}^")
        for path in set(after) | set(before):
            if after.get(path) != before.get(path):
                out[path] = before.get(path)
    from schemactl.codegen import sumfile

    if (repo.root / sumfile.SUM_PATH).exists():
        # The sum file keeps recording exactly the migrations git holds (schemactl check).
        gone = [Path(p).name for p, d in out.items() if d is None and p.endswith(".py")]
        out[sumfile.SUM_PATH] = sumfile.sum_text(repo.root, removed=gone).encode()
    dirty = [p for p in out if gitops.is_dirty(repo.root, [p])]
    if dirty:
        raise ConflictError(f"{', '.join(sorted(dirty))} has uncommitted changes",
                            hint="commit or stash them, then roll back", code="dirty")
    return out


def commit_paths(repo: SchemaRepo, files: dict[str, bytes | None]) -> list[str]:
    from schemactl.codegen import sumfile

    extra = [sumfile.SUM_PATH] if (repo.root / sumfile.SUM_PATH).exists() \
        and sumfile.SUM_PATH not in files else []
    return sorted(files) + extra


def tables_of(files: dict[str, bytes | None]) -> set[str]:
    return {Path(p).stem for p in files if p.startswith("dynamic_schema/")}


# -- one downgrade step ------------------------------------------------------------------


def _record_archived(conn: Connection, revision: str,
                     archived: list[dict[str, str]]) -> None:
    """Put what moved into the run's audit row, written with the downgrade's transaction.

    That row was inserted at the migration's commit, before the archive could be compared;
    the audit file line, written later, carries the same list.
    """
    from sqlalchemy import text

    from schemactl.pipeline import audit

    raw = conn.connection.dbapi_connection
    if not archived or raw is None or not audit.table_exists(raw):
        return
    conn.execute(text(
        "update audit_log set details = jsonb_set(details, '{archived}', cast(:a as jsonb)) "
        "where id = (select id from audit_log where action = 'rollback' "
        "and details->>'rolled_back' = :rev and details->'archived' = '[]'::jsonb "
        "order by created_at desc limit 1)"), {"a": json.dumps(archived), "rev": revision})
    conn.commit()


def _explain_downgrade_failure(exc: DatabaseError, revision: str) -> None:
    """Reword a failed downgrade for the one rolling back (the SQLSTATE stays for retries).

    A data error (class 22, e.g. a varchar(200) value that no longer fits varchar(50), or
    23) means rows written since the revision do not fit its parent's definition: the step
    is refused as a whole rather than any value being cut.
    """
    state = str(exc.details.get("sqlstate") or "")
    detail = exc.message.removeprefix("migration failed: ")
    if state[:2] in ("22", "23"):
        exc.message = (f"rolling back {revision} failed: {detail}. Values written since "
                       f"{revision} do not fit the older definition; nothing was changed by "
                       "this step and no value was cut")
        exc.hint = (f"keep {revision} (roll forward instead), or change those rows so they "
                    "fit the older definition, then roll back again")
        exc.code = "rollback_data_conflict"
    elif state != "55P03":
        exc.message = f"rolling back {revision} failed: {detail}"
        exc.hint = ("this step's transactional work was rolled back; see `schemactl status` "
                    f"and the downgrade() of {revision}")


def downgrade_plan(repo: SchemaRepo, revision: str, archived: list[dict[str, str]], *,
                   git: bool = True) -> Plan:
    """The pipeline plan undoing ``revision`` with its own downgrade().

    ``git=False`` (one target of a fleet rollback): the database may be below git's head
    and the run changes no repository file but its audit line; the fleet decides once,
    for every target, whether the migration leaves git (`schemactl.pipeline.fleet_rollback`).
    """
    from schemactl.pipeline.applier import online_attributes
    from schemactl.pipeline.operation import Operation

    schema = DYNAMIC_SCHEMA

    def plan(current: str | None) -> Operation | None:
        if git:
            expect_git_head(repo, current)
        if current != revision:
            raise ConflictError(f"the database moved to {current} (expected {revision})",
                                code="moved", hint="look at `schemactl status` and retry")
        rf = check_rollbackable(repo, revision)
        parent = rf.down_revisions[0]
        files = undo_files(repo, [revision]) if git else {}

        def migrate(conn: Connection) -> None:
            before = archive.snapshot(archive.sqlalchemy_query(conn), schema)
            conn.commit()  # no transaction open when Alembic configures (Known pitfalls)
            try:
                migrator.downgrade(repo, conn, parent, online_attributes(repo, None))
            except DatabaseError as exc:
                _explain_downgrade_failure(exc, revision)
                raise
            after = archive.snapshot(archive.sqlalchemy_query(conn), schema)
            conn.commit()
            archived[:] = archive.diff(before, after, schema)
            _record_archived(conn, revision, archived)

        # The pipeline writes the files after the downgrade (and again on recovery after a
        # crash), so git follows the database even when the process dies in between.
        return Operation(action="rollback", revisions=[revision], revision_target=parent,
                         migrate=migrate, verify_git_rev=None,
                         details={"rolled_back": revision, "archived": archived},
                         commit_paths=commit_paths(repo, files) if git else [], files=files,
                         touches=scope.of_revisions(repo, [revision], "downgrade"))

    return plan


def _step(res: ApplyResult, archived: list[dict[str, str]]) -> dict[str, Any]:
    return {"rolled_back": res.applied[0] if res.applied else None,
            "revision": res.revision, "archived": list(archived), "backup": res.backup,
            "commit": res.commit, "audit_id": res.audit_id}


def rollback(repo: SchemaRepo, target: Target, actor: str, *, to: str | None = None,
             wait: float | None = None, progress: Progress | None = None,
             guard: Guard | None = None) -> RollbackResult:
    """Undo the database's current revision, or every revision after ``to``, one at a time.

    Raises:
        RejectedError: the core schema's migration or a hand-written one (exit 1).
        ConflictError: the database is not at git's head, ``to`` is not an ancestor of its
            revision, drift, or the lock is held (exit 4).
        EnvironmentError_: the database, pg_dump, a lock timeout, a failed downgrade (exit 3).
    """
    from schemactl.adapters.database import connect
    from schemactl.pipeline.operation import NO_GUARD
    from schemactl.pipeline.runner import run_pipeline

    # Agents: "never" refuses before anything (the guard, from schemactl.verbs.policy).
    (guard or NO_GUARD).refuse_early("rollback")
    with connect(target) as conn:
        current = migrator.current_revision(conn)
    if to is None or to == current:  # an online change stopped mid-way: undo its expand
        from schemactl.pipeline.online import abort_under_way

        aborted = abort_under_way(repo, target, actor,
                                  set(migrator.revisions_upto(repo, current)) if current
                                  else set(), wait=wait)
        if aborted:
            names = ", ".join(f"{a['table']}.{a['column']} ({a['step']}, "
                              f"{a['rows_backfilled']} rows backfilled)" for a in aborted)
            return RollbackResult(
                command="rollback", revision_before=current, revision=current,
                database=target.display, revisions=sorted({a["revision"] for a in aborted}),
                message=f"stopped the online change of {names}: the old shape is back with "
                        "every value; its migration is pending again")
    current = expect_git_head(repo, current)
    chain = migrator.revisions_upto(repo, current)
    if to is None:
        todo = [current]
    elif to == current:
        return RollbackResult(command="rollback", revision_before=current, revision=current,
                              database=target.display,
                              message=f"the database is already at {to}: nothing to roll back")
    elif to not in migrator.read_revisions(repo):
        # A typo or a revision already rolled back (its file is gone): bad input, not a conflict.
        raise BadInputError(f"unknown revision {to}: migrations/versions/ has no such revision",
                            code="unknown_revision",
                            hint=f"pick one of {', '.join(reversed(chain))} "
                                 "(see `schemactl history`)")
    elif to not in chain:
        raise ConflictError(f"{to} is not an ancestor of the database's revision {current}",
                            code="not_ancestor",
                            hint="see `schemactl history` or migrations/versions/ for revisions")
    else:
        todo = list(reversed(chain[chain.index(to) + 1:]))
    for rev in todo:  # refuse before changing anything
        check_rollbackable(repo, rev)
    steps: list[dict[str, Any]] = []
    for rev in todo:
        archived: list[dict[str, str]] = []
        try:
            res = run_pipeline(repo, target, actor,
                                       downgrade_plan(repo, rev, archived),
                                       action="rollback", wait=wait, progress=progress)
        except EnvironmentError_ as exc:
            if steps:
                # Say what is already undone: those steps are committed and stay so.
                exc.details["done"] = steps
                exc.message = (f"rolled back {', '.join(s['rolled_back'] for s in steps)} "
                               f"(the database is at {steps[-1]['revision']}), then: "
                               f"{exc.message}")
            raise
        steps.append(_step(res, archived))
    last = steps[-1]
    return RollbackResult(
        command="rollback", rolled_back=todo[0], revisions=todo, revision_before=current,
        revision=last["revision"], database=target.display,
        archived=[a for s in steps for a in s["archived"]], backup=steps[0]["backup"],
        commit=last["commit"], steps=steps if len(steps) > 1 else [],
        message=f"rolled back {', '.join(todo)}; the database is at {last['revision']}")


__all__ = ["PROPOSE_MARK", "RollbackResult", "check_rollbackable", "commit_paths",
           "downgrade_plan", "expect_git_head", "rollback", "tables_of", "undo_files"]
