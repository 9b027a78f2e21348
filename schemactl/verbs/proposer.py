"""`schemactl propose`: a definition becomes a reviewed-ready migration committed to git.

validate (rules) → normalised definition in dynamic_schema/<table>.yaml → migration in
migrations/versions/ (planner + render) → rules again over the operations → one commit
with trailers. Offline and deterministic: no database, and the same definition on the
same parent gives the same migration bytes. A proposal that is rejected or fails leaves
the repository as it was, byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from schemactl.errors import ConflictError, RejectedError
from schemactl.model.definitions import TableDef, definition_path
from schemactl.model.parsing import dump_definition
from schemactl.model.repo import SchemaRepo
from schemactl.results import Result


@dataclass(frozen=True)
class ProposeResult(Result):
    """What a proposal did (or, with ``dry_run``, would do)."""

    table: str | None = None
    migration: dict[str, Any] | None = None
    commit: str | None = None
    changes: list[dict[str, Any]] = field(default_factory=list)
    definition: str | None = None
    dry_run: bool = False
    message: str = ""
    waived: list[dict[str, Any]] = field(default_factory=list)
    # Online changes (expand, backfill, contract) explained step by step with their locks.
    online_steps: list[str] = field(default_factory=list)
    # --replace / --revert: the head migration taken out, and the databases asked whether
    # they have it ({database, revision, reachable}).
    replaced: str | None = None
    reverted: str | None = None
    databases_checked: list[dict[str, Any]] = field(default_factory=list)


def _rejected(table: str | None, report: Any, message: str, dry_run: bool) -> ProposeResult:
    return ProposeResult(command="propose", ok=False, exit_code=1, table=table,
                         violations=[v.to_json() for v in report.violations],
                         dry_run=dry_run, message=message,
                         error={"code": "rejected", "message": message,
                                "hint": "fix the violations and propose again"})


def _safe_table_name(name: str) -> None:
    """The table name becomes a path: it must be a plain identifier whatever the rules say."""
    from schemactl.model.naming import IDENTIFIER, MAX_IDENTIFIER, identifier_problem

    if identifier_problem(name):
        raise RejectedError(f"table name {name[:80]!r} is not a valid identifier",
                            code="rejected",
                            hint=f"use {IDENTIFIER.pattern}, at most {MAX_IDENTIFIER} bytes "
                                 "(rule SC401)")


class _ParentMoved(ConflictError):
    """HEAD moved between planning and committing (a writer outside schemactl)."""


def propose(repo: SchemaRepo, tdef: TableDef, *, actor: str, dry_run: bool = False,
            allow_waivers: bool = True, add_base_fields: bool = False,
            wait: float = 60.0) -> ProposeResult:
    """Validate a definition, render its migration and commit both, one proposal at a time.

    Proposals into one repository are serialised (a repository lock around read HEAD →
    write → commit, waiting up to ``wait`` seconds), so two agents never give one parent
    two children; one whose HEAD moved anyway (a commit from outside) is planned again on
    the new head. See :func:`_propose_once` for the rest.

    Raises:
        ConflictError: the repository lock was not granted within ``wait`` seconds
            (``repository_locked``), or git cannot take a commit now (``git_state``).
    """
    if dry_run:
        return _propose_once(repo, tdef, actor=actor, dry_run=True,
                             allow_waivers=allow_waivers, add_base_fields=add_base_fields)
    from schemactl.adapters import gitops, gitstate

    gitstate.ensure_committable(repo.root)
    with gitstate.repository_lock(repo.root, wait):
        for _attempt in range(3):
            try:
                return _propose_once(repo, tdef, actor=actor, dry_run=False,
                                     allow_waivers=allow_waivers,
                                     add_base_fields=add_base_fields,
                                     expected_head=gitops.head_sha(repo.root))
            except _ParentMoved:
                continue
    raise ConflictError("HEAD kept moving while the proposal was planned",
                        hint="another writer commits to this repository; propose again",
                        code="parent_moved")


def _propose_once(repo: SchemaRepo, tdef: TableDef, *, actor: str, dry_run: bool = False,
                  allow_waivers: bool = True, add_base_fields: bool = False,
                  expected_head: str | None = None) -> ProposeResult:
    """Validate a definition, render its migration and commit both.

    Args:
        repo: the schema repository.
        tdef: the proposed whole state of one table.
        actor: who proposes (commit trailer).
        dry_run: compute and return the plan with its SQL; write nothing.
        allow_waivers: False for agents (they never get waivers).
        add_base_fields: first insert the configured base fields the definition lacks.

    Returns:
        The result; ``ok`` is False (exit 1) when a rule rejected the proposal.

    Raises:
        ConflictError: the definition file or migrations/versions has uncommitted changes.
        RejectedError: the table name is not an identifier; the plan cannot be rendered.
        EnvironmentError_: git refused the commit (the repository is restored first).
    """
    from schemactl.adapters import gitops, migrator
    from schemactl.model.loading import tables_at_rev
    from schemactl.model.tableset import Overlay
    from schemactl.rules import validation

    config = repo.config
    if add_base_fields:
        from schemactl.model.parsing import add_base_fields as with_base

        # Before the unchanged check: a retried proposal stays a no-op.
        tdef = with_base(tdef, [f.as_column() for f in config.base_fields])
    # The whole current state as an indexed set: only this table and what it references
    # are read (from the parse cache in a large repository).
    current = tables_at_rev(repo.root, "HEAD")
    table = tdef.table
    before = current.get(table)
    if before is not None and before.same_state(tdef):
        return ProposeResult(command="propose", table=table, dry_run=dry_run,
                             definition=definition_path(table),
                             message=f"{table} is unchanged: nothing to propose")
    # A table renamed online (`renamed_from`): its old definition goes with this proposal.
    gone = (tdef.renamed_from if tdef.renamed_from and before is None
            and tdef.renamed_from in current else None)
    # The tables with a key to it: their definitions follow the new name in this commit
    # (the rename carries the keys along, named after it).
    moved = _moved_referrers(current, gone, table) if gone else {}
    proposed = Overlay(current, {table: tdef, **moved, **({gone: None} if gone else {})})
    report = validation.check_definitions(current, proposed, config,
                                          changed=[table, *moved],
                                          allow_waivers=allow_waivers)
    if not report.ok:
        return _rejected(table, report, f"proposal for {table} rejected by the safety rules",
                         dry_run)
    _safe_table_name(table)

    from schemactl.codegen.offline import offline_sql
    from schemactl.codegen.proposal import plan_of, proposal_migration

    plan = plan_of(current, proposed, table)
    warnings = [v.to_json() for v in report.violations]
    if plan.empty:
        return ProposeResult(command="propose", table=table, dry_run=dry_run,
                             definition=definition_path(table), violations=warnings,
                             message=f"{table}: no schema change")
    op_report = validation.check_operations(plan.upgrade_ops, current, proposed, config,
                                            allow_waivers=allow_waivers)
    if not op_report.ok:
        return _rejected(table, op_report,
                         f"the migration for {table} was rejected by the operation rules",
                         dry_run)
    warnings += [v.to_json() for v in op_report.violations]

    parent = migrator.head(repo)
    sequence = len(migrator.revisions_upto(repo, parent)) + 1 if parent else 1
    pm = proposal_migration(current, proposed, table, parent, sequence, plan)
    revision, rendered = pm.revision, pm.rendered
    def_rel = definition_path(table)
    sql = offline_sql(rendered.source, rendered.filename)
    mig_rel = f"migrations/versions/{rendered.filename}"
    migration = {"revision": revision, "down_revision": parent, "path": mig_rel, "sql": sql,
                 "message": rendered.message,
                 "archives": [a.to_json() for a in rendered.archives]}
    changes = [c.to_json() for c in plan.changes]
    online_steps = plan.online_steps()
    waived = list(report.waived) + list(op_report.waived)
    if dry_run:
        return ProposeResult(command="propose", table=table, migration=migration,
                             changes=changes, definition=def_rel, dry_run=True,
                             violations=warnings, waived=waived, online_steps=online_steps,
                             message=f"would {rendered.message}")

    moved_rels = {_definition_rel(current[r]): d for r, d in moved.items()}
    if gitops.is_dirty(repo.root, [def_rel, "migrations/versions", *moved_rels]):
        raise ConflictError(f"{def_rel} or migrations/versions/ has uncommitted changes",
                            hint="commit or stash them, then propose again")
    subject = f"propose: {rendered.message}"
    body = "\n".join(f"- {c.describe()}" for c in plan.changes)
    trailers = {"Schemactl-Action": "propose", "Schemactl-Revision": revision,
                "Schemactl-Actor": actor}
    text = dump_definition(replace(tdef, source=def_rel))
    from schemactl.codegen.sumfile import SUM_PATH, sum_text

    # The sum file records the new migration too (integrity check of `schemactl check`).
    sums = sum_text(repo.root, {rendered.filename: rendered.source.encode()}).encode()
    files: dict[str, bytes | None] = {def_rel: text.encode(),
                                      mig_rel: rendered.source.encode(), SUM_PATH: sums}
    if gone:
        files[_definition_rel(current[gone])] = None
    for rel, moved_def in moved_rels.items():
        files[rel] = dump_definition(replace(moved_def, source=rel)).encode()
    sha = _write_and_commit(repo.root, files, subject, trailers, body,
                            expected_head=expected_head)
    return ProposeResult(command="propose", table=table, migration=migration, commit=sha,
                         changes=changes, definition=def_rel, violations=warnings,
                         waived=waived, online_steps=online_steps, message=rendered.message)


def _moved_referrers(current: Mapping[str, TableDef], old: str, new: str
                     ) -> dict[str, TableDef]:
    """The definitions of the tables with a key to ``old``, referencing ``new`` instead."""
    from schemactl.model.online import retarget
    from schemactl.model.tableset import as_table_set

    return {r: retarget(current[r], {old: new})
            for r in sorted(as_table_set(current).referrers(old) - {old})}


def _definition_rel(tdef: TableDef) -> str:
    """The file a committed definition was read from (its conventional path otherwise)."""
    src = tdef.source.replace("\\", "/")
    return src if src.startswith("dynamic_schema/") else definition_path(tdef.table)


def _write_and_commit(root: Path, files: dict[str, bytes | None], subject: str,
                      trailers: dict[str, str], body: str,
                      expected_head: str | None = None) -> str:
    """Write ``files`` (None: remove the file) and commit exactly them; on any failure put
    every byte back.

    With ``expected_head``, a HEAD that is no longer that commit is :class:`_ParentMoved`
    (nothing committed): the caller plans again on the new head.

    Raises:
        SchemactlError: whatever failed (after the repository was restored).
    """
    from schemactl.adapters import gitops
    from schemactl.adapters.gitcommit import RefMoved

    saved: dict[str, bytes | None] = {}
    for rel in files:
        path = root / rel
        saved[rel] = path.read_bytes() if path.exists() else None
    head_before = expected_head if expected_head is not None else gitops.head_sha(root)
    try:
        for rel, data in files.items():
            path = root / rel
            if data is None:  # a file the commit removes
                path.unlink(missing_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        # With expected_head the commit is a compare-and-swap on it (RefMoved otherwise).
        return gitops.commit(root, list(files), subject, trailers, body, parent=expected_head)
    except BaseException as exc:
        # Not committed: HEAD is where it was, or the branch moved away under the commit.
        if isinstance(exc, RefMoved) or gitops.head_sha(root) == head_before:
            for rel, old in saved.items():
                path = root / rel
                if old is None:
                    path.unlink(missing_ok=True)
                else:
                    path.write_bytes(old)
            gitops.unstage(root, list(files))
        if isinstance(exc, RefMoved):
            raise _ParentMoved("HEAD moved while the proposal was committed") from exc
        raise

