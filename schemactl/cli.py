"""The `schemactl` command line: click only.

Each command parses its arguments, calls one engine function (`schemactl.api`),
renders the result and exits. Errors are mapped to exit codes in one place
(`SchemactlGroup.invoke`). This module never imports sqlalchemy, alembic, git
or subprocess.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click

from schemactl.errors import SchemactlError
from schemactl.ui import connect as _connect  # noqa: F401 - registers renderers
from schemactl.ui import output

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Options:
    """Global options, settable before or after the command name."""

    repo: str | None = None
    database_url: str | None = None
    actor: str | None = None
    json: bool = False


def _opts() -> Options:
    ctx = click.get_current_context()
    obj = ctx.find_object(Options)
    if obj is None:
        obj = ctx.ensure_object(Options)
    return obj


def _store(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value not in (None, False):
            setattr(ctx.ensure_object(Options), name, value)
        return value

    return callback


def global_options(fn: F) -> F:
    """--repo, --database-url, --actor and --json, accepted on every command."""
    opts = [
        click.option("--repo", "repo", type=click.Path(file_okay=False), expose_value=False,
                     callback=_store("repo"), is_eager=True,
                     help="Schema repository (default: the current directory)."),
        click.option("--database-url", "database_url", expose_value=False,
                     callback=_store("database_url"), is_eager=True,
                     help="PostgreSQL URL (default: $SCHEMACTL_DATABASE_URL, $DATABASE_URL, "
                          "then the embedded server)."),
        click.option("--actor", "actor", expose_value=False, callback=_store("actor"),
                     is_eager=True, help="Who acts, for audit entries and commits."),
        click.option("--json", "json_", is_flag=True, expose_value=False,
                     callback=_store("json"), is_eager=True,
                     help="Print one JSON object on stdout."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def fleet_options(fn: F) -> F:
    """--target NAME and --group NAME (repeatable) and --all: targets of schemactl.toml."""
    opts = [
        click.option("--target", "fleet_targets", multiple=True, metavar="NAME",
                     help="A target of schemactl.toml (repeatable)."),
        click.option("--group", "fleet_groups", multiple=True, metavar="NAME",
                     help="Every target of this group (repeatable)."),
        click.option("--all", "fleet_all", is_flag=True, help="Every target of schemactl.toml."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _selection(targets: tuple[str, ...], groups: tuple[str, ...], all_: bool) -> Any:
    from schemactl import api

    sel = api.Selection(tuple(targets), tuple(groups), all_)
    if sel and _opts().database_url:
        raise click.UsageError("--database-url is the single-target form: drop it or the "
                               "--target/--group/--all selection")
    return sel


def emit(result: Any, fmt: str | None = None) -> NoReturn:
    """Print a result and exit: 0, or the result's exit code when it is not ok.

    ``fmt`` is ``json``, ``human`` or a `check` reporter (sarif, markdown, github, junit);
    by default ``json`` with --json, else ``human``.
    """
    data = result.to_json()
    fmt = fmt or ("json" if _opts().json else "human")
    if fmt == "json":
        output.print_json(data)
    elif fmt == "human":
        output.print_human(data)
    else:
        from schemactl.ci import reporters

        sys.stdout.write(reporters.render(fmt, data))
        sys.stdout.flush()
    sys.exit(0 if data.get("ok", True) else result.exit_code)


def _command_name(group: click.Group, argv: list[str]) -> str:
    """The command path named on the command line ("apply", "db status"), for JSON errors."""
    words: list[str] = []
    current: click.Command = group
    for token in argv:
        if not isinstance(current, click.Group):
            break
        sub = current.commands.get(token)
        if sub is not None:
            words.append(token)
            current = sub
    return " ".join(words)


# Where the group keeps the arguments it was given (ctx.meta is shared by every context).
ARGS_KEY = "schemactl.args"


class SchemactlGroup(click.Group):
    """Maps every expected error to its exit code and a one-line message (or JSON).

    The arguments come from the click context, never from ``sys.argv``: click's
    ``CliRunner`` (tests/test_cli.py) drives the command line in-process.
    """

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        given = list(args)
        ctx = super().make_context(info_name, args, parent=parent, **extra)
        ctx.meta[ARGS_KEY] = given
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        args: list[str] = ctx.meta.get(ARGS_KEY, [])
        wants_json = "--json" in args
        try:
            try:
                return super().invoke(ctx)
            except (click.exceptions.Exit, click.ClickException, KeyboardInterrupt,
                    SystemExit):
                raise
            except Exception as raw:
                from schemactl.errors import internal, translate

                if os.environ.get("SCHEMACTL_DEBUG"):
                    raise
                raise (translate(raw) or internal(raw)) from raw
        except SchemactlError as exc:
            output.report_error(_command_name(self, args) or "schemactl", exc,
                                bool(wants_json or (ctx.obj and ctx.obj.json)))
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            if wants_json:
                output.print_json({"ok": False,
                                   "command": _command_name(self, args) or "schemactl",
                                   "violations": [], "error": {"code": "usage",
                                                               "message": exc.format_message()}})
                sys.exit(2)
            raise
        except KeyboardInterrupt:
            output.print_error("interrupted")
            sys.exit(130)


@click.group(cls=SchemactlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@global_options
@click.version_option(package_name="schemactl")
def main() -> None:
    """GitOps schema evolution for PostgreSQL: safe dynamic tables for AI agents.

    Exit codes: 0 success, 1 rejected, 2 bad input, 3 database/environment, 4 conflict.
    """


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@global_options
def init(directory: str) -> None:
    """Scaffold a schema repository in DIRECTORY (new or empty)."""
    from schemactl import api

    emit(api.init(directory, actor=_opts().actor))


@main.command()
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--base", default="HEAD", show_default=True,
              help="Git revision holding the current state.")
@global_options
def validate(files: tuple[str, ...], base: str) -> None:
    """Check definitions against the safety rules, offline (no database).

    Without FILES: the work tree's dynamic_schema/ against git HEAD (deleted files
    count). FILE...: each file is a proposal against HEAD. -: one definition on stdin.
    """
    from schemactl import api

    o = _opts()
    stdin = sys.stdin.buffer if "-" in files else None
    emit(api.validate(o.repo, files=[f for f in files if f != "-"] or None, stdin=stdin,
                      base=base, actor=o.actor))


@main.command()
@global_options
def schema() -> None:
    """Print the JSON Schema of a dynamic table definition.

    Without --json the JSON Schema itself (to save as a file); with --json inside the
    usual ``{ok, command, schema, violations, error}`` object.
    """
    from schemactl import api

    if _opts().json:
        emit(api.schema())
    output.print_json(api.definition_schema())


@main.group()
def db() -> None:
    """Manage the repository's embedded PostgreSQL (data in .schemactl/)."""


