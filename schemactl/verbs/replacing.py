"""`propose --replace` and `propose --revert`: the way out of a migration no database applied.

A definition can validate and propose, yet fail at every apply (data that a new unique
index or check cannot take, say). Its migration then sits at HEAD, and editing the
definition back is refused by the rules (removing an index is SC105, a column SC102).
When no database has applied that head migration, nothing needs undoing in any database,
so git may simply forget it:

- ``propose FILE --replace`` folds the definition into the head migration: the head
  migration goes and the migration propose would have written had it never existed (from
  the head's parent to FILE) takes its place, under a new revision id;
- ``propose --revert REV`` removes the head migration REV and puts its table's definition
  back as it was before its proposal.

"No database applied it" is decided from facts, never guessed (:func:`ensure_unapplied`):
the audit file's lines (committed, and any the work tree holds), the journals of
interrupted runs, and the alembic_version of every database configured here (the
``--database-url`` or environment URL, the embedded server when it exists, each target of
schemactl.toml). Any doubt (a database that does not answer, a revision it has that git
lacks, an interrupted run) refuses with exit 4 and the reason. `schemactl check` accepts
such a commit only when it is exactly what this module writes (docs/ci.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from schemactl.errors import BadInputError, ConflictError, SchemactlError
from schemactl.model.definitions import TableDef
from schemactl.model.repo import SchemaRepo
from schemactl.verbs.proposer import ProposeResult, _rejected, _write_and_commit

if TYPE_CHECKING:
    from schemactl.adapters.database import Target
    from schemactl.codegen.proposal import HeadProposal, ProposalMigration


# -- is it applied anywhere? --------------------------------------------------------------


def _audit_reasons(repo: SchemaRepo, revision: str) -> list[str]:
    from schemactl.adapters import gitops
    from schemactl.model.applied import AUDIT_PATH, parse_lines, recorded_applied

    committed = parse_lines(gitops.read_at(repo.root, "HEAD", AUDIT_PATH))
    try:
        local = parse_lines(repo.audit_file.read_bytes())
    except FileNotFoundError:
        local = []
    ids = {str(o.get("id")) for o in committed}
    lines = committed + [o for o in local if str(o.get("id")) not in ids]
    return [f"audit.jsonl: {r}" for r in recorded_applied(lines, revision)]


def _journal_reasons(repo: SchemaRepo, revision: str) -> list[str]:
    import json

    out = []
    for path in sorted(repo.state_dir.glob("journal-*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            out.append(f"{path.name} cannot be read (an interrupted run?)")
            continue
        if revision in (data.get("revisions") or []) or revision in (
                data.get("revision_target"), data.get("revision_before")):
            out.append(f"an interrupted {data.get('action')} of {revision} on "
                       f"{data.get('database')} is journalled (run `schemactl apply` or "
                       "`schemactl status`)")
    return out


def _databases(repo: SchemaRepo, database_url: str | None
               ) -> list[tuple[str, Target | None, SchemactlError | None]]:
    """Every database configured for this repository: (name, target or None, why not)."""
    from schemactl.adapters.database import Target, libpq_url

    found: list[tuple[str, Target | None, SchemactlError | None]] = []
    url = database_url or os.environ.get("SCHEMACTL_DATABASE_URL") \
        or os.environ.get("DATABASE_URL")
    if url:
        target = Target(libpq_url(url))  # BadInputError (exit 2) for an unparsable URL
        found.append((target.display, target, None))
    else:
        from schemactl.adapters.embedded import EmbeddedServer

        if EmbeddedServer(repo.state_dir).initialised():
            try:
                found.append(("the embedded server",
                              Target(EmbeddedServer(repo.state_dir).secret_url(),
                                     embedded=True), None))
            except SchemactlError as exc:
                found.append(("the embedded server", None, exc))
    if repo.config.targets:
        from schemactl.pipeline import fleet

        for m in fleet.resolve_all(repo, repo.config.targets):
            found.append((f"target {m.name}", m.target, m.problem))
    return found


def _database_reasons(repo: SchemaRepo, revision: str, database_url: str | None,
                      checked: list[dict[str, object]]) -> list[str]:
    from schemactl.adapters import migrator
    from schemactl.adapters.database import connect

    known = set(migrator.read_revisions(repo))
    out = []
    for name, target, problem in _databases(repo, database_url):
        if target is None:
            out.append(f"{name} cannot be asked ({problem.message if problem else '?'})")
            checked.append({"database": name, "revision": None, "reachable": False})
            continue
        try:
            with connect(target) as conn:
                current = migrator.current_revision(conn)
        except SchemactlError as exc:
            out.append(f"{name} does not answer ({target.scrub(exc.message)})")
            checked.append({"database": name, "revision": None, "reachable": False})
            continue
        checked.append({"database": name, "revision": current, "reachable": True})
        if current == revision:
            out.append(f"{name} is at {revision}")
        elif current is not None and current not in known:
            out.append(f"{name} is at {current}, a revision migrations/ does not have")
    return out


def ensure_unapplied(repo: SchemaRepo, revision: str, database_url: str | None,
                     what: str) -> list[dict[str, object]]:
    """Refuse unless every record and every configured database says ``revision`` is not
    applied; returns the databases asked ({database, revision, reachable}).

    Raises:
        ConflictError: applied somewhere, or it cannot be ruled out (exit 4), with the
            first reason in the message and all of them in ``details``.
    """
    checked: list[dict[str, object]] = []
    reasons = _audit_reasons(repo, revision) + _journal_reasons(repo, revision)
    reasons += _database_reasons(repo, revision, database_url, checked)
    if reasons:
        more = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
        raise ConflictError(
            f"cannot {what} {revision}: {reasons[0]}{more}", code="applied",
            hint=f"{revision} may be applied: roll it back where it is (`schemactl rollback`) "
                 "or roll forward with a new proposal",
            details={"reasons": reasons, "databases": checked})
    return checked


# -- replace and revert --------------------------------------------------------------------


def _head(repo: SchemaRepo) -> HeadProposal:
    from schemactl.codegen.proposal import head_proposal

    return head_proposal(repo.root, "HEAD")


def _before_def(repo: SchemaRepo, head: HeadProposal) -> TableDef | None:
    from schemactl.model.parsing import parse_definition

    if head.before is None:
        return None
    return parse_definition(head.before, f"{head.commit[:12]}^:{head.definition}")


def _revert_files(repo: SchemaRepo, head: HeadProposal) -> dict[str, bytes | None]:
    from schemactl.codegen import sumfile

    return {head.definition: head.before, **dict(head.others), head.path: None,
            sumfile.SUM_PATH: sumfile.sum_text(repo.root, removed=[head.name]).encode()}


def _locked(repo: SchemaRepo, wait: float, dry_run: bool,
            work: Callable[[], ProposeResult]) -> ProposeResult:
    """Run ``work`` under the repository's proposal lock (read HEAD → write → commit)."""
    if dry_run:
        return work()
    from schemactl.adapters import gitstate

    gitstate.ensure_committable(repo.root)
    with gitstate.repository_lock(repo.root, wait, "propose"):
        return work()


