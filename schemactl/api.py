"""The engine API: one typed function per command, and the Python API for agents.

The CLI (`schemactl.cli`) and the MCP server (`schemactl.agents.mcp_server`, over
`schemactl.agents.agent_tools`) are thin layers over these functions. They never print;
they return frozen result objects (see `schemactl.results`) whose ``to_json()`` is
the object the CLI prints with ``--json``, and raise `SchemactlError` subclasses
carrying an exit code, a stable ``code``, a message and a hint.

An agent written in Python calls them directly, naming itself ``agent:<name>``::

    from schemactl import api

    ideas = {"table": "ideas", "columns": [{"name": "summary", "type": "text"}]}
    proposed = api.propose("/srv/schema", definition=ideas, add_base_fields=True,
                           actor="agent:mechanic")
    if proposed.ok and proposed.migration:
        api.apply("/srv/schema", database_url=url, actor="agent:mechanic", wait=30)

An ``agent:`` actor gets no waivers, and ``apply`` and ``rollback`` obey
``[policy] agent_apply`` of schemactl.toml (`schemactl.verbs.policy`): a refusal raises
`PolicyError` (code ``policy``) with nothing changed. Retries are safe: proposing a
definition identical to HEAD and applying with nothing pending are no-ops.
See docs/agents.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schemactl.model.actor import resolve_actor
from schemactl.model.repo import SchemaRepo
from schemactl.results import Result
from schemactl.rules.verb import ValidateResult as ValidateResult  # its home is the verb

if TYPE_CHECKING:
    from schemactl.adapters.database import Target
    from schemactl.pipeline.fleet import Member, TargetOutcome
    from schemactl.pipeline.operation import ApplyResult
    from schemactl.pipeline.rollback import RollbackResult
    from schemactl.verbs.proposer import ProposeResult

PathLike = str | Path


# -- init -----------------------------------------------------------------


@dataclass(frozen=True)
class InitResult(Result):
    path: str
    files: list[str]
    commit: str


def init(path: PathLike, actor: str | None = None) -> InitResult:
    """Scaffold a new schema repository at ``path`` (git init and a first commit)."""
    from schemactl.verbs.scaffold import init_repository

    made = init_repository(Path(path), resolve_actor(actor))
    return InitResult(command="init", path=made.path, files=made.files, commit=made.commit)


# -- embedded database -------------------------------------------------------


@dataclass(frozen=True)
class DbStatusResult(Result):
    running: bool
    url: str | None
    port: int | None
    data_dir: str
    version: str | None


def _db_result(command: str, repo: SchemaRepo, start: bool | None) -> DbStatusResult:
    from schemactl.adapters.embedded import EmbeddedServer

    server = EmbeddedServer(repo.state_dir)
    if start is True:
        st = server.start()
    elif start is False:
        st = server.stop()
    else:
        st = server.status()
    return DbStatusResult(command=command, running=st.running, url=st.url(), port=st.port,
                          data_dir=str(st.data_dir), version=st.version)


def db_start(repo: PathLike | None = None) -> DbStatusResult:
    """Start the repository's embedded PostgreSQL (initialising it on first use)."""
    return _db_result("db start", SchemaRepo.open(repo), True)


def db_stop(repo: PathLike | None = None) -> DbStatusResult:
    """Stop the repository's embedded PostgreSQL."""
    return _db_result("db stop", SchemaRepo.open(repo), False)


def db_status(repo: PathLike | None = None) -> DbStatusResult:
    """Whether the embedded PostgreSQL runs, and its URL (without the password)."""
    return _db_result("db status", SchemaRepo.open(repo), None)


# -- connecting: db url / db env / db psql ---------------------------------------------


@dataclass(frozen=True)
class DbUrlResult(Result):
    url: str
    embedded: bool
    password_shown: bool


@dataclass(frozen=True)
class DbEnvResult(Result):
    # Variable → value, for `eval "$(schemactl db env)"`; holds the password.
    variables: dict[str, str]
    embedded: bool


@dataclass(frozen=True)
class DbPsqlResult(Result):
    psql: str
    returncode: int
    database: str
    stdout: str | None = None
    stderr: str | None = None


def db_url(repo: PathLike | None = None, database_url: str | None = None,
           show_password: bool = False) -> DbUrlResult:
    """The URL an application connects with: the given database, else the embedded server
    (started on demand). Without ``show_password`` the password is left out.
    """
    from schemactl.adapters.database import resolve_target

    target = resolve_target(SchemaRepo.open(repo), database_url)
    return DbUrlResult(command="db url", url=target.url if show_password else target.display,
                       embedded=target.embedded, password_shown=show_password)


def db_env(repo: PathLike | None = None, database_url: str | None = None) -> DbEnvResult:
    """``DATABASE_URL`` (with its password) for the application's environment."""
    from schemactl.adapters.database import resolve_target

    target = resolve_target(SchemaRepo.open(repo), database_url)
    return DbEnvResult(command="db env", variables={"DATABASE_URL": target.url},
                       embedded=target.embedded)


