"""`schemactl check --base REF`: the CI gate of a schema pull request.

The change under review is everything between the merge base of REF and HEAD:

1. **Rules on the change.** The definitions at the merge base are the current state and
   the definitions at HEAD the proposed one; they go through the same engine as
   `validate` (a table file deleted is SC101, a column removed SC102, ...).
2. **Consistency (SC602, SC604).** The migrations added on the branch are analysed by
   *state*, not by comparing operation lists: each added migration's ``upgrade()`` runs
   against a recording ``Operations`` object in Alembic's offline mode (no database
   connection exists there; the same context renders the SQL plan), and the recorded
   operations are applied, in chain order, to a model of the base schema built from the
   base definitions. The resulting model must equal the model of the HEAD definitions:
   a definition change the migrations do not reach is SC602 migration-missing; a
   difference the migrations make where the definitions did not change is SC604
   migration-unexplained. Comparing states rather than regenerating one migration and
   diffing operations keeps the check exact when a branch holds several migrations
   (add a column, then alter it), when operations are ordered differently, or when a
   migration was written by hand in plain Alembic. The recorded operations also go
   through the operation rules (a hand-written ``op.drop_column`` is SC102).
3. **Integrity (SC601, SC603).** Migrations present at the merge base must be
   byte-identical and in the same place of the chain at HEAD, and HEAD's sum file
   (`migrations/schemactl.sum`) must match its files; there must be one Alembic head.
4. **Round trip (optional).** On a given or an ephemeral database: upgrade to the base's
   head, upgrade to HEAD, downgrade to the base's head, upgrade again.

The migration code that runs in step 2 is the pull request's own code, as `alembic
upgrade --sql` would run it: run `check` where you would run Alembic on the branch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safety_rules.repo_context import RepoContext
from schemactl.ci.rollbacks import branch_rollbacks
from schemactl.ci.round_trip import run_round_trip
from schemactl.ci.schema_state import State, apply_ops, states_of
from schemactl.codegen.recorder import record_migration
from schemactl.model.definitions import TableDef
from schemactl.results import Result

if TYPE_CHECKING:
    from safety_rules.violation import Violation
    from schemactl.model.repo import SchemaRepo


# -- the result -------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult(Result):
    """What `schemactl check` found (the JSON object the reporters format)."""

    base: str = ""
    merge_base: str = ""
    head: str = ""
    changed_tables: list[str] = field(default_factory=list)
    migrations_added: list[str] = field(default_factory=list)
    plan_sql: str = ""
    round_trip: dict[str, Any] | None = None
    rules_run: list[str] = field(default_factory=list)
    waived: list[dict[str, Any]] = field(default_factory=list)
    sum: dict[str, Any] = field(default_factory=dict)
    rules: dict[str, dict[str, str]] = field(default_factory=dict)
    rollbacks: list[dict[str, Any]] = field(default_factory=list)
    # A Mermaid erDiagram of the changed tables at HEAD (empty when none can be drawn).
    diagram: str = ""


def rule_catalogue(codes: Iterable[str]) -> dict[str, dict[str, str]]:
    """code → {name, summary, hint, severity, help_uri} of the given rules (for SARIF)."""
    from safety_rules.registry import registry

    reg = registry()
    out = {}
    for code in sorted(set(codes)):
        rule = reg.get(code)
        if rule is None:
            continue
        out[code] = {"name": rule.name, "summary": rule.summary(), "hint": rule.hint,
                     "severity": rule.severity,
                     "help_uri": f"docs/rules/{rule.code.lower()}-{rule.name}.md"}
    return out


# -- running the check ------------------------------------------------------------------


def repo_violations(ctx: RepoContext) -> list[Violation]:
    """Run the repository-level rules (those with ``check_repo``) over a context."""
    from schemactl.rules.validation import active_rules

    found: list[Violation] = []
    for rule in active_rules(ctx.config):
        fn = getattr(rule, "check_repo", None)
        if fn is not None:
            found.extend(fn(ctx))
    return found


def _sum_problems(root: Path, head_files: dict[str, bytes],
                  head_chain: list[tuple[str, str]]) -> tuple[dict[str, Any], list[str]]:
    from schemactl.adapters import gitops
    from schemactl.codegen import sumfile

    data = gitops.read_at(root, "HEAD", sumfile.SUM_PATH)
    if data is None:
        return {"present": False, "ok": None, "problems": []}, []
    recorded = sumfile.parse(data)
    problems: list[str] = []
    reportable: list[str] = []
    if not recorded.consistent:
        msg = f"{sumfile.SUM_PATH}: its first line does not match its entries (edited by hand)"
        problems.append(msg)
        reportable.append(msg)
    actual = dict(head_chain)
    for name, sha in recorded.entries:
        if name in actual and actual[name] != sha:
            msg = f"{name} was changed after {sumfile.SUM_PATH} recorded it"
            problems.append(msg)
            reportable.append(msg)
        elif name not in actual:
            problems.append(f"{name} is recorded in {sumfile.SUM_PATH} but missing")
    recorded_names = {n for n, _ in recorded.entries}
    problems += [f"{n} is not recorded in {sumfile.SUM_PATH}" for n in actual
                 if n not in recorded_names]
    return {"present": True, "ok": not problems, "problems": problems}, reportable


def run_check(repo: SchemaRepo, base: str, *, database_url: str | None = None,
              ephemeral: bool = False, allow_waivers: bool = True) -> CheckResult:
    """Check the change between the merge base of ``base`` and HEAD.

    Args:
        repo: the schema repository (HEAD is what is checked; the work tree is used only
            by the round trip, which runs the migration files on disk).
        base: the git revision the pull request targets (a branch, tag or sha).
        database_url: run the round trip on this (empty, disposable) database.
        ephemeral: run the round trip on a fresh embedded server in a temporary folder.
        allow_waivers: False for agents.

    Returns:
        The result; ``ok`` is False (exit 1) when an error-severity violation remains or
        the round trip failed.

    Raises:
        BadInputError: ``base`` is unknown, HEAD does not exist, a definition cannot be read.
    """
    from schemactl.adapters import gitops
    from schemactl.codegen import sumfile
    from schemactl.errors import BadInputError
    from schemactl.model.loading import (
        changed_between,
        files_at_rev,
        parse_files,
        tables_at_rev,
    )
    from schemactl.model.tableset import DictTables, as_table_set
    from schemactl.rules import validation

    root = repo.root
    config = repo.config
    head_sha = gitops.head_sha(root)
    if head_sha is None:
        raise BadInputError("the repository has no commit yet", hint="commit, then check")
    mb = gitops.merge_base(root, base)

    # Definitions: base = current state, HEAD = proposed state. A rollback schemactl
    # recorded on the branch moves the base: what it removed and restored is not the
    # pull request rewriting history (docs/ci.md, Rollbacks).
    rollbacks = branch_rollbacks(root, mb, base)
    # Both trees come from the parse cache (shared definitions; only what git says
    # changed between them is compared). A rollback rewrites the base: parsed as files.
    base_defs: Mapping[str, TableDef]
    if rollbacks:
        from schemactl.model.loading import SourceFile

        cache: dict[tuple[str, bytes], TableDef] = {}
        by_path: dict[str, bytes | None] = {f.path: f.data for f in files_at_rev(root, mb)}
        for rb in rollbacks:
            by_path.update(rb.definitions)
        base_defs = DictTables(parse_files(
            [SourceFile(p, d) for p, d in sorted(by_path.items()) if d is not None], cache))
    else:
        base_defs = tables_at_rev(root, mb)
    head_defs: Mapping[str, TableDef] = tables_at_rev(root, "HEAD")
    changed = changed_between(root, as_table_set(base_defs), as_table_set(head_defs))

    # Migrations: chain order at both ends, what the branch added.
    base_mig = sumfile.files_at_rev(root, mb)
    for rb in rollbacks:
        for name in rb.removed:
            base_mig.pop(name, None)
    head_mig = sumfile.files_at_rev(root, "HEAD")
    base_chain = [(m.name, m.sha256) for m in sumfile.migrations_from(base_mig)]
    head_list = sumfile.migrations_from(head_mig)
    head_chain = [(m.name, m.sha256) for m in head_list]
    added = [m.name for m in head_list if m.name not in base_mig]
    sum_info, sum_reportable = _sum_problems(root, head_mig, head_chain)

    recorded = [record_migration(head_mig[name], name) for name in added]
    opaque: list[tuple[str, str]] = []
    touched: dict[str, str] = {}
    scratch: State = {}
    for rec in recorded:
        apply_ops(scratch, rec.ops, f"{sumfile.VERSIONS}/{rec.name}", opaque, touched)
        if rec.error:
            opaque.append((f"{sumfile.VERSIONS}/{rec.name}",
                           f"upgrade() cannot be analysed offline: {rec.error}"))
    tables = sorted(set(changed) | set(touched))
    base_state = states_of(base_defs, tables)
    migrated: State = {t: dict(s) for t, s in base_state.items()}
    for rec in recorded:
        apply_ops(migrated, rec.ops, rec.name, [], {})

    ctx = RepoContext(
        config=config, base_migrations=tuple(base_chain), head_migrations=tuple(head_chain),
        head_sum_problems=tuple(sum_reportable), heads=tuple(sumfile.heads_of(head_list)),
        head_revisions={m.revision: m.name for m in head_list if m.revision},
        missing_parents=tuple((m.name, d) for m in head_list for d in m.down_revisions
                              if not any(o.revision == d for o in head_list)),
        base_state=base_state, head_state=states_of(head_defs, tables),
        migrated_state=migrated, tables=tuple(tables), head_defs=head_defs,
        touched_by=touched, opaque=tuple(opaque))
    report = validation.check_definitions(base_defs, head_defs, config, changed=changed,
                                          allow_waivers=allow_waivers,
                                          extra=repo_violations(ctx))
    all_ops = [op for rec in recorded for op in rec.ops]
    ops_report = validation.check_operations(all_ops, base_defs, head_defs, config,
                                             allow_waivers=allow_waivers) if all_ops else None
    violations = list(report.violations) + (list(ops_report.violations) if ops_report else [])
    waived = list(report.waived) + (list(ops_report.waived) if ops_report else [])
    violations.sort(key=lambda v: (v.severity != "error", v.rule, v.table or ""))
    rules_run = sorted(set(report.rules_run) | set(ops_report.rules_run if ops_report else ()))

    plan_sql = "\n".join(f"-- {sumfile.VERSIONS}/{rec.name}\n{rec.sql}" for rec in recorded)
    round_trip = None
    if database_url or ephemeral:
        base_head = sumfile.heads_of(sumfile.migrations_from(base_mig))
        round_trip = run_round_trip(repo, base_head[0] if len(base_head) == 1 else None,
                                    database_url=database_url, ephemeral=ephemeral)
    errors = [v for v in violations if v.severity == "error"]
    ok = not errors and (round_trip is None or round_trip.get("ok", False))
    error = None
    if not ok:
        what = f"{len(errors)} error(s)" if errors else "the round trip failed"
        error = {"code": "rejected", "message": f"check failed: {what}",
                 "hint": "see the violations and their hints"}
    return CheckResult(
        command="check", ok=ok, exit_code=1, error=error, diagram=changed_diagram(head_defs,
                                                                                  changed),
        violations=[v.to_json() for v in violations], base=base, merge_base=mb,
        head=head_sha, changed_tables=changed, migrations_added=added, plan_sql=plan_sql,
        round_trip=round_trip, rules_run=rules_run, waived=waived, sum=sum_info,
        rules=rule_catalogue(v.rule for v in violations),
        rollbacks=[{"commit": rb.sha, "removed": list(rb.removed)} for rb in rollbacks])


def changed_diagram(head_defs: Mapping[str, TableDef], changed: list[str]) -> str:
    """A Mermaid erDiagram of the changed tables as HEAD defines them, with the tables they
    are linked to by name; empty when nothing changed that HEAD still has, or when a
    definition cannot be drawn (its violations already say why)."""
    from dataclasses import replace

    from schemactl.codegen.diagram import mermaid
    from schemactl.codegen.metadata import build_metadata
    from schemactl.errors import SchemactlError
    from schemactl.model.tableset import as_table_set

    drawn = [t for t in changed if t in head_defs]
    if not drawn:
        return ""
    # Only what the picture shows: the changed tables, the tables they reference and the
    # tables referencing them (from the index, not a walk of every definition); a link of
    # a neighbour to a table outside is never drawn, so it is left out of the model.
    heads = as_table_set(head_defs)
    around = set(drawn)
    for t in drawn:
        around |= {r for r in heads[t].referenced_tables if r in heads}
        around |= heads.referrers(t)
    defs = {t: heads[t] if t in drawn else replace(heads[t], columns=tuple(
        c if c.ref_table in around else replace(c, references=None)
        for c in heads[t].columns), references=tuple(
        r for r in heads[t].references if r.to in around)) for t in sorted(around)}
    try:
        return mermaid(build_metadata(defs, include_deprecated=True), drawn)
    except (SchemactlError, KeyError, ValueError):
        return ""