def _ensure_clean(repo: SchemaRepo, paths: list[str]) -> None:
    from schemactl.adapters import gitops

    if gitops.is_dirty(repo.root, paths):
        raise ConflictError(f"{', '.join(paths[:1])} or migrations/versions has uncommitted "
                            "changes", hint="commit or stash them, then propose again")


def revert(repo: SchemaRepo, revision: str, *, actor: str, dry_run: bool = False,
           database_url: str | None = None, wait: float = 60.0) -> ProposeResult:
    """Remove the head migration ``revision`` (applied nowhere) and restore its table's
    definition from before its proposal; one commit. Idempotent: a revision already
    reverted is ok with no commit.

    Raises:
        BadInputError: ``revision`` is not a migration of this repository (exit 2).
        RejectedError: it is the core schema's or a hand-written migration (exit 1).
        ConflictError: it is not the head, or it may be applied somewhere (exit 4).
    """
    from schemactl.adapters import migrator

    def work() -> ProposeResult:
        if revision not in migrator.read_revisions(repo):
            if _already(repo, "Schemactl-Reverts", revision):
                return ProposeResult(command="propose", dry_run=dry_run, reverted=revision,
                                     message=f"{revision} is reverted already: nothing to do")
            raise BadInputError(f"unknown revision {revision}: migrations/versions/ has no "
                                "such revision", code="unknown_revision",
                                hint=f"the head migration is {migrator.head(repo)}")
        head = _head(repo)
        if head.revision != revision:
            raise ConflictError(f"{revision} is not the head migration ({head.revision} follows "
                                "it): only the head can be reverted", code="not_head",
                                hint=f"revert {head.revision} first")
        return _revert_head(repo, head, actor, dry_run, database_url)

    return _locked(repo, wait, dry_run, work)