def db_psql(repo: PathLike | None = None, database_url: str | None = None,
            args: list[str] | None = None, capture: bool = False) -> DbPsqlResult:
    """Run psql on the database (the password through ``PGPASSWORD``, never in argv).

    With ``capture`` its output is returned in the result; otherwise psql uses this
    process's terminal. Not ok, with psql's own exit code, when psql fails.

    Raises:
        EnvironmentError_: no psql found, or the embedded server cannot start (exit 3).
    """
    from schemactl.adapters.database import resolve_target
    from schemactl.adapters.psql import run_psql

    target = resolve_target(SchemaRepo.open(repo), database_url)
    ran = run_psql(target, list(args or []), capture=capture)
    ok = ran.returncode == 0
    error = None if ok else {"code": "psql", "message": f"psql exited {ran.returncode}",
                             "hint": "see psql's message above (or in stderr)"}
    return DbPsqlResult(command="db psql", ok=ok, exit_code=ran.returncode or 1, error=error,
                        psql=ran.executable, returncode=ran.returncode,
                        database=target.display, stdout=ran.stdout, stderr=ran.stderr)


# -- validate ------------------------------------------------------------------


def validate(repo: PathLike | None = None, files: list[str] | None = None,
             stdin: bytes | str | object | None = None, *, allow_waivers: bool = True,
             base: str = "HEAD", actor: str | None = None) -> ValidateResult:
    """Format and safety rules over a proposal, offline (no database).

    Args:
        repo: the schema repository (default: the current directory).
        files: definition files, each a proposal against ``base``; with neither
            ``files`` nor ``stdin`` the work tree's dynamic_schema/ is checked.
        stdin: one definition (YAML or JSON) as bytes, text or a binary stream.
        allow_waivers: False for agents, who never get waivers.
        base: the git revision holding the current state.
        actor: who asks (or $SCHEMACTL_ACTOR); an agent (``agent:...``) gets no waivers.

    Returns:
        Not ok (exit 1) when a rule reports an error; warnings and waived findings pass.

    Raises:
        DefinitionError: a definition cannot be parsed (exit 2).
        BadInputError: not a schema repository, a missing file (exit 2).
    """
    from schemactl.rules import verb

    return verb.validate(repo, files=files, stdin=stdin, allow_waivers=allow_waivers,
                         base=base, actor=actor)


