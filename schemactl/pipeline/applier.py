"""`schemactl apply`: upgrade the database to the single head of migrations/.

The steps themselves are the pipeline's (`schemactl.pipeline.runner`); this module only
says what an apply is: the pending revisions, upgraded in one run.
"""

from __future__ import annotations

from typing import Any

from schemactl.adapters import migrator
from schemactl.adapters.database import Target
from schemactl.model.repo import SchemaRepo
from schemactl.pipeline.operation import (
    NO_GUARD,
    ApplyResult,
    Committer,
    Guard,
    Operation,
    Plan,
    Progress,
)
from schemactl.pipeline.runner import run_pipeline
from schemactl.pipeline.scope import of_revisions


def online_attributes(repo: SchemaRepo, progress: Progress | None,
                      report: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What an online change in a migration reads: [online] and [apply] settings, progress,
    and the list each finished step is reported into (the audit entry's ``online``)."""
    cfg = repo.config
    return {"schemactl_online": {
        "batch_rows": cfg.online_batch_rows, "batch_ms": cfg.online_batch_ms,
        "pause_ms": cfg.online_pause_ms,
        "lock_timeout_ms": cfg.lock_timeout_ms, "retry_backoff_ms": cfg.retry_backoff_ms,
        "progress": progress, "report": report if report is not None else []}}


def has_online_change(repo: SchemaRepo, revisions: list[str]) -> bool:
    files = migrator.read_revisions(repo)
    return any(r in files and "_online_column(" in
               (repo.root / files[r].path).read_text(encoding="utf-8", errors="replace")
               for r in revisions)


def apply_plan(repo: SchemaRepo, progress: Progress | None = None) -> Plan:
    """The plan of `schemactl apply`: upgrade to the single head of migrations/."""

    def plan(current: str | None) -> Operation | None:
        todo = migrator.pending(repo, current)
        if not todo:
            return None
        top = todo[-1]
        report: list[dict[str, Any]] = []  # filled by online changes as their steps finish
        return Operation(action="apply", revisions=todo, revision_target=top,
                         migrate=lambda conn: migrator.upgrade(
                             repo, conn, top, online_attributes(repo, progress, report)),
                         verify_git_rev="HEAD",
                         details={"online": report} if has_online_change(repo, todo) else {},
                         touches=of_revisions(repo, todo))

    return plan


def apply(repo: SchemaRepo, target: Target, actor: str, *, wait: float | None = None,
          progress: Progress | None = None, guard: Guard = NO_GUARD,
          committer: Committer | None = None) -> ApplyResult:
    """Upgrade the database to the single head of migrations/, through the whole pipeline.

    Raises:
        ConflictError: another apply holds the lock, the database drifted from git, is at a
            revision git does not know, or migrations/ has several heads (exit 4).
        EnvironmentError_: the database cannot be reached, no usable pg_dump, lock timeouts
            on every try, a failed migration or verification (exit 3).
        PolicyError: the guard refused the actor (exit 1, nothing changed).

    ``committer`` takes the run's commit (see :func:`run_pipeline`; a fleet run commits once).
    """
    # Agents: "never" refuses before the lock; "safe" re-checks under the lock (the guard).
    guard.refuse_early("apply")
    waivers = [{"rule": w.rule, "reason": w.reason, "table": w.table, "column": w.column}
               for w in repo.config.waivers]
    return run_pipeline(repo, target, actor, guard.wrap(apply_plan(repo, progress)),
                        action="apply", wait=wait, progress=progress, waivers=waivers,
                        committer=committer)