@db.command("start")
@global_options
def db_start() -> None:
    """Start the embedded server (initialising it on first use)."""
    from schemactl import api

    emit(api.db_start(_opts().repo))


@db.command("stop")
@global_options
def db_stop() -> None:
    """Stop the embedded server."""
    from schemactl import api

    emit(api.db_stop(_opts().repo))


@db.command("status")
@global_options
def db_status() -> None:
    """Whether the embedded server runs, and its URL (no password)."""
    from schemactl import api

    emit(api.db_status(_opts().repo))


@db.command("url")
@click.option("--show-password", is_flag=True,
              help="Include the password (for an application's configuration; never log it).")
@global_options
def db_url(show_password: bool) -> None:
    """The URL to connect with: --database-url / $DATABASE_URL, else the embedded server.

    Without --show-password the password is left out.
    """
    from schemactl import api

    o = _opts()
    emit(api.db_url(o.repo, database_url=o.database_url, show_password=show_password))


@db.command("env")
@global_options
def db_env() -> None:
    """Print `export DATABASE_URL=...` (with the password) for `eval "$(schemactl db env)"`."""
    from schemactl import api

    o = _opts()
    emit(api.db_env(o.repo, database_url=o.database_url))


@db.command("psql", context_settings={"ignore_unknown_options": True,
                                      "allow_interspersed_args": False})
@global_options
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED, metavar="[PSQL ARGS]...")
def db_psql(psql_args: tuple[str, ...]) -> None:
    """Run psql on the database (the embedded server's unless --database-url/$DATABASE_URL).

    Arguments after the command go to psql (`schemactl db psql -c 'select 1'`); the
    password reaches psql through PGPASSWORD, never its command line. With --json psql's
    output is captured into the JSON object.
    """
    from schemactl import api

    o = _opts()
    args = list(psql_args)
    if "--json" in args:  # psql has no --json: it is ours wherever it stands
        args.remove("--json")
        o.json = True
    result = api.db_psql(o.repo, database_url=o.database_url, args=args, capture=o.json)
    if o.json:
        emit(result)
    sys.exit(result.returncode)