def definition_schema() -> dict[str, object]:
    """The published JSON Schema of a dynamic table definition."""
    import json

    from schemactl.resources import DEFINITION_SCHEMA

    path = DEFINITION_SCHEMA
    return dict(json.loads(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class SchemaResult(Result):
    schema: dict[str, object]


def schema() -> SchemaResult:
    """`schemactl schema --json`: the JSON Schema of a definition, in a result object."""
    return SchemaResult(command="schema", schema=definition_schema())


# -- propose / plan --------------------------------------------------------------


def propose(repo: PathLike | None = None, file: PathLike | None = None,
            stdin: bytes | str | None = None, definition: dict[str, object] | None = None,
            dry_run: bool = False, actor: str | None = None,
            add_base_fields: bool = False, wait: float = 60.0, replace: bool = False,
            revert: str | None = None, database_url: str | None = None) -> ProposeResult:
    """Validate one definition, write it with its migration and commit both.

    With ``replace`` the definition replaces the head migration instead (the migration
    propose would have written on the head's parent takes its place); with ``revert`` (a
    revision, no definition) the head migration goes and its table's definition comes
    back. Both only when no database has applied the head migration: the audit file, the
    journals and every configured database (``database_url``, the environment's, the
    embedded server, schemactl.toml's targets) are asked first (docs/reliability.md).

    Exactly one of ``file`` (a path; ``"-"`` reads standard input), ``stdin`` (YAML or
    JSON text) or ``definition`` (a dict, as agents send it) gives the definition.
    With ``add_base_fields`` the configured base fields it lacks are inserted first, so
    an agent can send only its own columns. Proposals into one repository run one at a
    time; ``wait`` bounds how long this one waits for the others (exit 4 after that).

    Returns:
        A `schemactl.verbs.proposer.ProposeResult`: ``migration`` {revision, path, sql},
        ``commit``, ``changes``, ``violations``; not ok (exit 1) when a rule rejected it.
        A definition identical to HEAD is ok with no migration and no commit.

    Raises:
        BadInputError: no or several inputs, a missing file, a malformed definition.
        ConflictError: the definition or migrations/versions/ has uncommitted changes.
    """
    import sys

    from schemactl.errors import BadInputError
    from schemactl.model.actor import is_agent
    from schemactl.model.parsing import from_dict, parse_definition
    from schemactl.verbs import proposer

    sr = SchemaRepo.open(repo)
    who = resolve_actor(actor, sr.root)
    given = [x for x in (file, stdin, definition) if x is not None]
    if revert is not None:
        from schemactl.verbs import replacing

        if given or replace:
            raise BadInputError("--revert takes a revision and no definition",
                                hint="schemactl propose --revert 0003_ab12cd34")
        import re

        if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", revert):
            raise BadInputError(f"--revert: {revert[:80]!r} is not a revision id",
                                hint="take it from `schemactl status` or migrations/versions/")
        return replacing.revert(sr, revert, actor=who, dry_run=dry_run,
                                database_url=database_url, wait=wait)
    if len(given) != 1:
        raise BadInputError("propose needs exactly one definition (a file, - or a definition)",
                            hint="schemactl propose dynamic_schema/notes.yaml")
    if definition is not None:
        from schemactl.model.parsing import definition_size

        # Sized as compact JSON, so SC406 bounds a dict like a file.
        tdef = from_dict(definition, source="<definition>", size=definition_size(definition))
    elif stdin is not None:
        tdef = parse_definition(stdin, "<stdin>")
    elif str(file) == "-":
        tdef = parse_definition(sys.stdin.buffer.read(), "<stdin>")
    else:
        path = Path(str(file))
        if not path.is_file():
            raise BadInputError(f"{file}: no such file", hint="pass a definition file or -")
        tdef = parse_definition(path.read_bytes(), str(file))
    if replace:
        from schemactl.model.parsing import add_base_fields as with_base
        from schemactl.verbs import replacing

        if add_base_fields:
            tdef = with_base(tdef, [f.as_column() for f in sr.config.base_fields])
        return replacing.replace_head(sr, tdef, actor=who, dry_run=dry_run,
                                      allow_waivers=not is_agent(who),
                                      database_url=database_url, wait=wait)
    return proposer.propose(sr, tdef, actor=who, dry_run=dry_run,
                            allow_waivers=not is_agent(who), add_base_fields=add_base_fields,
                            wait=wait)


@dataclass(frozen=True)
class PlanResult(Result):
    pending: list[str]
    sql: str
    database: str
    db_revision: str | None = None
    head_revision: str | None = None
    warnings: list[str] = field(default_factory=list)
    # Online changes: each step with the lock it takes (from the migrations' SQL comments).
    steps: list[str] = field(default_factory=list)


def plan(repo: PathLike | None = None, database_url: str | None = None) -> PlanResult:
    """The SQL `apply` would run against the database: pending revisions, rendered offline.

    Raises:
        DatabaseError: the database cannot be reached (exit 3).
        ConflictError: the database is at a revision git does not have (exit 4).
    """
    from schemactl.adapters.database import resolve_target

    sr = SchemaRepo.open(repo)
    return _plan_of(sr, resolve_target(sr, database_url))


def _plan_of(sr: SchemaRepo, target: Target) -> PlanResult:
    from schemactl.adapters import migrator
    from schemactl.adapters.database import connect

    with connect(target) as conn:
        db_rev = migrator.current_revision(conn)
        available = {str(r[0]) for r in conn.execute(
            "select name from pg_available_extensions where name in ('vector', 'citext')"
        ).fetchall()}
    todo = migrator.pending(sr, db_rev)
    sql = migrator.upgrade_sql(sr, db_rev, "head") if todo else ""
    warnings = []
    if "CREATE EXTENSION IF NOT EXISTS vector" in sql and "vector" not in available:
        warnings.append("the server has no pgvector: apply will fail at CREATE EXTENSION vector "
                        "(install pgvector or use the embedded server)")
    if "CREATE EXTENSION IF NOT EXISTS citext" in sql and "citext" not in available:
        warnings.append("the server has no citext: apply will fail at CREATE EXTENSION citext "
                        "(install the PostgreSQL contrib package)")
    steps = [line[3:] for line in sql.splitlines() if line.startswith("-- online step ")]
    return PlanResult(command="plan", pending=todo, sql=sql, database=target.display,
                      db_revision=db_rev, head_revision=migrator.head(sr), warnings=warnings,
                      steps=steps)


# -- apply / status ------------------------------------------------------------


def apply(repo: PathLike | None = None, database_url: str | None = None,
          actor: str | None = None, wait: float | None = None,
          progress: Callable[[str, int, int | None], None] | None = None,
          ) -> ApplyResult:
    """Apply pending migrations: lock, drift check, backup, upgrade, verify, audit, commit.

    Args:
        repo: the schema repository (default: the current directory).
        database_url: the database (default: environment, then the embedded server).
        actor: who applies (default: $SCHEMACTL_ACTOR, then the git user).
        wait: None to fail at once (exit 4) when another apply runs; seconds to wait for it
            (0 or less: no limit).
        progress: called with (step, done, total) as the apply advances.
    """
    from schemactl.adapters.database import resolve_target
    from schemactl.pipeline import applier

    sr = SchemaRepo.open(repo)
    who = resolve_actor(actor, sr.root)
    from schemactl.verbs.policy import guard_for

    return applier.apply(sr, resolve_target(sr, database_url), who, wait=wait,
                         progress=progress, guard=guard_for(sr, who))


@dataclass(frozen=True)
class StatusResult(Result):
    git_head: str | None
    head_revision: str | None
    db_revision: str | None
    pending: list[str]
    database: str
    database_ok: bool
    server_version: str | None = None
    drift: list[dict[str, str]] = field(default_factory=list)
    last_backup: dict[str, object] | None = None
    message: str = ""
    interrupted: str | None = None
    # Online changes started and not finished (a killed apply): apply resumes, rollback undoes.
    online: list[dict[str, object]] = field(default_factory=list)


def status(repo: PathLike | None = None, database_url: str | None = None) -> StatusResult:
    """Git head, database revision, pending migrations, and whether the database answers."""
    from schemactl.adapters import gitops, migrator
    from schemactl.adapters.database import resolve_target

    sr = SchemaRepo.open(repo)
    return _status_of(sr, resolve_target(sr, database_url), gitops.head_sha(sr.root),
                      migrator.head(sr))


def _status_of(sr: SchemaRepo, target: Target, git_head: str | None,
               head_rev: str | None) -> StatusResult:
    from schemactl.adapters import migrator
    from schemactl.adapters.database import connect
    from schemactl.errors import DatabaseError

    try:
        with connect(target) as conn:
            version = str(conn.execute("show server_version").fetchone()[0])  # type: ignore[index]
            db_rev = migrator.current_revision(conn)
            from schemactl.pipeline.online import under_way_psycopg

            online = under_way_psycopg(conn)
    except DatabaseError as exc:
        return StatusResult(command="status", ok=False, git_head=git_head, head_revision=head_rev,
                            db_revision=None, pending=[], database=target.display,
                            database_ok=False, message=exc.message,
                            exit_code=exc.exit_code, error=exc.to_json())
    todo = migrator.pending(sr, db_rev)
    msg = "up to date" if not todo else f"{len(todo)} migration(s) pending"
    drift_found, last_backup, interrupted = _apply_state(sr, target, db_rev, todo)
    if _blocking_drift(sr, drift_found, allow_pending=interrupted is not None):
        # "up to date" would be wrong: apply and rollback refuse this database until it is fixed.
        msg = (f"drifted from git ({len(drift_found)} difference(s)); "
               + ("no migration pending" if not todo else msg))
    if interrupted:
        msg = f"{interrupted}; {msg}"
    for o in online:
        msg += (f"; online change of {o['table']}.{o['column']} stopped at {o['step']} "
                f"({o['rows_done']} rows backfilled): apply resumes it, rollback undoes it")
    return StatusResult(command="status", git_head=git_head, head_revision=head_rev,
                        db_revision=db_rev, pending=todo, database=target.display,
                        database_ok=True, server_version=version, message=msg,
                        drift=drift_found, last_backup=last_backup, interrupted=interrupted,
                        online=online)


def _blocking_drift(sr: SchemaRepo, found: list[dict[str, str]], *,
                   allow_pending: bool = False) -> bool:
    from schemactl.pipeline import drift, migrate

    return bool(drift.blocking(found, migrate.managed_tables(sr), allow_pending=allow_pending))


def _apply_state(sr: SchemaRepo, target: Target, db_rev: str | None, todo: list[str],
                 ) -> tuple[list[dict[str, str]], dict[str, object] | None, str | None]:
    """Drift (what pending migrations already made marked as theirs), the newest complete
    backup, and what an interrupted apply left."""
    from schemactl.errors import translate
    from schemactl.pipeline import backup, drift, runner

    try:
        found = drift.detect_drift(sr, target, db_rev)
        if todo:
            found = drift.mark_pending(sr, target, found, todo, todo[-1])
    except Exception as exc:  # status still answers when the drift check cannot run
        known = translate(exc)  # a connection that failed after the first one, too
        if known is None:
            raise
        found = [{"kind": "unchecked", "table": "",
                  "message": f"drift not checked: {target.scrub(known.message)}"}]
    backups = backup.list_backups(sr)
    last = backups[0].to_json() if backups else None
    try:
        interrupted = runner.pipeline_state(sr, target)
    except Exception as exc:
        known = translate(exc)
        if known is None:
            raise
        interrupted = f"unknown: the run journal could not be read ({target.scrub(known.message)})"
    return found, last, interrupted


# -- history / backups -------------------------------------------------------------


@dataclass(frozen=True)
class HistoryResult(Result):
    entries: list[dict[str, object]]
    database: str
    # Set when the database did not answer and only the audit file was read.
    warning: str | None = None


def history(repo: PathLike | None = None, database_url: str | None = None,
            limit: int = 50) -> HistoryResult:
    """Audit entries of the database, newest first (audit_log rows plus the audit file).

    When the database does not answer, the repository's audit file alone is read.
    """
    from schemactl.adapters.database import connect, resolve_target
    from schemactl.errors import DatabaseError
    from schemactl.pipeline import audit

    sr = SchemaRepo.open(repo)
    target = resolve_target(sr, database_url)
    warning = None
    try:
        with connect(target) as conn:
            entries = audit.history(sr, conn, target.display, limit)
    except DatabaseError as exc:
        # Say so: an empty list must not read as "nothing ever happened" to the caller.
        warning = f"{exc.message}; showing the audit file's entries only"
        entries = audit.history(sr, None, target.display, limit)
    return HistoryResult(command="history", entries=entries, database=target.display,
                         warning=warning)


@dataclass(frozen=True)
class BackupsResult(Result):
    backups: list[dict[str, object]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    verify: dict[str, object] | None = None
    protected: dict[str, list[str]] = field(default_factory=dict)
    total_bytes: int | None = None
    kept_over_limit: bool = False


def backups_list(repo: PathLike | None = None) -> BackupsResult:
    """Complete backups, newest first, with their manifests."""
    from schemactl.pipeline import backup

    sr = SchemaRepo.open(repo)
    return BackupsResult(command="backups list",
                         backups=[b.to_json() for b in backup.list_backups(sr)])


def backups_verify(backup_id: str, repo: PathLike | None = None) -> BackupsResult:
    """Re-hash a backup and read it with pg_restore --list; not ok (exit 3) when damaged."""
    from schemactl.errors import EnvironmentError_
    from schemactl.pipeline import backup

    sr = SchemaRepo.open(repo)
    report = backup.verify_backup(sr, backup_id)
    ok = bool(report["ok"])
    err = None if ok else {"code": "backup_damaged",
                           "message": f"backup {backup_id}: {'; '.join(report['problems'])}"}
    return BackupsResult(command="backups verify", verify=report, ok=ok,
                         exit_code=EnvironmentError_.exit_code, error=err)


def backups_prune(repo: PathLike | None = None, keep_last: int | None = None,
                  max_total_mb: float | None = None) -> BackupsResult:
    """Apply retention: the newest ``keep_last`` backups within ``max_total_mb`` (defaults:
    schemactl.toml [backup]); the newest good backup of a table whose change is still
    applied is never removed."""
    from schemactl.pipeline import retention

    sr = SchemaRepo.open(repo)
    done = retention.prune(sr, keep_last, max_total_mb)
    return BackupsResult(command="backups prune", removed=done["removed"], kept=done["kept"],
                         protected=done["protected"], total_bytes=done["total_bytes"],
                         kept_over_limit=done["kept_over_limit"])


# -- rollback / archive ------------------------------------------------------------------


def rollback(repo: PathLike | None = None, database_url: str | None = None,
             actor: str | None = None, to: str | None = None,
             restore_backup: str | None = None, force: bool = False,
             wait: float | None = None,
             progress: Callable[[str, int, int | None], None] | None = None,
             ) -> RollbackResult:
    """Undo the last applied dynamic migration without losing data (DESIGN.md, Rollback).

    Args:
        repo: the schema repository (default: the current directory).
        database_url: the database (default: environment, then the embedded server).
        actor: who rolls back (default: $SCHEMACTL_ACTOR, then the git user).
        to: undo every revision after this one, one at a time (each with its own backup,
            audit entry and commit).
        restore_backup: instead of the downgrades, restore the pre-change dump with this id.
        force: with ``restore_backup``, restore even when rows were written since.
        wait: None to fail at once (exit 4) when another run holds the lock; seconds to wait.
        progress: called with (step, done, total) as the rollback advances.

    Returns:
        A `schemactl.pipeline.rollback.RollbackResult`: ``rolled_back``, ``archived: [{from, to}]``,
        ``backup``, ``commit`` (``steps`` with ``to``).

    Raises:
        RejectedError: the core schema's migration, a hand-written one, or rows written
            since the backup without ``force`` (exit 1).
        ConflictError: the database is not at git's head, ``to`` is not an ancestor, drift,
            or the lock is held (exit 4).
    """
    from schemactl.adapters.database import resolve_target
    from schemactl.errors import BadInputError
    from schemactl.pipeline import rollback as rb
    from schemactl.verbs.policy import guard_for

    if to is not None and restore_backup is not None:
        raise BadInputError("--to and --restore-backup cannot be combined",
                            hint="a backup already names the revision it goes back to")
    if force and restore_backup is None:
        raise BadInputError("--force only applies to --restore-backup")
    sr = SchemaRepo.open(repo)
    who = resolve_actor(actor, sr.root)
    if force:
        from schemactl.verbs.policy import refuse_agent_force

        refuse_agent_force(who, "--force")  # agents never force (DESIGN.md, Agents)
    target = resolve_target(sr, database_url)
    if restore_backup is not None:
        from schemactl.pipeline.restore import restore_backup as restore

        return restore(sr, target, who, restore_backup, force=force, wait=wait,
                       progress=progress, guard=guard_for(sr, who))
    return rb.rollback(sr, target, who, to=to, wait=wait, progress=progress,
                       guard=guard_for(sr, who))


@dataclass(frozen=True)
class ArchiveResult(Result):
    entries: list[dict[str, object]]
    database: str


def archive_list(repo: PathLike | None = None,
                 database_url: str | None = None) -> ArchiveResult:
    """What the archive schema holds: source table/column, revision, rows, time."""
    from schemactl.adapters.database import resolve_target
    from schemactl.pipeline.archive import archive_entries

    sr = SchemaRepo.open(repo)
    target = resolve_target(sr, database_url)
    return ArchiveResult(command="archive list", entries=archive_entries(target),
                         database=target.display)


# -- diagram -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiagramResult(Result):
    format: str
    tables: list[str]
    diagram: str


def diagram(repo: PathLike | None = None, tables: list[str] | None = None,
            fmt: str = "mermaid") -> DiagramResult:
    """The tables, keys and foreign keys of the work tree's schema as a diagram.

    Core models and the dynamic definitions of ``dynamic_schema/`` (deprecated ones left
    out, as `load_metadata` does); no database. ``tables`` draws only those (with the
    tables they reference or are referenced by, by name); ``fmt`` is ``mermaid`` or ``dot``.

    Raises:
        BadInputError: an unknown table or format, a definition that cannot be read (exit 2).
    """
    from schemactl.codegen import diagram as drawing
    from schemactl.codegen.metadata import load_metadata
    from schemactl.errors import BadInputError

    sr = SchemaRepo.open(repo)
    if fmt not in drawing.FORMATS:
        raise BadInputError(f"unknown diagram format {fmt!r}",
                            hint=f"use one of: {', '.join(drawing.FORMATS)}")
    metadata = load_metadata(sr.root)
    try:
        text = drawing.render(fmt, metadata, tables or None)
    except KeyError as exc:
        raise BadInputError(f"no such table: {exc.args[0]}",
                            hint="tables: " + ", ".join(sorted(metadata.tables)),
                            code="unknown_table") from None
    return DiagramResult(command="diagram", format=fmt,
                         tables=list(tables or sorted(metadata.tables)), diagram=text)


# -- check ---------------------------------------------------------------------------------


if TYPE_CHECKING:
    from schemactl.ci.check import CheckResult


def check(repo: PathLike | None = None, base: str = "HEAD", database_url: str | None = None,
          ephemeral: bool = False, actor: str | None = None) -> CheckResult:
    """The CI check of a schema pull request: the change from merge-base(base, HEAD) to HEAD.

    Args:
        repo: the schema repository (default: the current directory).
        base: the git revision the pull request targets.
        database_url: also run the round trip (upgrade, downgrade, upgrade) on this
            empty, disposable database.
        ephemeral: run the round trip on a fresh embedded server in a temporary folder.
        actor: who asks (or $SCHEMACTL_ACTOR); an agent (``agent:...``) gets no waivers.

    Returns:
        A :class:`~schemactl.ci.check.CheckResult`; not ok (exit 1) on an error-severity
        violation or a failed round trip.

    Raises:
        BadInputError: not a schema repository, an unknown ``base`` (exit 2).
    """
    import os

    from schemactl.ci.check import run_check
    from schemactl.model.actor import is_agent

    sr = SchemaRepo.open(repo)
    return run_check(sr, base, database_url=database_url, ephemeral=ephemeral,
                     allow_waivers=not is_agent(actor or os.environ.get("SCHEMACTL_ACTOR")
                                                or ""))


# -- fleets: one repository, many databases (DESIGN.md, Fleet) -------------------------------


@dataclass(frozen=True)
class Selection:
    """Which targets of schemactl.toml a command works on (``--target``/``--group``/``--all``)."""

    targets: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    all: bool = False

    def __bool__(self) -> bool:
        return bool(self.targets or self.groups or self.all)


def _members(sr: SchemaRepo, selection: Selection) -> list[Member]:
    from schemactl.pipeline import fleet

    specs = fleet.select(sr.config.targets, selection.targets, selection.groups, selection.all)
    return fleet.resolve_all(sr, specs)


def _not_at_head(rows: list[Any], bad: Callable[[Any], str | None]) -> dict[str, Any] | None:
    named = [f"{r.name} ({why})" for r in rows if (why := bad(r))]
    if not named:
        return None
    shown = ", ".join(named[:8]) + (f" (+{len(named) - 8} more)" if len(named) > 8 else "")
    return {"code": "fleet", "message": f"{len(named)} of {len(rows)} target(s): {shown}",
            "hint": "each target's error says why; a rerun applies only where the head is "
                    "missing (docs/fleet.md)"}


@dataclass(frozen=True)
class FleetApplyResult(Result):
    targets: list[TargetOutcome]
    summary: dict[str, int]
    commit: str | None
    head_revision: str | None
    parallel: int
    canary: int
    on_error: str


def apply_fleet(repo: PathLike | None = None, selection: Selection = Selection(all=True),
                actor: str | None = None, *, parallel: int = 4, canary: int = 0,
                on_error: str = "stop", wait: float | None = None,
                on_event: Callable[[str, str], None] | None = None) -> FleetApplyResult:
    """Apply pending migrations to several targets of schemactl.toml, ``parallel`` at a time.

    Each target runs the whole apply pipeline (lock, drift check, backup, journal, audit
    row); the run makes one git commit with a ``Schemactl-Target:`` trailer per target.

    Args:
        selection: the targets (``--target``, ``--group``, ``--all``).
        parallel: how many targets run at once.
        canary: the first ``canary`` targets run alone first; a failure among them stops the
            run before any other target starts.
        on_error: "stop" starts no further target after a failure; "continue" runs them all.
        wait: as for :func:`apply`, per target.
        on_event: called with (target, state) as targets advance (from worker threads).

    Returns:
        ok only when every selected target is at head; else not ok with the highest exit
        code among the targets' errors.

    Raises:
        BadInputError: no target selected, an unknown name or group, bad options (exit 2).
        PolicyError: the actor may not apply (exit 1, nothing changed).
    """
    from schemactl.pipeline import fleet
    from schemactl.verbs.policy import guard_for

    sr = SchemaRepo.open(repo)
    who = resolve_actor(actor, sr.root)
    members = _members(sr, selection)
    run = fleet.apply_fleet(sr, members, who, parallel=parallel, canary=canary,
                            on_error=on_error, wait=wait, guard=guard_for(sr, who),
                            on_event=on_event)
    code = fleet.exit_code(run.targets)
    return FleetApplyResult(
        command="apply", ok=code == 0, exit_code=code or 1,
        error=_not_at_head(run.targets, lambda o: None if o.ok else o.status),
        targets=run.targets, summary=fleet.summary(run.targets), commit=run.commit,
        head_revision=run.head_revision, parallel=parallel, canary=canary, on_error=on_error)


@dataclass(frozen=True)
class TargetStatus:
    """One target's line of ``status --all``."""

    name: str
    reachable: bool
    db_revision: str | None
    pending: list[str]
    drift: list[dict[str, str]]
    database: str = ""
    group: str | None = None
    message: str = ""
    interrupted: str | None = None
    error: dict[str, Any] | None = None


FAIL_ON = ("pending", "drift", "unreachable")
_FAIL_EXIT = {"pending": 1, "unreachable": 3, "drift": 4}


@dataclass(frozen=True)
class FleetStatusResult(Result):
    git_head: str | None
    head_revision: str | None
    targets: list[TargetStatus]
    summary: dict[str, int]
    fail_on: list[str]


def status_fleet(repo: PathLike | None = None, selection: Selection = Selection(all=True),
                 fail_on: tuple[str, ...] = ("unreachable",),
                 parallel: int = 4) -> FleetStatusResult:
    """Revision, pending migrations and drift of several targets, ``parallel`` at a time.

    Not ok when a target meets a condition of ``fail_on`` (``pending``, ``drift``,
    ``unreachable``): exit 1 for pending, 3 unreachable, 4 drift, the highest that applies.

    Raises:
        BadInputError: no target selected, an unknown name, group or condition (exit 2).
    """
    import threading

    from schemactl.adapters import gitops, migrator
    from schemactl.errors import BadInputError
    from schemactl.pipeline import fleet
    from schemactl.pipeline.fleet import TargetOutcome

    bad = [c for c in fail_on if c not in FAIL_ON]
    if bad:
        raise BadInputError(f"--fail-on: unknown condition(s) {', '.join(bad)}",
                            hint=f"use a comma-separated list of {', '.join(FAIL_ON)}")
    sr = SchemaRepo.open(repo)
    git_head, head_rev = gitops.head_sha(sr.root), migrator.head(sr)
    members = _members(sr, selection)
    found: dict[str, TargetStatus] = {}

    def one(m: Member) -> TargetOutcome:
        try:
            return _one(m)
        except Exception as exc:  # noqa: BLE001 - one target's surprise must not hide the rest
            message = f"{type(exc).__name__}: {exc}"
            if m.target is not None:
                message = m.target.scrub(message)
            found[m.name] = TargetStatus(m.name, False, None, [], [], database=m.display,
                                         group=m.group, message=message,
                                         error={"code": "unexpected", "message": message})
            return TargetOutcome(name=m.name, ok=False, status="failed")

    def _one(m: Member) -> TargetOutcome:
        if m.target is None:
            assert m.problem is not None
            found[m.name] = TargetStatus(m.name, False, None, [], [], group=m.group,
                                         message=m.problem.message, error=m.problem.to_json())
        else:
            st = _status_of(sr, m.target, git_head, head_rev)
            drifted = st.drift if _blocking_drift(sr, st.drift) else []
            found[m.name] = TargetStatus(m.name, st.database_ok, st.db_revision, st.pending,
                                         drifted, database=st.database, group=m.group,
                                         message=st.message, interrupted=st.interrupted,
                                         error=st.error)
        return TargetOutcome(name=m.name, ok=True, status="up_to_date")

    fleet.run_batch(members, one, parallel, threading.Event(), False, None, {})
    rows = [found[m.name] for m in members]

    def hits(r: TargetStatus) -> list[str]:
        return [c for c in fail_on if (c == "unreachable" and not r.reachable)
                or (c == "pending" and r.pending) or (c == "drift" and r.drift)]

    def failing(r: TargetStatus) -> str | None:
        return ", ".join(hits(r)) or None

    code = max((_FAIL_EXIT[c] for r in rows for c in hits(r)), default=0)
    summary = {"targets": len(rows), "reachable": sum(r.reachable for r in rows),
               "at_head": sum(1 for r in rows if r.reachable and not r.pending),
               "pending": sum(1 for r in rows if r.pending),
               "drift": sum(1 for r in rows if r.drift),
               "unreachable": sum(1 for r in rows if not r.reachable)}
    return FleetStatusResult(command="status", ok=code == 0, exit_code=code or 1,
                             error=_not_at_head(rows, failing), git_head=git_head,
                             head_revision=head_rev, targets=rows, summary=summary,
                             fail_on=list(fail_on))


@dataclass(frozen=True)
class TargetPlan:
    name: str
    ok: bool
    pending: list[str]
    sql: str
    db_revision: str | None = None
    database: str = ""
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class FleetPlanResult(Result):
    head_revision: str | None
    targets: list[TargetPlan]


def plan_fleet(repo: PathLike | None = None,
               selection: Selection = Selection(all=True)) -> FleetPlanResult:
    """The SQL `apply` would run on each selected target (targets that do not answer say so).

    Raises:
        BadInputError: no target selected, an unknown name or group (exit 2).
    """
    from schemactl.adapters import migrator
    from schemactl.errors import SchemactlError

    sr = SchemaRepo.open(repo)
    rows = []
    for m in _members(sr, selection):
        try:
            if m.problem is not None:
                raise m.problem
            assert m.target is not None
            p = _plan_of(sr, m.target)
            rows.append(TargetPlan(m.name, True, p.pending, p.sql, p.db_revision, p.database))
        except SchemactlError as exc:
            rows.append(TargetPlan(m.name, False, [], "", database=m.display,
                                   error={"code": exc.code, "message": exc.message,
                                          "exit_code": exc.exit_code}))
    code = max((int((r.error or {}).get("exit_code", 3)) for r in rows if not r.ok), default=0)
    return FleetPlanResult(command="plan", ok=code == 0, exit_code=code or 1,
                           error=_not_at_head(rows, lambda r: None if r.ok else "failed"),
                           head_revision=migrator.head(sr), targets=rows)


@dataclass(frozen=True)
class FleetHistoryResult(Result):
    entries: list[dict[str, object]]
    targets: list[str]
    warnings: list[str] = field(default_factory=list)


def history_fleet(repo: PathLike | None = None, selection: Selection = Selection(all=True),
                  limit: int = 50) -> FleetHistoryResult:
    """Audit entries of the selected targets, newest first, each naming its ``target``."""
    from schemactl.adapters.database import connect
    from schemactl.errors import DatabaseError
    from schemactl.pipeline import audit

    sr = SchemaRepo.open(repo)
    members = _members(sr, selection)
    entries: list[dict[str, object]] = []
    warnings: list[str] = []
    for m in members:
        if m.target is None:
            warnings.append(f"{m.name}: {m.problem.message if m.problem else 'unresolved'}")
            continue
        try:
            with connect(m.target) as conn:
                rows = audit.history(sr, conn, m.target.display, limit)
        except DatabaseError as exc:
            warnings.append(f"{m.name}: {exc.message}; showing the audit file's entries only")
            rows = audit.history(sr, None, m.target.display, limit)
        entries += [{"target": m.name, **e} for e in rows]
    entries.sort(key=lambda e: str(e.get("created_at") or ""), reverse=True)
    return FleetHistoryResult(command="history", entries=entries[:limit],
                              targets=[m.name for m in members], warnings=warnings)


def single_target_url(repo: PathLike | None, selection: Selection, command: str) -> str:
    """The one database a selection names, for the forms that work on one (``rollback``
    without ``--to``, ``--restore-backup``).

    Raises:
        BadInputError: the selection names more than one target (exit 2).
        EnvironmentError_: its URL cannot be had (an unset ``url_env``, exit 3).
    """
    from schemactl.errors import BadInputError

    members = _members(SchemaRepo.open(repo), selection)
    if len(members) != 1:
        raise BadInputError(
            f"{command} without --to works on one target at a time ({len(members)} selected)",
            hint="name the revision every target goes back to: rollback --to REV --all "
                 "(docs/fleet.md, Rollback)",
            code="one_target")
    m = members[0]
    if m.problem is not None:
        raise m.problem
    assert m.target is not None
    return m.target.url


@dataclass(frozen=True)
class FleetRollbackResult(Result):
    targets: list[Any]
    summary: dict[str, int]
    commit: str | None
    to: str
    removed: list[str]
    kept: list[str]
    kept_for: list[str]
    parallel: int
    canary: int
    on_error: str


def rollback_fleet(repo: PathLike | None = None, selection: Selection = Selection(all=True),
                   actor: str | None = None, *, to: str, parallel: int = 4, canary: int = 0,
                   on_error: str = "stop", wait: float | None = None,
                   on_event: Callable[[str, str], None] | None = None) -> FleetRollbackResult:
    """Roll several targets of schemactl.toml back to ``to``, ``parallel`` at a time.

    Each target runs the rollback pipeline one revision at a time (lock, drift check,
    backup, archive instead of drop, journal, audit row). Git changes once: the run's commit
    carries every target's audit line and a ``Schemactl-Target:`` trailer per target, and
    removes the undone migrations only when no configured target still has one applied
    (``removed``; else ``kept`` and ``kept_for`` say which targets hold them).

    Returns:
        ok only when every selected target is at ``to`` (or below it); else not ok with the
        highest exit code among the targets' errors.

    Raises:
        BadInputError: no target selected, an unknown name, group or revision, bad options.
        ConflictError: ``to`` is not an ancestor of git's head, uncommitted definitions.
        RejectedError: a revision to undo is the core migration or hand-written (exit 1).
        PolicyError: the actor may not roll back (exit 1, nothing changed).
    """
    from schemactl.pipeline import fleet, fleet_rollback
    from schemactl.verbs.policy import guard_for

    sr = SchemaRepo.open(repo)
    who = resolve_actor(actor, sr.root)
    members = _members(sr, selection)
    run = fleet_rollback.rollback_fleet(sr, members, who, to, parallel=parallel, canary=canary,
                                        on_error=on_error, wait=wait, guard=guard_for(sr, who),
                                        on_event=on_event)
    code = fleet.exit_code(run.targets)
    return FleetRollbackResult(
        command="rollback", ok=code == 0, exit_code=code or 1,
        error=_not_at_head(run.targets, lambda o: None if o.ok else o.status),
        targets=run.targets, summary=fleet.summary(run.targets, fleet_rollback.STATUSES),
        commit=run.commit, to=run.to, removed=run.removed, kept=run.kept,
        kept_for=run.kept_for, parallel=parallel, canary=canary, on_error=on_error)