def _already(repo: SchemaRepo, trailer: str, revision: str) -> bool:
    from schemactl.adapters import gitops

    text = gitops.git_text(repo.root, "log", "--format=%B", "--grep",
                           f"^{trailer}: {revision}$", "-n", "1", "HEAD")
    return gitops.trailers_of(text).get(trailer) == revision


def replace_head(repo: SchemaRepo, tdef: TableDef, *, actor: str, dry_run: bool = False,
                 allow_waivers: bool = True, database_url: str | None = None,
                 wait: float = 60.0) -> ProposeResult:
    """Replace the head migration (applied nowhere) by the one propose would have written
    for ``tdef`` on the head's parent; one commit. Proposing the same definition again is
    a no-op; a definition equal to the state before the head migration reverts it.

    Raises:
        BadInputError: ``tdef`` is not the table the head migration changed (exit 2).
        RejectedError: the head is the core schema's or a hand-written migration (exit 1).
        ConflictError: the head migration may be applied somewhere (exit 4).
    """
    from schemactl.codegen.proposal import proposal_migration
    from schemactl.model.definitions import definition_path
    from schemactl.model.loading import tables_at_rev
    from schemactl.model.tableset import Overlay
    from schemactl.verbs.proposer import _safe_table_name

    _safe_table_name(tdef.table)

    def work() -> ProposeResult:
        head = _head(repo)
        if head.others:
            raise ConflictError(
                f"the head migration {head.revision} renames a table online (its proposal "
                f"changed {1 + len(head.others)} definitions): it is not replaced",
                code="unknown_proposal",
                hint=f"revert it (`schemactl propose --revert {head.revision}`), then propose "
                     "again")
        if tdef.table != head.table:
            raise BadInputError(
                f"the head migration {head.revision} changes {head.table}, not {tdef.table}: "
                "--replace takes a definition of the same table", code="other_table",
                hint=f"revert it (`schemactl propose --revert {head.revision}`), then propose "
                     f"{tdef.table}")
        at_head = tables_at_rev(repo.root, "HEAD")
        if head.table in at_head and at_head[head.table].same_state(tdef):
            return ProposeResult(command="propose", table=tdef.table, dry_run=dry_run,
                                 definition=head.definition,
                                 message=f"{tdef.table} is unchanged: the head migration "
                                         f"{head.revision} already proposes it")
        before = _before_def(repo, head)
        if before is not None and before.same_state(tdef):
            return _revert_head(repo, head, actor, dry_run, database_url)
        current = Overlay(at_head, {head.table: before})
        proposed = Overlay(current, {tdef.table: tdef})
        from schemactl.rules import validation

        report = validation.check_definitions(current, proposed, repo.config,
                                              changed=[tdef.table], allow_waivers=allow_waivers)
        if not report.ok:
            return _rejected(tdef.table, report,
                             f"replacement for {tdef.table} rejected by the safety rules",
                             dry_run)
        from schemactl.codegen.proposal import plan_of

        plan = plan_of(current, proposed, tdef.table)
        if plan.empty:
            return _revert_head(repo, head, actor, dry_run, database_url)
        op_report = validation.check_operations(plan.upgrade_ops, current, proposed,
                                                repo.config, allow_waivers=allow_waivers)
        if not op_report.ok:
            return _rejected(tdef.table, op_report, f"the replacement migration for "
                             f"{tdef.table} was rejected by the operation rules", dry_run)
        checked = ensure_unapplied(repo, head.revision, database_url, "replace")
        pm = proposal_migration(current, proposed, tdef.table, head.parent, head.sequence, plan)
        return _commit_replacement(repo, head, tdef, pm, actor, dry_run, checked,
                                   [v.to_json() for v in report.violations + op_report.violations],
                                   list(report.waived) + list(op_report.waived),
                                   definition_path(tdef.table))

    return _locked(repo, wait, dry_run, work)