@main.command()
@click.option("--wait", "wait", type=float, is_flag=False, flag_value=0.0, default=None,
              metavar="[SECONDS]",
              help="Wait for another apply to finish (without SECONDS: no limit) "
                   "instead of failing with exit 4.")
@fleet_options
@click.option("--parallel", type=click.IntRange(1, 64), default=4, show_default=True,
              help="With several targets: how many run at once.")
@click.option("--canary", type=click.IntRange(0, None), default=0, show_default=True,
              help="With several targets: the first K run alone first; a failure stops all.")
@click.option("--on-error", "on_error", type=click.Choice(["stop", "continue"]), default="stop",
              show_default=True, help="With several targets: start no more after a failure, "
                                      "or run them all.")
@global_options
def apply(wait: float | None, fleet_targets: tuple[str, ...], fleet_groups: tuple[str, ...],
          fleet_all: bool, parallel: int, canary: int, on_error: str) -> None:
    """Apply pending migrations: lock, drift check, backup, upgrade, verify, audit, commit.

    With --target/--group/--all: every selected target of schemactl.toml, each through the
    whole pipeline, --parallel at a time, one commit for the run (docs/fleet.md).
    """
    from schemactl import api

    o = _opts()
    selection = _selection(fleet_targets, fleet_groups, fleet_all)
    if selection:
        from schemactl.ui import fleet as fleet_ui

        with fleet_ui.live_targets(enabled=not o.json) as on_event:
            result: Any = api.apply_fleet(o.repo, selection, actor=o.actor, parallel=parallel,
                                          canary=canary, on_error=on_error, wait=wait,
                                          on_event=on_event)
        emit(result)
    with output.progress_reporter(enabled=not o.json) as progress:
        result = api.apply(o.repo, database_url=o.database_url, actor=o.actor, wait=wait,
                           progress=progress)
    emit(result)


@main.command()
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True,
              help="How many entries, newest first.")
@fleet_options
@global_options
def history(limit: int, fleet_targets: tuple[str, ...], fleet_groups: tuple[str, ...],
            fleet_all: bool) -> None:
    """Audit entries: who applied what, when, from which commit."""
    from schemactl import api

    o = _opts()
    selection = _selection(fleet_targets, fleet_groups, fleet_all)
    if selection:
        from schemactl.ui import fleet as _fleet_ui  # noqa: F401 - registers renderers

        emit(api.history_fleet(o.repo, selection, limit=limit))
    emit(api.history(o.repo, database_url=o.database_url, limit=limit))


@main.group()
def backups() -> None:
    """Backups taken before each apply (pg_dump custom format + manifest)."""


@backups.command("list")
@global_options
def backups_list() -> None:
    """Complete backups, newest first."""
    from schemactl import api

    emit(api.backups_list(_opts().repo))


@backups.command("verify")
@click.argument("backup_id")
@global_options
def backups_verify(backup_id: str) -> None:
    """Re-hash a backup and read it with pg_restore --list."""
    from schemactl import api

    emit(api.backups_verify(backup_id, _opts().repo))


@backups.command("prune")
@click.option("--keep-last", type=click.IntRange(1, None), default=None,
              help="How many to keep (default: [backup] keep_last in schemactl.toml).")
@click.option("--max-total-mb", type=click.FloatRange(0, None), default=None,
              help="Remove the oldest past this total (default: [backup] max_total_mb).")
@global_options
def backups_prune(keep_last: int | None, max_total_mb: float | None) -> None:
    """Apply retention (never the newest backup of a table whose change is still applied)."""
    from schemactl import api

    emit(api.backups_prune(_opts().repo, keep_last=keep_last, max_total_mb=max_total_mb))


@main.command()
@fleet_options
@click.option("--fail-on", "fail_on", metavar="LIST", default=None,
              help="With several targets: exit non-zero when a target is pending, drift or "
                   "unreachable (comma-separated; default: unreachable).")
@click.option("--parallel", type=click.IntRange(1, 64), default=4, show_default=True,
              help="With several targets: how many are asked at once.")
