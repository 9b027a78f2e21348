"""Fleet rollbacks: many databases back to one revision, git changed once (DESIGN.md, Fleet).

    refuse early ─► each target: rollback steps down to REV ─► which configured targets
        still hold an undone migration? none: its files leave git ─► one commit

Each target runs the single-database rollback pipeline
(:func:`schemactl.pipeline.rollback.downgrade_plan` through
:func:`schemactl.pipeline.runner.run_pipeline`): one step per revision, each with its own
lock, drift check, backup, downgrade that archives rather than drops, verify, journal and
audit row. Unlike a single rollback, a step changes no repository file but its audit line:
the migration files are shared by every database of the repository, so they leave git only
when no configured target (selected or not) still has one of them applied, and only once,
in the run's one commit. Otherwise they stay and the commit records the audit lines alone;
`status --all` then shows the rolled-back targets with those migrations pending and the
others at head (docs/fleet.md, Rollback).

A run killed at any point converges on the next one: a target killed inside a step is
recovered by its journal, a target already at REV is left alone (its finished journal is
closed and its audit line committed), and the git decision is made again from the
databases as they are. The removal itself is written down before its files change
(``fleet-rollback.json`` in the state folder), so a kill between writing the files and the
commit is finished by the next fleet rollback.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any

from schemactl.adapters import gitops, migrator
from schemactl.errors import (
    BadInputError,
    ConflictError,
    DatabaseError,
    EnvironmentError_,
    SchemactlError,
)
from schemactl.model.repo import SchemaRepo
from schemactl.pipeline import committing, journal
from schemactl.pipeline.fleet import (
    Event,
    Member,
    TargetOutcome,
    _Commits,
    _failed,
    probe,
    resolve,
    schedule,
)
from schemactl.pipeline.operation import NO_GUARD, Guard, Operation
from schemactl.results import _plain

STATUSES = ("rolled_back", "up_to_date", "failed", "drift", "unreachable", "skipped")
PENDING_FILE = "fleet-rollback.json"


@dataclass(frozen=True)
class RollbackOutcome(TargetOutcome):
    """What a fleet rollback did to one target: its steps, archives, backups, audit ids."""

    rolled_back: list[str] = field(default_factory=list)
    archived: list[dict[str, str]] = field(default_factory=list)
    backups: list[dict[str, Any]] = field(default_factory=list)
    audit_ids: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, base: TargetOutcome, **extra: Any) -> RollbackOutcome:
        values = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
        return cls(**{**values, **extra})

    def to_json(self) -> dict[str, Any]:
        out = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out.pop("applied", None)  # a rollback's are rolled_back
        return out


@dataclass(frozen=True)
class FleetRollback:
    """The outcome of :func:`rollback_fleet`, target by target, and what git did."""

    targets: list[RollbackOutcome]
    commit: str | None
    to: str
    removed: list[str]  # revisions whose migrations left git in this run's commit
    kept: list[str]  # the revisions above ``to`` that stay in git (some target holds them)
    kept_for: list[str]  # why: the configured targets that still have them (or may)


def _plan_to(repo: SchemaRepo, to: str) -> list[str]:
    """The revisions above ``to`` up to git's head, oldest first; refuses before any change.

    Raises:
        BadInputError: ``to`` is not a revision of migrations/ (exit 2).
        ConflictError: ``to`` is not an ancestor of the head, dirty files (exit 4).
        RejectedError: one of them is the core migration or hand-written (exit 1).
    """
    from schemactl.pipeline import rollback as rb

    chain = migrator.revisions_upto(repo)
    if to not in migrator.read_revisions(repo):
        raise BadInputError(f"unknown revision {to}: migrations/versions/ has no such revision",
                            code="unknown_revision",
                            hint=f"pick one of {', '.join(reversed(chain))}")
    if to not in chain:
        raise ConflictError(f"{to} is not an ancestor of git's head", code="not_ancestor",
                            hint="see `schemactl history` or migrations/versions/")
    above = chain[chain.index(to) + 1:]
    for rev in above:
        rb.check_rollbackable(repo, rev)
    if above:
        rb.undo_files(repo, list(reversed(above)))  # raises on uncommitted definition edits
    return above


def _target_plan(repo: SchemaRepo, above: list[str], archived: list[dict[str, str]]) -> Any:
    """One step of one target: undo its current revision while it is above REV."""
    from schemactl.pipeline import rollback as rb

    chain = set(migrator.revisions_upto(repo))

    def plan(current: str | None) -> Operation | None:
        if current is None or (current in chain and current not in above):
            return None  # at REV or below it: none of the undone migrations is applied
        if current not in chain:
            raise ConflictError(f"the database is at revision {current}, which migrations/ "
                                "does not have", code="ahead",
                                hint="the database is ahead of git or on another branch")
        return rb.downgrade_plan(repo, current, archived, git=False)(current)

    return plan


def _rollback_one(repo: SchemaRepo, m: Member, actor: str, above: list[str],
                  commits: _Commits, *, wait: float | None,
                  on_event: Event | None) -> RollbackOutcome:
    from schemactl.pipeline.runner import run_pipeline

    t0 = time.monotonic()
    if m.problem is not None or m.target is None:
        exc = m.problem or EnvironmentError_(f"target {m.name} cannot be resolved")
        return RollbackOutcome.of(_failed(m, "unreachable", exc, t0))
    try:
        before = probe(m)
    except DatabaseError as exc:
        return RollbackOutcome.of(_failed(m, "unreachable", exc, t0))
    except SchemactlError as exc:
        return RollbackOutcome.of(_failed(m, "failed", exc, t0))

    def progress(step: str, _done: int, _total: int | None) -> None:
        if on_event is not None:
            on_event(m.name, step)

    done: list[str] = []
    archived: list[dict[str, str]] = []
    backups: list[dict[str, Any]] = []
    audit_ids: list[str] = []
    revision = before
    recovered: str | None = None
    for _ in range(len(above) + 2):  # one step per revision, plus a recovered one
        step_archived: list[dict[str, str]] = []
        try:
            res = run_pipeline(repo, m.target, actor, _target_plan(repo, above, step_archived),
                               action="rollback", wait=wait, progress=progress,
                               committer=commits.committer(m))
        except SchemactlError as exc:
            status = "drift" if isinstance(exc, ConflictError) and exc.code == "drift" \
                else "failed"
            if done:
                exc.message = (f"rolled back {', '.join(done)} (the database is at "
                               f"{revision}), then: {exc.message}")
            out = _failed(m, status, exc, t0, before)
            return RollbackOutcome.of(out, revision=revision, rolled_back=done,
                                      archived=archived, backups=backups,
                                      audit_ids=audit_ids)
        except Exception as exc:  # noqa: BLE001 - one target's surprise must not sink the others
            wrapped = EnvironmentError_(f"{type(exc).__name__}: {exc}", code="unexpected")
            return RollbackOutcome.of(_failed(m, "failed", wrapped, t0, before),
                                      revision=revision, rolled_back=done)
        recovered = recovered or res.recovered
        revision = res.revision
        if not res.applied:
            break
        done += [r for r in res.applied if r not in done]
        archived += step_archived
        if res.backup:
            backups.append(res.backup)
        if res.audit_id:
            audit_ids.append(res.audit_id)
        if res.recovered and res.revision not in above:
            break  # a recovered step that needed nothing after it
    return RollbackOutcome(
        name=m.name, ok=True, status="rolled_back" if done else "up_to_date",
        revision=revision, revision_before=before, backup=backups[0] if backups else None,
        database=m.display, group=m.group, seconds=round(time.monotonic() - t0, 3),
        audit_id=audit_ids[-1] if audit_ids else None, recovered=recovered,
        rolled_back=done, archived=archived, backups=backups, audit_ids=audit_ids)


def _holders(repo: SchemaRepo, above: list[str], outcomes: list[RollbackOutcome]) -> list[str]:
    """The configured targets that still have (or may have) one of ``above`` applied."""
    chain = set(migrator.revisions_upto(repo))
    known = {o.name: o.revision for o in outcomes if o.ok}
    holders = []
    for spec in repo.config.targets:
        if spec.name in known:
            rev = known[spec.name]
        else:
            m = resolve(repo, spec)
            try:
                if m.problem is not None:
                    raise m.problem
                rev = probe(m)
            except SchemactlError:
                holders.append(f"{spec.name} (not reachable: it may still have them)")
                continue
        if rev in above or (rev is not None and rev not in chain):
            holders.append(f"{spec.name} (at {rev})")
    return holders


def _pending_path(repo: SchemaRepo) -> Any:
    return repo.state_dir / PENDING_FILE


def finish_pending(repo: SchemaRepo) -> str | None:
    """Commit a removal that a killed run wrote down but did not commit; its sha, if any."""
    path = _pending_path(repo)
    if not path.exists():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    committing.write_journal_files(repo, record["files"])
    sha = None
    if gitops.is_dirty(repo.root, record["paths"]):
        sha = committing.commit_with_retry(repo, record["paths"], record["subject"],
                                           record["trailers"],
                                           [tuple(t) for t in record["extra"]])
    path.unlink(missing_ok=True)
    return sha


def rollback_fleet(repo: SchemaRepo, members: list[Member], actor: str, to: str, *,
                   parallel: int = 4, canary: int = 0, on_error: str = "stop",
                   wait: float | None = None, guard: Guard = NO_GUARD,
                   on_event: Event | None = None) -> FleetRollback:
    """Roll every member back to ``to``: canaries alone first, then the rest.

    Never raises for one target's failure: each outcome says it.

    Raises:
        BadInputError: bad options, an unknown ``to``.
        ConflictError: ``to`` not an ancestor of git's head; uncommitted definition edits.
        RejectedError: a revision to undo is the core migration or hand-written.
        PolicyError: the guard refused the actor before anything was touched.
    """
    if parallel < 1 or canary < 0 or on_error not in ("stop", "continue"):
        raise BadInputError("--parallel must be at least 1, --canary at least 0, "
                            "--on-error stop or continue")
    guard.refuse_early("rollback")
    from schemactl.pipeline import backup

    finish_pending(repo)
    above = _plan_to(repo, to)
    backup.cleanup_incomplete(repo)
    commits = _Commits()
    for m in members:
        if on_event is not None:
            on_event(m.name, "queued")

    def work(m: Member) -> TargetOutcome:
        return _rollback_one(repo, m, actor, above, commits, wait=wait, on_event=on_event)

    done: dict[str, TargetOutcome] = {}
    try:
        schedule(members, work, parallel=parallel, canary=canary, on_error=on_error,
                 on_event=on_event, done=done)
    finally:
        outcomes = [o if isinstance(o, RollbackOutcome) else RollbackOutcome.of(o)
                    for o in (done[m.name] for m in members if m.name in done)]
        holders = _holders(repo, above, outcomes) if above else []
        removed = above if above and not holders else []
        sha = _commit(repo, actor, to, outcomes, commits, removed, holders)
    return FleetRollback(targets=outcomes, commit=sha, to=to, removed=list(removed),
                         kept=[] if removed else list(above), kept_for=holders)


def _commit(repo: SchemaRepo, actor: str, to: str, outcomes: list[RollbackOutcome],
            commits: _Commits, removed: list[str], holders: list[str]) -> str | None:
    """One commit: every target's audit lines, and the undone migrations when none holds them."""
    from schemactl.pipeline import rollback as rb

    files = rb.undo_files(repo, list(reversed(removed))) if removed else {}
    paths = [str(p.relative_to(repo.root)) if p.is_absolute() else str(p) for p in commits.paths]
    if files:
        paths += [p for p in rb.commit_paths(repo, files) if p not in paths]
        if str(repo.audit_file.relative_to(repo.root)) not in paths \
                and repo.audit_file.exists():
            paths.append(str(repo.audit_file.relative_to(repo.root)))
    sha: str | None = None
    changed = sum(1 for o in outcomes if o.status == "rolled_back")
    failed = sum(1 for o in outcomes if not o.ok)
    git_note = (f"; {', '.join(removed)} removed from git" if removed else
                f"; migrations kept in git for {len(holders)} target(s)" if holders else "")
    subject = (f"rollback{' FAILED' if failed else ''}: → {to} on {changed} of "
               f"{len(outcomes)} target(s)" + (f", {failed} failed" if failed else "")
               + git_note)
    extra = [("Schemactl-Target", f"{o.name} {o.revision or '-'} {o.status}") for o in outcomes]
    extra += [("Schemactl-Removed", r) for r in removed]
    extra += [("Schemactl-Kept-For", h) for h in holders]
    extra += [("Schemactl-Audit", a) for ids in commits.audits.values() for a in ids]
    trailers: dict[str, str | None] = {
        "Schemactl-Action": "rollback", "Schemactl-Revision": to, "Schemactl-Actor": actor,
        "Schemactl-Status": "failed" if failed else "success"}
    if paths and (files or gitops.is_dirty(repo.root, paths)):
        pending = _pending_path(repo)
        encoded = committing.encode_files(files)
        record = {"files": encoded, "paths": paths, "subject": subject,
                  "trailers": trailers, "extra": extra}
        pending.parent.mkdir(parents=True, exist_ok=True)
        pending.write_text(json.dumps(record), encoding="utf-8")
        committing.write_journal_files(repo, encoded)
        if gitops.is_dirty(repo.root, paths):
            sha = committing.commit_with_retry(repo, paths, subject, trailers, extra)
        pending.unlink(missing_ok=True)
    for target in commits.journals.values():
        j = journal.load(repo, journal.key_of(target))
        if j is not None and j.step == "audited":
            journal.clear(repo, journal.key_of(target))
    return sha