def _revert_head(repo: SchemaRepo, head: HeadProposal, actor: str, dry_run: bool,
                 database_url: str | None) -> ProposeResult:
    """Revert the head migration (the caller holds the repository lock)."""
    checked = ensure_unapplied(repo, head.revision, database_url, "revert")
    message = (f"revert {head.revision}: {head.definition} back to its state before "
               f"{head.commit[:12]}" if head.before is not None else
               f"revert {head.revision}: remove {head.definition}, which it created")
    if head.others:  # a table rename: the old name's file and its referrers' come back
        message += f"; {', '.join(p for p, _ in head.others)} back as they were"
    base = ProposeResult(command="propose", table=head.table, reverted=head.revision,
                         definition=head.definition, dry_run=dry_run,
                         databases_checked=checked)
    if dry_run:
        return replace(base, message=f"would {message}")
    _ensure_clean(repo, [head.definition, *(p for p, _ in head.others), "migrations/versions"])
    sha = _write_and_commit(
        repo.root, _revert_files(repo, head), message,
        {"Schemactl-Action": "revert", "Schemactl-Revision": head.parent,
         "Schemactl-Reverts": head.revision, "Schemactl-Actor": actor},
        "No database has applied it: the audit file, the journals and every configured "
        "database were checked.")
    return replace(base, commit=sha, message=message)


def _commit_replacement(repo: SchemaRepo, head: HeadProposal, tdef: TableDef,
                        pm: ProposalMigration, actor: str, dry_run: bool,
                        checked: list[dict[str, object]], warnings: list[dict[str, object]],
                        waived: list[dict[str, object]], def_rel: str) -> ProposeResult:
    from schemactl.codegen import sumfile
    from schemactl.codegen.offline import offline_sql
    from schemactl.model.parsing import dump_definition

    rendered = pm.rendered
    migration = {"revision": pm.revision, "down_revision": head.parent, "path": pm.path,
                 "sql": offline_sql(rendered.source, rendered.filename),
                 "message": rendered.message,
                 "archives": [a.to_json() for a in rendered.archives]}
    base = ProposeResult(command="propose", table=tdef.table, migration=migration,
                         changes=[c.to_json() for c in pm.plan.changes], definition=def_rel,
                         dry_run=dry_run, violations=warnings, waived=waived,
                         online_steps=pm.plan.online_steps(), replaced=head.revision,
                         databases_checked=checked)
    subject = f"replace {head.revision}: {rendered.message}"
    if dry_run:
        return replace(base, message=f"would {subject}")
    _ensure_clean(repo, [def_rel, "migrations/versions"])
    source = rendered.source.encode()
    files: dict[str, bytes | None] = {
        def_rel: dump_definition(replace(tdef, source=def_rel)).encode(),
        head.path: None, pm.path: source,
        sumfile.SUM_PATH: sumfile.sum_text(repo.root, {rendered.filename: source},
                                           removed=[head.name]).encode()}
    body = "\n".join(f"- {c.describe()}" for c in pm.plan.changes)
    sha = _write_and_commit(repo.root, files, subject,
                            {"Schemactl-Action": "replace", "Schemactl-Revision": pm.revision,
                             "Schemactl-Replaces": head.revision, "Schemactl-Actor": actor},
                            body + "\n\nNo database has applied the replaced migration: the "
                                   "audit file, the journals and every configured database "
                                   "were checked.")
    return replace(base, commit=sha, message=subject)
