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
from schemactl.codegen.recorder import record_migration
from schemactl.model.definitions import TableDef
from schemactl.results import Result

if TYPE_CHECKING:
    from safety_rules.violation import Violation
    from schemactl.model.repo import SchemaRepo

State = dict[str, dict[str, Any]]


# -- schema models ----------------------------------------------------------------------


def _type_sql(type_: Any) -> str:
    from sqlalchemy.dialects import postgresql

    try:
        return str(type_.compile(dialect=postgresql.dialect())).upper()  # type: ignore[no-untyped-call]
    except Exception:  # noqa: BLE001 - an uncompilable type is compared by its name
        return str(type_).upper()


def _def_type_sql(text: str) -> str:
    from schemactl.codegen.metadata import sa_type
    from schemactl.errors import SchemactlError

    try:
        return _type_sql(sa_type(text))
    except SchemactlError:  # outside the whitelist: SC403 reports it
        return text.upper()


def _put(state: dict[str, Any], key: str, value: Any) -> None:
    if value is None or value is False:
        state.pop(key, None)
    else:
        state[key] = value


def table_state(tdef: TableDef) -> dict[str, Any]:
    """The model of a table as its definition describes it (what a migration must reach)."""
    from schemactl.codegen.metadata import default_sql, effective_comment

    s: dict[str, Any] = {"table": True, "pk": tdef.primary_key or None}
    _put(s, "comment", effective_comment(tdef.comment, tdef.deprecated))
    for c in tdef.columns:
        s[f"column:{c.name}"] = (_def_type_sql(c.type), c.nullable and not c.primary_key,
                                 default_sql(c))
        _put(s, f"column_comment:{c.name}", effective_comment(c.comment, c.deprecated))
        if c.references and c.ref_column:
            s[f"fk:{c.name}"] = c.references
        _put(s, f"unique:{c.name}", c.unique and not c.primary_key)
    for i in tdef.indexes:
        s[f"index:{i.index_name(tdef.table)}"] = (i.unique, tuple(i.columns),
                                                  i.using or "btree", i.opclass)
    return {k: v for k, v in s.items() if v is not None}


def states_of(defs: Mapping[str, TableDef], tables: Iterable[str]) -> State:
    return {t: table_state(defs[t]) for t in tables if t in defs}


def _default_text(default: Any) -> str | None:
    if default is None:
        return None
    arg = getattr(default, "arg", default)
    return str(getattr(arg, "text", arg))


def _column_into(s: dict[str, Any], col: Any, table: str | None) -> None:
    nullable = bool(col.nullable) and not col.primary_key
    s[f"column:{col.name}"] = (_type_sql(col.type), nullable, _default_text(col.server_default))
    _put(s, f"column_comment:{col.name}", col.comment)
    for fk in col.foreign_keys:
        s[f"fk:{col.name}"] = fk.target_fullname
    if col.unique:
        s[f"unique:{col.name}"] = True


def _index_value(op: Any) -> tuple[Any, ...]:
    kw = op.kw or {}
    opclasses = list((kw.get("postgresql_ops") or {}).values())
    cols = tuple(str(c) if isinstance(c, str) else getattr(c, "name", str(c)) for c in op.columns)
    return (bool(op.unique), cols, kw.get("postgresql_using") or "btree",
            opclasses[0] if opclasses else None)


def _constraint_key(s: Mapping[str, Any], table: str | None, name: str) -> str | None:
    from schemactl.model.naming import fk_name, uq_name

    if f"index:{name}" in s:
        return f"index:{name}"
    for key, value in s.items():
        kind, _, col = key.partition(":")
        if kind == "fk" and fk_name(table or "", col, str(value).split(".")[0]) == name:
            return key
        if kind == "unique" and uq_name(table or "", col) == name:
            return key
    return None