@global_options
def status(fleet_targets: tuple[str, ...], fleet_groups: tuple[str, ...], fleet_all: bool,
           fail_on: str | None, parallel: int) -> None:
    """Git head, database revision, pending migrations, and database health."""
    from schemactl import api

    o = _opts()
    selection = _selection(fleet_targets, fleet_groups, fleet_all)
    if selection:
        from schemactl.ui import fleet as _fleet_ui  # noqa: F401 - registers renderers

        conditions = tuple(c.strip() for c in (fail_on or "unreachable").split(",") if c.strip())
        emit(api.status_fleet(o.repo, selection, fail_on=conditions, parallel=parallel))
    if fail_on is not None:
        raise click.UsageError("--fail-on needs --target, --group or --all")
    emit(api.status(o.repo, database_url=o.database_url))


@main.command()
@click.argument("file", metavar="FILE|-", required=False)
@click.option("--dry-run", is_flag=True, help="Show the plan and its SQL; write nothing.")
@click.option("--replace", "replace_head", is_flag=True,
              help="Replace the head migration, which no database has applied, by the one "
                   "this definition makes on its parent.")
@click.option("--revert", "revert", metavar="REV", default=None,
              help="Remove the head migration REV, which no database has applied, and put "
                   "its table's definition back (no FILE).")
@click.option("--add-base-fields", is_flag=True,
              help="Insert the configured base fields the definition lacks, at its start.")
@click.option("--wait", "wait", type=float, default=60.0, show_default=True, metavar="SECONDS",
              help="How long to wait for another proposal into this repository to finish.")
@global_options
def propose(file: str | None, dry_run: bool, add_base_fields: bool, wait: float,
            replace_head: bool, revert: str | None) -> None:
    """Validate a definition, write it with its migration, and commit the proposal.

    --replace and --revert are the way out of a head migration that no database has
    applied (one that can never apply, or one you want back): the audit file, journals
    and every configured database are asked first; any doubt is exit 4.
    """
    from schemactl import api

    o = _opts()
    if file is None and revert is None:
        raise click.UsageError("propose needs FILE (or - for standard input), or --revert REV")
    if not o.json:
        what = f"--revert {revert}" if revert is not None else file
        output.err().print(f"[dim]proposing {what}{' (dry run)' if dry_run else ''}...[/]")
    emit(api.propose(o.repo, file=file, dry_run=dry_run, actor=o.actor,
                     add_base_fields=add_base_fields, wait=wait, replace=replace_head,
                     revert=revert, database_url=o.database_url))


@main.command()
@fleet_options
@global_options
def plan(fleet_targets: tuple[str, ...], fleet_groups: tuple[str, ...], fleet_all: bool) -> None:
    """The SQL that `apply` would run against this database (or each selected target)."""
    from schemactl import api

    o = _opts()
    selection = _selection(fleet_targets, fleet_groups, fleet_all)
    if selection:
        from schemactl.ui import fleet as _fleet_ui  # noqa: F401 - registers renderers

        emit(api.plan_fleet(o.repo, selection))
    emit(api.plan(o.repo, database_url=o.database_url))


@main.command()
@click.argument("tables", nargs=-1, metavar="[TABLE]...")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid",
              show_default=True, help="Mermaid erDiagram, or Graphviz DOT (dot -Tsvg).")
@global_options
def diagram(tables: tuple[str, ...], fmt: str) -> None:
    """The tables with their columns, keys and foreign keys as a diagram (no database).

    Core and dynamic tables of the work tree; TABLE... draws only those (and, by name,
    the tables they are linked to). `schemactl diagram > schema.mmd`, or
    `schemactl diagram --format dot | dot -Tsvg > schema.svg`.
    """
    from schemactl import api

    emit(api.diagram(_opts().repo, tables=list(tables), fmt=fmt))


@main.command()
@click.option("--http", "http", metavar="HOST:PORT", default=None,
              help="Serve over MCP Streamable HTTP at http://HOST:PORT/mcp instead of stdio "
                   "(loopback unless $SCHEMACTL_MCP_TOKEN is set; :0 picks a free port).")
@global_options
def mcp(http: str | None) -> None:
    """Serve the agent tools over MCP on stdin/stdout (the caller is an agent).

    The actor is agent:<name>: --actor, else $SCHEMACTL_ACTOR when it starts with
    agent:, else the MCP client's name. Wire it into a client with
    {"command": "schemactl", "args": ["mcp", "--repo", "/path/to/repo"]}.

    With --http the same tools are served over the Streamable HTTP transport; a bearer
    token in $SCHEMACTL_MCP_TOKEN is required for any address but loopback, and is
    checked whenever it is set.
    """
    o = _opts()
    if http is not None:
        from schemactl.agents import mcp_http

        mcp_http.run(o.repo, o.database_url, o.actor, http)
        return
    from schemactl.agents import mcp_server

    mcp_server.run(o.repo, o.database_url, o.actor)


