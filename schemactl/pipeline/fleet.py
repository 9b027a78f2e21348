"""Fleet runs: one repository, many databases (DESIGN.md, Fleet).

    select ─► resolve ─► canary targets alone ─► the rest, N at a time ─► one git commit

Every target goes through the whole single-database pipeline
(:func:`schemactl.pipeline.applier.apply`: its own advisory lock, drift check, backup,
journal and audit row) in a thread of this process, each with its own connections. The
runner hands each target's commit to this module (``committer``) instead of committing, and
leaves the target's journal at ``audited``; once every target is done the fleet makes one
commit (a ``Schemactl-Target:`` trailer per target) and clears those journals. A fleet run
killed at any point is therefore finished by the next one: each target's journal recovers
it as a single apply would, the audit lines already written are committed then, and a
target already at head is left alone.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemactl.adapters import gitops, migrator
from schemactl.adapters.database import Target, connect, libpq_url
from schemactl.errors import (
    BadInputError,
    ConflictError,
    DatabaseError,
    EnvironmentError_,
    SchemactlError,
)
from schemactl.model.repo import SchemaRepo
from schemactl.model.targets import TargetSpec
from schemactl.pipeline import journal
from schemactl.pipeline.committing import commit_with_retry
from schemactl.pipeline.operation import NO_GUARD, Guard
from schemactl.pipeline.warmup import warm_imports

STATUSES = ("applied", "up_to_date", "failed", "drift", "unreachable", "skipped")
AT_HEAD = ("applied", "up_to_date")

# on_event(target name, state): "queued", "skipped", a pipeline step ("lock", "backup", ...),
# or a final status from STATUSES. Called from worker threads.
Event = Callable[[str, str], None]


@dataclass(frozen=True)
class Member:
    """A selected target, resolved to a database (or to the reason it cannot be)."""

    name: str
    group: str | None
    target: Target | None
    problem: SchemactlError | None = None

    @property
    def display(self) -> str:
        return self.target.display if self.target is not None else ""


@dataclass(frozen=True)
class TargetOutcome:
    """What a fleet run did to one target (one entry of the result's ``targets``)."""

    name: str
    ok: bool
    status: str
    applied: list[str] = field(default_factory=list)
    revision: str | None = None
    revision_before: str | None = None
    backup: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    exit_code: int = 0
    database: str = ""
    group: str | None = None
    seconds: float = 0.0
    audit_id: str | None = None
    recovered: str | None = None


def select(specs: Iterable[TargetSpec], names: Iterable[str] = (), groups: Iterable[str] = (),
           all_: bool = False) -> list[TargetSpec]:
    """The targets named by ``--target``/``--group``/``--all``, in schemactl.toml's order.

    Raises:
        BadInputError: no target is configured, or a name or group is unknown (exit 2).
    """
    specs = list(specs)
    names, groups = list(names), list(groups)
    if not specs:
        raise BadInputError("schemactl.toml has no [targets]",
                            hint='add [targets.NAME] with url = "postgresql://user@host/db" '
                                 '(no password) or url_env = "VAR" (docs/fleet.md)')
    known = {s.name for s in specs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BadInputError(f"unknown target(s) {', '.join(unknown)}",
                            hint=f"schemactl.toml has: {', '.join(s.name for s in specs)}",
                            code="unknown_target")
    known_groups = {s.group for s in specs if s.group}
    missing = [g for g in groups if g not in known_groups]
    if missing:
        raise BadInputError(f"unknown group(s) {', '.join(missing)}",
                            hint=f"groups in schemactl.toml: "
                                 f"{', '.join(sorted(known_groups)) or 'none'}",
                            code="unknown_group")
    chosen = [s for s in specs if all_ or s.name in names or (s.group and s.group in groups)]
    if not chosen:
        raise BadInputError("no target selected", hint="use --target NAME, --group NAME or --all")
    return chosen


def resolve(repo: SchemaRepo, spec: TargetSpec) -> Member:
    """The database of a target; a missing environment variable is the target's problem."""
    try:
        if spec.url is not None:
            return Member(spec.name, spec.group, Target(libpq_url(spec.url)))
        if spec.url_env is not None:
            url = os.environ.get(spec.url_env)
            if not url:
                raise EnvironmentError_(f"target {spec.name}: ${spec.url_env} is not set",
                                        code="target_url_unset",
                                        hint=f"export {spec.url_env}=postgresql://... "
                                             "(from your secret store)")
            return Member(spec.name, spec.group, Target(libpq_url(url)))
        from schemactl.adapters.embedded import EmbeddedServer

        url = EmbeddedServer(repo.state_dir).secret_url(spec.database or "postgres")
        return Member(spec.name, spec.group, Target(url, embedded=True))
    except SchemactlError as exc:
        return Member(spec.name, spec.group, None, exc)


def resolve_all(repo: SchemaRepo, specs: Iterable[TargetSpec]) -> list[Member]:
    # In the calling thread: starting the embedded server is not for several threads at once.
    return [resolve(repo, s) for s in specs]


def _error(exc: SchemactlError, m: Member) -> dict[str, Any]:
    out = exc.to_json()
    if m.target is not None:
        out["message"] = m.target.scrub(str(out["message"]))
    out.pop("details", None)  # drift lists and SQL stay in the target's own audit row
    return out


def _failed(m: Member, status: str, exc: SchemactlError, t0: float,
            before: str | None = None) -> TargetOutcome:
    return TargetOutcome(name=m.name, ok=False, status=status, revision=before,
                         revision_before=before, error=_error(exc, m),
                         exit_code=exc.exit_code, database=m.display, group=m.group,
                         seconds=round(time.monotonic() - t0, 3))


def probe(m: Member) -> str | None:
    """The target's revision (one short connection).

    Raises:
        DatabaseError: it does not answer.
    """
    assert m.target is not None
    with connect(m.target) as conn:
        return migrator.current_revision(conn)


class _Commits:
    """The deferred commits of a fleet run's targets (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.paths: list[Path] = []
        self.audits: dict[str, list[str]] = {}  # per target: a rollback has one per step
        self.journals: dict[str, Target] = {}

    def committer(self, m: Member) -> Callable[[SchemaRepo, list[Path], str,
                                                dict[str, str | None]], str | None]:
        def take(_repo: SchemaRepo, paths: list[Path], _subject: str,
                 trailers: dict[str, str | None]) -> str | None:
            with self._lock:
                self.paths += [p for p in paths if p not in self.paths]
                audit_id = trailers.get("Schemactl-Audit")
                if audit_id and audit_id not in self.audits.get(m.name, []):
                    self.audits.setdefault(m.name, []).append(str(audit_id))
                assert m.target is not None
                self.journals[m.name] = m.target
            return None

        return take


def _apply_one(repo: SchemaRepo, m: Member, actor: str, commits: _Commits, *,
               guard: Guard, wait: float | None, on_event: Event | None) -> TargetOutcome:
    from schemactl.pipeline import applier

    t0 = time.monotonic()
    if m.problem is not None or m.target is None:
        exc = m.problem or EnvironmentError_(f"target {m.name} cannot be resolved")
        return _failed(m, "unreachable", exc, t0)
    try:
        before = probe(m)
    except DatabaseError as exc:
        return _failed(m, "unreachable", exc, t0)
    except SchemactlError as exc:
        return _failed(m, "failed", exc, t0)

    def progress(step: str, _done: int, _total: int | None) -> None:
        if on_event is not None:
            on_event(m.name, step)

    try:
        res = applier.apply(repo, m.target, actor, wait=wait, progress=progress, guard=guard,
                            committer=commits.committer(m))
    except ConflictError as exc:
        return _failed(m, "drift" if exc.code == "drift" else "failed", exc, t0, before)
    except SchemactlError as exc:
        return _failed(m, "failed", exc, t0, before)
    except Exception as exc:  # noqa: BLE001 - one target's surprise must not sink the others
        wrapped = EnvironmentError_(f"{type(exc).__name__}: {exc}", code="unexpected")
        return _failed(m, "failed", wrapped, t0, before)
    return TargetOutcome(name=m.name, ok=True, status="applied" if res.applied else "up_to_date",
                         applied=list(res.applied), revision=res.revision,
                         revision_before=res.revision_before, backup=res.backup,
                         database=m.display, group=m.group, audit_id=res.audit_id,
                         recovered=res.recovered, seconds=round(time.monotonic() - t0, 3))


def _skipped(m: Member) -> TargetOutcome:
    return TargetOutcome(name=m.name, ok=False, status="skipped", database=m.display,
                         group=m.group, error={"code": "skipped",
                                               "message": "not started: an earlier target failed"})


def run_batch(members: list[Member], work: Callable[[Member], TargetOutcome], workers: int,
              stop: threading.Event, stop_on_failure: bool, on_event: Event | None,
              out: dict[str, TargetOutcome]) -> None:
    """Run ``work`` over ``members``, ``workers`` at a time, into ``out``; once ``stop`` is set
    nothing new starts (a failure sets it when ``stop_on_failure``)."""
    lock = threading.Lock()
    queue = list(reversed(members))
    warm_imports()

    def worker() -> None:
        while True:
            with lock:
                if not queue or stop.is_set():
                    return
                m = queue.pop()
            try:
                outcome = work(m)
            except Exception as exc:  # noqa: BLE001 - a dead worker would lose the target
                outcome = _failed(m, "failed", EnvironmentError_(
                    f"{type(exc).__name__}: {exc}", code="unexpected"), time.monotonic())
            with lock:
                out[m.name] = outcome
                if not outcome.ok and stop_on_failure:
                    stop.set()
            if on_event is not None:
                on_event(m.name, outcome.status)

    threads = [threading.Thread(target=worker, name=f"schemactl-fleet-{i}", daemon=True)
               for i in range(max(1, min(workers, len(members))))]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:
        stop.set()  # let the running targets finish their pipeline, start none
        for t in threads:
            t.join()
        raise
    for m in members:
        if m.name not in out:
            out[m.name] = _skipped(m)
            if on_event is not None:
                on_event(m.name, "skipped")


def schedule(members: list[Member], work: Callable[[Member], TargetOutcome], *, parallel: int,
             canary: int, on_error: str, on_event: Event | None,
             done: dict[str, TargetOutcome]) -> None:
    """Canaries alone first (any failure stops the run), then the rest ``parallel`` at a
    time, stopping new starts after a failure when ``on_error`` is "stop"; into ``done``."""
    stop = threading.Event()
    first, rest = members[:canary], members[canary:]
    if first:
        run_batch(first, work, parallel, stop, True, on_event, done)
    if stop.is_set():
        for m in rest:
            done[m.name] = _skipped(m)
            if on_event is not None:
                on_event(m.name, "skipped")
    else:
        run_batch(rest, work, parallel, stop, on_error == "stop", on_event, done)


@dataclass(frozen=True)
class FleetRun:
    """The outcome of :func:`apply_fleet`, target by target, and its commit."""

    targets: list[TargetOutcome]
    commit: str | None
    head_revision: str | None


def apply_fleet(repo: SchemaRepo, members: list[Member], actor: str, *, parallel: int = 4,
                canary: int = 0, on_error: str = "stop", wait: float | None = None,
                guard: Guard = NO_GUARD, on_event: Event | None = None) -> FleetRun:
    """Apply the pending migrations to every member: canaries alone first, then the rest.

    A canary's failure stops the run before any other target starts; after the canaries,
    ``on_error="stop"`` starts no further target once one failed (those running finish),
    ``"continue"`` runs them all. Never raises for one target's failure: each outcome says it.

    Raises:
        BadInputError: ``parallel`` below 1, ``canary`` below 0, an unknown ``on_error``.
        PolicyError: the guard refused the actor before anything was touched.
    """
    if parallel < 1 or canary < 0 or on_error not in ("stop", "continue"):
        raise BadInputError("--parallel must be at least 1, --canary at least 0, "
                            "--on-error stop or continue")
    guard.refuse_early("apply")
    from schemactl.pipeline import backup

    # Once, before the threads: each pipeline cleans up too, and two removing the same dead
    # run's files at once would trip over each other.
    backup.cleanup_incomplete(repo)
    head = migrator.head(repo)
    commits = _Commits()
    for m in members:
        if on_event is not None:
            on_event(m.name, "queued")

    def work(m: Member) -> TargetOutcome:
        return _apply_one(repo, m, actor, commits, guard=guard, wait=wait, on_event=on_event)

    done: dict[str, TargetOutcome] = {}
    try:
        schedule(members, work, parallel=parallel, canary=canary, on_error=on_error,
                 on_event=on_event, done=done)
    finally:
        # Also on Ctrl-C: what the finished targets did is committed.
        outcomes = [done[m.name] for m in members if m.name in done]
        sha = _commit(repo, actor, head, outcomes, commits)
    return FleetRun(targets=outcomes, commit=sha, head_revision=head)


def _commit(repo: SchemaRepo, actor: str, head: str | None, outcomes: list[TargetOutcome],
            commits: _Commits) -> str | None:
    """One commit for the whole run: the audit lines, a ``Schemactl-Target:`` per target."""
    if not commits.paths:
        return None
    rel = [str(p.relative_to(repo.root)) if p.is_absolute() else str(p) for p in commits.paths]
    sha: str | None = None
    if gitops.is_dirty(repo.root, rel):  # clean: an earlier, killed run committed them
        changed = sum(1 for o in outcomes if o.status == "applied")
        failed = sum(1 for o in outcomes if o.status not in AT_HEAD)
        subject = (f"apply{' FAILED' if failed else ''}: {head or '-'} → "
                   f"{changed} of {len(outcomes)} target(s)"
                   + (f", {failed} not at head" if failed else ""))
        extra = [("Schemactl-Target", f"{o.name} {o.revision or '-'} {o.status}")
                 for o in outcomes]
        extra += [("Schemactl-Audit", a) for ids in commits.audits.values() for a in ids]
        trailers: dict[str, str | None] = {
            "Schemactl-Action": "apply", "Schemactl-Revision": head,
            "Schemactl-Actor": actor, "Schemactl-Status": "failed" if failed else "success"}
        # The audit lines of runs that are not this one's targets (a killed run's, waiting
        # for their own recovery) stay out of the commit.
        sha = commit_with_retry(repo, rel, subject, trailers, extra)
    for target in commits.journals.values():
        j = journal.load(repo, journal.key_of(target))
        if j is not None and j.step == "audited":
            journal.clear(repo, journal.key_of(target))
    return sha


def exit_code(outcomes: Iterable[TargetOutcome]) -> int:
    """0 when every target is at head, else the highest exit code among the failures."""
    outcomes = list(outcomes)
    codes = [o.exit_code or 1 for o in outcomes if not o.ok and o.status != "skipped"]
    if not codes and any(o.status == "skipped" for o in outcomes):
        codes = [1]  # interrupted before they started
    return max(codes, default=0)


def summary(outcomes: Iterable[TargetOutcome],
            statuses: tuple[str, ...] = STATUSES) -> dict[str, int]:
    counts = {s: 0 for s in statuses}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    counts["total"] = sum(counts.values())
    return counts