def apply_ops(state: State, ops: Iterable[Any], migration: str,
              opaque: list[tuple[str, str]], touched: dict[str, str]) -> None:
    """Apply recorded Alembic operations to a schema model, in place.

    Operations the model cannot follow (raw SQL, renames, ...) are added to ``opaque``.
    """
    for op in ops:
        kind = type(op).__name__
        table = getattr(op, "table_name", None)
        if table is not None:
            touched.setdefault(table, migration)
        s = state.setdefault(table, {}) if table is not None else {}
        if kind == "CreateTableOp":
            t = op.to_table()
            s.clear()
            s["table"] = True
            _put(s, "comment", t.comment)
            for col in t.columns:
                _column_into(s, col, table)
            pk = tuple(c.name for c in t.primary_key.columns)
            _put(s, "pk", pk or None)
            for fkc in t.foreign_key_constraints:
                for elem in fkc.elements:
                    s[f"fk:{elem.parent.name}"] = elem.target_fullname
            for con in t.constraints:
                if type(con).__name__ == "UniqueConstraint" and len(con.columns) == 1:
                    s[f"unique:{next(iter(con.columns)).name}"] = True
        elif kind == "DropTableOp":
            s.clear()
        elif kind == "AddColumnOp":
            _column_into(s, op.column, table)
        elif kind == "DropColumnOp":
            for key in [k for k in s if k.partition(":")[2] == op.column_name
                        and k.partition(":")[0] in ("column", "column_comment", "fk", "unique")]:
                del s[key]
        elif kind == "AlterColumnOp":
            key = f"column:{op.column_name}"
            type_sql, nullable, default = s.get(key, (None, True, None))
            if op.modify_type is not None:
                type_sql = _type_sql(op.modify_type)
            if op.modify_nullable is not None:
                nullable = bool(op.modify_nullable)
            if op.modify_server_default is not False:
                default = _default_text(op.modify_server_default)
            s[key] = (type_sql, nullable, default)
            if op.modify_comment is not False:
                _put(s, f"column_comment:{op.column_name}", op.modify_comment)
        elif kind == "CreateIndexOp":
            s[f"index:{op.index_name}"] = _index_value(op)
            if op.info.get("attach_constraint") and len(op.columns) == 1:
                s.pop(f"index:{op.index_name}", None)
                s[f"unique:{_index_value(op)[1][0]}"] = True
        elif kind == "DropIndexOp":
            s.pop(f"index:{op.index_name}", None)
        elif kind == "CreateForeignKeyOp":
            s[f"fk:{op.local_cols[0]}"] = f"{op.referent_table}.{op.remote_cols[0]}"
        elif kind == "CreateUniqueConstraintOp" and len(op.columns) == 1:
            s[f"unique:{op.columns[0]}"] = True
        elif kind == "DropConstraintOp":
            found = _constraint_key(s, table, str(op.constraint_name))
            if found:
                del s[found]
        elif kind == "CreateTableCommentOp":
            _put(s, "comment", op.comment)
        elif kind == "DropTableCommentOp":
            s.pop("comment", None)
        elif kind == "ExecuteSQLOp":
            opaque.append((migration, f"runs SQL: {' '.join(str(op.sqltext).split())[:120]}"))
        else:
            opaque.append((migration, f"{kind} on {table or '?'}"))
        if table is not None and not s:
            state.pop(table, None)


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


def _parse_all(files: Iterable[Any], cache: dict[tuple[str, bytes], TableDef]
               ) -> dict[str, TableDef]:
    """Parse definition files; a file with the same path and bytes is parsed only once."""
    from schemactl.model.definitions import DefinitionError
    from schemactl.model.parsing import parse_definition

    out: dict[str, TableDef] = {}
    for f in files:
        key = (f.path, f.data)
        tdef = cache.get(key)
        if tdef is None:
            tdef = cache[key] = parse_definition(f.data, f.path)
        if tdef.table in out:
            raise DefinitionError(f"{f.path}: table {tdef.table!r} is also defined in "
                                  f"{out[tdef.table].source}")
        out[tdef.table] = tdef
    return out


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


# -- rollbacks recorded on the branch ------------------------------------------------------

ROLLBACK_TRAILER = "Schemactl-Action: rollback"