@main.command()
@global_options
def tools() -> None:
    """The agent tools as JSON Schema (draft 2020-12) for function calling."""
    from schemactl.agents import agent_tools

    emit(agent_tools.tools_result())


@main.command()
@click.option("--to", "to", metavar="REV", default=None,
              help="Undo every revision after REV, one at a time (each fully recorded).")
@click.option("--restore-backup", "restore_backup", metavar="ID", default=None,
              help="Restore the pre-change dump ID of an apply instead of downgrading.")
@click.option("--force", is_flag=True,
              help="With --restore-backup: restore even if rows were written since "
                   "(the current tables move to the archive; a fresh backup comes first).")
@click.option("--wait", "wait", type=float, is_flag=False, flag_value=0.0, default=None,
              metavar="[SECONDS]",
              help="Wait for another apply or rollback to finish instead of exit 4.")
@fleet_options
@click.option("--parallel", type=click.IntRange(1, 64), default=4, show_default=True,
              help="With --to and several targets: how many run at once.")
@click.option("--canary", type=click.IntRange(0, None), default=0, show_default=True,
              help="With --to and several targets: the first K run alone first; a failure "
                   "stops all.")
@click.option("--on-error", "on_error", type=click.Choice(["stop", "continue"]), default="stop",
              show_default=True, help="With --to and several targets: start no more after a "
                                      "failure, or run them all.")
@global_options
def rollback(to: str | None, restore_backup: str | None, force: bool,
             wait: float | None, fleet_targets: tuple[str, ...], fleet_groups: tuple[str, ...],
             fleet_all: bool, parallel: int, canary: int, on_error: str) -> None:
    """Undo the last applied dynamic migration without losing data (archive, never drop).

    With --to REV and --target/--group/--all: every selected target goes back to REV, each
    through the whole rollback pipeline; the undone migrations leave git only when no
    target of schemactl.toml still has them (docs/fleet.md, Rollback).
    """
    from schemactl import api

    o = _opts()
    selection = _selection(fleet_targets, fleet_groups, fleet_all)
    if selection and to is not None and restore_backup is None and not force:
        from schemactl.ui import fleet as fleet_ui

        with fleet_ui.live_targets(enabled=not o.json) as on_event:
            fleet_result = api.rollback_fleet(o.repo, selection, actor=o.actor, to=to,
                                              parallel=parallel, canary=canary,
                                              on_error=on_error, wait=wait, on_event=on_event)
        emit(fleet_result)
    url = api.single_target_url(o.repo, selection, "rollback") if selection else o.database_url
    with output.progress_reporter(enabled=not o.json) as progress:
        result = api.rollback(o.repo, database_url=url, actor=o.actor, to=to,
                              restore_backup=restore_backup, force=force, wait=wait,
                              progress=progress)
    emit(result)


@main.group("archive")
def archive_group() -> None:
    """What rollbacks moved into the schemactl_archive schema."""


@archive_group.command("list")
@global_options
def archive_list() -> None:
    """Archived tables and columns: source, revision, rows, time."""
    from schemactl import api

    o = _opts()
    emit(api.archive_list(o.repo, database_url=o.database_url))


@main.command()
@click.option("--base", "base", required=True, metavar="REF",
              help="The git revision the pull request targets (branch, tag or sha).")
@click.option("--format", "fmt", type=click.Choice(["human", "json", "sarif", "markdown",
                                                   "github", "junit"]), default="human",
              show_default=True, help="Output format (--json is --format json).")
@click.option("--ephemeral", is_flag=True,
              help="Run the round trip on a fresh embedded database, removed afterwards.")
@global_options
def check(base: str, fmt: str, ephemeral: bool) -> None:
    """The CI check of a schema pull request: the change from merge-base(REF, HEAD) to HEAD.

    Safety rules on every changed definition, each definition change matched by a
    migration and no migration without one (SC602, SC604), merged migrations unchanged
    (SC601), one head (SC603). With --database-url or --ephemeral: upgrade, downgrade and
    upgrade again. Exit 0 pass, 1 violations, 2 bad input.
    """
    from schemactl import api

    o = _opts()
    emit(api.check(o.repo, base=base, database_url=o.database_url, ephemeral=ephemeral,
                   actor=o.actor), "json" if o.json else fmt)


if __name__ == "__main__":
    main()
