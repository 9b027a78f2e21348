"""What a pipeline run is told to do: the operation, its plan, its guard, and its result.

`schemactl.pipeline.runner` runs an :class:`Operation`; `schemactl.pipeline.applier` and
`schemactl.pipeline.rollback` make them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from schemactl.results import Result

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.engine import Connection

    from schemactl.model.repo import SchemaRepo
    from schemactl.pipeline.scope import Touches

# progress(step, done, total): the pipeline's steps and the backup's bytes.
Progress = Callable[[str, int, int | None], None]


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
        touches: the tables the run changes, from its operations: the scope of its backup
            (None: unknown, the whole database is dumped).
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
    touches: Touches | None = None


# committer(repo, paths, subject, trailers) -> commit sha, or None when the caller commits later
# (run_pipeline's ``committer``: a fleet run makes one commit for all of its targets).
Committer = Callable[["SchemaRepo", list["Path"], str, dict[str, str | None]], str | None]

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


def say(progress: Progress | None, step: str) -> None:
    if progress is not None:
        progress(step, 0, None)