@dataclass(frozen=True)
class RollbackCommit:
    """A rollback commit written by schemactl on the branch, verified against its history."""

    sha: str
    removed: tuple[str, ...]
    definitions: Mapping[str, bytes | None]


def _git_text(root: Path, *args: str) -> str:
    from schemactl.adapters import gitops

    return gitops._git(root, *args).decode("utf-8", errors="replace")


def _verify_rollback(root: Path, sha: str, parent: str, body: str) -> RollbackCommit | None:
    """The rollback commit ``sha`` if it is exactly what `schemactl rollback` writes, else None.

    It must only remove the newest migrations of its parent's chain and restore each
    definition those migrations' proposals changed to its content before them (plus the
    audit file and the sum file): the same files `schemactl rollback` computes. Anything
    else (a hand-made commit with the trailer, an edited rollback) gets no exemption.
    """
    from schemactl.adapters import gitops
    from schemactl.codegen import sumfile

    removed: list[str] = []
    definitions: dict[str, bytes | None] = {}
    raw = _git_text(root, "diff-tree", "-r", "-z", "--no-renames", "--name-status", parent, sha)
    fields = [f for f in raw.split("\0") if f]
    for status, path in zip(fields[::2], fields[1::2], strict=False):
        if path.startswith(f"{sumfile.VERSIONS}/") and path.endswith(".py"):
            if status != "D":
                return None
            removed.append(path.rsplit("/", 1)[-1])
        elif path.startswith("dynamic_schema/"):
            definitions[path] = gitops.read_at(root, sha, path)
        elif path not in (sumfile.SUM_PATH, "audit.jsonl"):
            return None
    migrations = sumfile.migrations_from(sumfile.files_at_rev(root, parent))
    chain = [m.name for m in migrations]
    if not removed or not set(removed) <= set(chain) \
            or chain[-len(removed):] != sorted(removed, key=chain.index):
        return None
    # The trailer names the revision the database was left at: the new head of the chain.
    left_at = migrations[-len(removed) - 1].revision if len(chain) > len(removed) else None
    if f"Schemactl-Revision: {left_at}" not in body.splitlines():
        return None
    # What rollback restores: each definition as it was before the oldest undone proposal.
    expected: dict[str, bytes | None] = {}
    for name in reversed(chain[-len(removed):]):
        added = _git_text(root, "log", "--diff-filter=A", "--format=%H", parent, "--",
                          f"{sumfile.VERSIONS}/{name}").split()
        if not added:
            return None
        proposal = added[-1]
        changed = _git_text(root, "diff-tree", "-r", "-z", "--no-renames", "--name-only",
                            "--root", proposal, "--", "dynamic_schema").split("\0")
        for path in (p for p in changed if p.startswith("dynamic_schema/")):
            expected[path] = gitops.read_at(root, f"{proposal}^", path)
    wanted = {p: d for p, d in expected.items() if d != gitops.read_at(root, parent, p)}
    if wanted != definitions:
        return None
    return RollbackCommit(sha, tuple(removed), definitions)


def branch_rollbacks(root: Path, merge_base: str) -> list[RollbackCommit]:
    """Verified rollback commits between ``merge_base`` and HEAD, oldest first."""
    raw = _git_text(root, "log", "--reverse", "--first-parent", "--format=%H %P%n%B%x00",
                    f"{merge_base}..HEAD")
    found = []
    for entry in raw.split("\0"):
        head, _, body = entry.strip().partition("\n")
        shas = head.split()
        if len(shas) == 2 and any(ln.strip() == ROLLBACK_TRAILER for ln in body.splitlines()):
            commit = _verify_rollback(root, shas[0], shas[1], body)
            if commit is not None:
                found.append(commit)
    return found


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
    from schemactl.model.loading import files_at_rev
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
    rollbacks = branch_rollbacks(root, mb)
    cache: dict[tuple[str, bytes], TableDef] = {}
    base_files = files_at_rev(root, mb)
    if rollbacks:
        from schemactl.model.loading import SourceFile

        by_path: dict[str, bytes | None] = {f.path: f.data for f in base_files}
        for rb in rollbacks:
            by_path.update(rb.definitions)
        base_files = [SourceFile(p, d) for p, d in sorted(by_path.items()) if d is not None]
    head_files = files_at_rev(root, "HEAD")
    base_defs = _parse_all(base_files, cache)
    head_defs = _parse_all(head_files, cache)
    changed = sorted(n for n in set(base_defs) | set(head_defs)
                     if n not in base_defs or n not in head_defs
                     or (base_defs[n] is not head_defs[n]
                         and not base_defs[n].same_state(head_defs[n])))

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
        command="check", ok=ok, exit_code=1, error=error,
        violations=[v.to_json() for v in violations], base=base, merge_base=mb,
        head=head_sha, changed_tables=changed, migrations_added=added, plan_sql=plan_sql,
        round_trip=round_trip, rules_run=rules_run, waived=waived, sum=sum_info,
        rules=rule_catalogue(v.rule for v in violations),
        rollbacks=[{"commit": rb.sha, "removed": list(rb.removed)} for rb in rollbacks])


# -- round trip -------------------------------------------------------------------------


def run_round_trip(repo: SchemaRepo, base_revision: str | None, *,
                   database_url: str | None = None, ephemeral: bool = False
                   ) -> dict[str, Any]:
    """Upgrade to the base's head, upgrade to HEAD, downgrade to the base's head, upgrade.

    Args:
        repo: the schema repository (its work tree's migration files run).
        base_revision: the base branch's head revision (None: from nothing).
        database_url: an empty, disposable database.
        ephemeral: a fresh embedded server in a temporary folder, removed afterwards.

    Returns:
        ``{"ok", "database", "steps": [{"step", "ok", ...}], "failed": null | {step,
        message, sql}}``; a failure is reported here, never raised.
    """
    import shutil
    import tempfile

    from schemactl.adapters.database import Target

    server = None
    temp: str | None = None
    try:
        if ephemeral:
            from schemactl.adapters.embedded import EmbeddedServer

            temp = tempfile.mkdtemp(prefix="schemactl-check-")
            server = EmbeddedServer(Path(temp) / ".schemactl", durable=False)
            server.start()
            target = Target(server.secret_url(), embedded=True)
        else:
            target = Target(str(database_url))
        return _round_trip_steps(repo, target, base_revision, "ephemeral" if ephemeral
                                 else target.display)
    finally:
        if server is not None:
            try:
                server.stop()
            except Exception:  # noqa: BLE001 - a server that will not stop is left to the OS
                pass
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def _round_trip_steps(repo: SchemaRepo, target: Any, base_revision: str | None,
                      shown: str) -> dict[str, Any]:
    from schemactl.adapters import migrator
    from schemactl.adapters.database import make_engine
    from schemactl.errors import SchemactlError

    base_target = base_revision or "base"
    steps = [("upgrade to base", "upgrade", base_revision), ("upgrade to head", "upgrade",
                                                               "head"),
             ("downgrade to base", "downgrade", base_target),
             ("upgrade to head again", "upgrade", "head")]
    done: list[dict[str, Any]] = []
    engine = make_engine(target)
    try:
        for label, action, rev in steps:
            if rev is None:
                continue
            try:
                with engine.connect() as conn:
                    fn = migrator.upgrade if action == "upgrade" else migrator.downgrade
                    fn(repo, conn, rev)
                    conn.commit()
            except SchemactlError as exc:
                sql = str(exc.details.get("sql") or "") if exc.details else ""
                failed = {"step": label, "message": target.scrub(exc.message)
                          if hasattr(target, "scrub") else exc.message, "sql": sql}
                done.append({"step": label, "ok": False})
                return {"ok": False, "database": shown, "steps": done, "failed": failed}
            done.append({"step": label, "ok": True, "revision": rev})
    finally:
        engine.dispose()
    return {"ok": True, "database": shown, "steps": done, "failed": None}

