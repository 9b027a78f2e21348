"""Rendering results for people (rich, coloured) and for machines (one JSON object).

Human output goes to stdout, errors and progress to stderr; with `--json`
exactly one object is printed on stdout and nothing else.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from functools import cache

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any, TypeAlias

    from rich.console import Console


@cache
def out() -> Console:
    """Console for results (stdout); rich is imported only for human output."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


@cache
def err() -> Console:
    """Console for errors and progress (stderr)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)

Renderer: TypeAlias = "Callable[[dict[str, Any]], None]"
_RENDERERS: dict[str, Renderer] = {}


def renderer(command: str) -> Callable[[Renderer], Renderer]:
    """Register the human renderer of one command's JSON result."""

    def register(fn: Renderer) -> Renderer:
        _RENDERERS[command] = fn
        return fn

    return register


def renderer_of(command: str) -> Renderer:
    """The human renderer registered for ``command`` (the generic one when none is)."""
    return _RENDERERS.get(command, _generic)


def print_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def print_human(data: dict[str, Any]) -> None:
    fn = _RENDERERS.get(data.get("command", ""), _generic)
    fn(data)
    if data.get("violations") and fn is _generic:
        violations_table(data["violations"])


def print_error(message: str, hint: str = "") -> None:
    from rich.markup import escape

    # Messages quote user input (file names, YAML, server errors): printed as text.
    err().print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    if hint:
        err().print(f"[dim]hint:[/] {escape(hint)}")


def report_error(command: str, exc: Any, as_json: bool) -> None:
    """An expected error (a `SchemactlError`): its JSON object, or its violations and one line."""
    if as_json:
        from schemactl.results import error_json

        print_json(error_json(command, exc, getattr(exc, "violations", None),
                              getattr(exc, "result", None)))
        return
    if getattr(exc, "violations", None):
        violations_table([v.to_json() if hasattr(v, "to_json") else v for v in exc.violations])
    print_error(exc.message, exc.hint)


def _generic(data: dict[str, Any]) -> None:
    for key, value in data.items():
        if key in ("ok", "command", "violations", "error") or value in (None, [], {}):
            continue
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        out().print(f"[bold]{key.replace('_', ' ')}:[/] {value}")


def violations_table(violations: list[dict[str, Any]]) -> None:
    if not violations:
        return
    from rich.markup import escape
    from rich.table import Table

    if out().width < 140:
        # A five-column table wraps every cell on a narrow terminal: one block each instead.
        for v in violations:
            colour = "red" if v.get("severity") == "error" else "yellow"
            where = ".".join(x for x in (v.get("table"), v.get("column")) if x) or "-"
            out().print(f"[{colour}]{'✗' if colour == 'red' else '!'}[/] "
                        f"[bold]{escape(str(v.get('rule')))}[/] "
                        f"{escape(str(v.get('name', '')))} [{colour}]"
                        f"{escape(str(v.get('severity')))}[/]  {escape(where)}")
            out().print(f"  {escape(str(v.get('message', '')))}")
            if v.get("hint"):
                out().print(f"  [dim]hint:[/] {escape(str(v.get('hint')))}")
        return
    table = Table(show_lines=False, header_style="bold")
    for col in ("rule", "severity", "where", "message", "hint"):
        table.add_column(col, overflow="fold")
    for v in violations:
        colour = "red" if v.get("severity") == "error" else "yellow"
        where = ".".join(x for x in (v.get("table"), v.get("column")) if x) or "-"
        # Messages quote user input (names, types like text[], regexes): never markup.
        table.add_row(escape(f"{v.get('rule')} {v.get('name', '')}"),
                      f"[{colour}]{escape(str(v.get('severity')))}[/]", escape(where),
                      escape(str(v.get("message", ""))), escape(str(v.get("hint", ""))))
    out().print(table)


def _list_table(columns: tuple[str, ...], rows: Sequence[tuple[str, ...]],
                narrow_drop: tuple[str, ...] = ()) -> None:
    """A plain table of records; on a narrow terminal the ``narrow_drop`` columns go
    (they are in --json) so the rest stays one line per record."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    keep = [i for i, c in enumerate(columns)
            if not (out().width < 120 and c in narrow_drop)]
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    short = {"when", "created", "archived at", "status", "commit", "size", "rows", "kind",
             "action", "pg_dump"}
    for i in keep:
        table.add_column(columns[i], overflow="fold", no_wrap=columns[i] in short)
    for row in rows:
        table.add_row(*[escape(row[i]) if not row[i].startswith("[") else row[i]
                        for i in keep])
    out().print(table)


def _when(stamp: object) -> str:
    """ISO 8601 UTC as `YYYY-MM-DD HH:MM:SS` (readable, sortable)."""
    return str(stamp or "-").replace("T", " ").removesuffix("Z")


# -- validate ------------------------------------------------------------------------


@renderer("validate")
def _validate(data: dict[str, Any]) -> None:
    violations = data.get("violations") or []
    tables = data.get("tables") or []
    checked = f"{len(tables)} table(s) checked, {len(data.get('rules_run') or [])} rules"
    if not violations and not data.get("waived"):
        # The common, clean case stays off rich: validate runs in loops and hooks.
        tick = "\x1b[32m✓\x1b[0m" if sys.stdout.isatty() else "✓"
        sys.stdout.write(f"{tick} no errors; {checked}\n")
        return
    from rich.markup import escape

    violations_table(violations)
    for w in data.get("waived") or []:
        where = ".".join(x for x in (w.get("table"), w.get("column")) if x) or "-"
        reason = escape(str(w.get("reason", "")))
        out().print(f"[dim]waived[/] {w.get('rule')} {escape(where)}: {reason}")
    errors = sum(1 for v in violations if v.get("severity") == "error")
    warnings = len(violations) - errors
    if errors:
        out().print(f"[red]✗[/] {errors} error(s), {warnings} warning(s); {checked}")
    else:
        extra = f", {warnings} warning(s)" if warnings else ""
        out().print(f"[green]✓[/] no errors{extra}; {checked}")


# -- renderers of the foundation's commands ------------------------------------


@renderer("init")
def _init(data: dict[str, Any]) -> None:
    out().print(f"[green]✓[/] schema repository created at [bold]{data['path']}[/]")
    out().print(f"  {len(data['files'])} files, first commit {data['commit'][:10]}")
    out().print("  next: [bold]cd[/] into it and run [bold]schemactl apply[/] "
              "to create the core schema")


def _db(data: dict[str, Any]) -> None:
    if data["running"]:
        out().print(f"[green]●[/] embedded PostgreSQL {data.get('version') or ''} running at "
                  f"[bold]{data['url']}[/]")
    else:
        out().print(f"[dim]○[/] embedded PostgreSQL not running (data in {data['data_dir']})")


for _name in ("db start", "db stop", "db status"):
    renderer(_name)(_db)


@renderer("apply")
def _apply(data: dict[str, Any]) -> None:
    if not data.get("applied"):
        out().print(f"[green]✓[/] nothing to apply: the database is at "
                  f"[bold]{data.get('revision')}[/]")
        return
    for rev in data["applied"]:
        out().print(f"[green]✓[/] applied [bold]{rev}[/]")
    backup = data.get("backup")
    if backup:
        out().print(f"  backup {backup['id']} ({backup.get('path')}), scope {_scope(backup)}")
    if data.get("commit"):
        out().print(f"  commit {data['commit'][:10]}")
    if data.get("recovered"):
        out().print(f"  [yellow]{data['recovered']}[/]")
    if data.get("unmanaged"):
        from rich.markup import escape

        out().print(f"  [yellow]left untouched[/] (no definition names them): "
                    f"{escape(', '.join(data['unmanaged']))}")
    out().print(f"  database {data.get('database')} is now at [bold]{data.get('revision')}[/]")


@renderer("status")
def _status(data: dict[str, Any]) -> None:
    ok = data.get("database_ok")
    out().print(f"git head:     {(data.get('git_head') or '-')[:10]}")
    out().print(f"head rev:     {data.get('head_revision') or '-'}")
    out().print(f"database:     {data.get('database')} "
              + ("[green](answers)[/]" if ok else "[red](does not answer)[/]"))
    out().print(f"db revision:  {data.get('db_revision') or '-'}")
    pending = data.get("pending") or []
    out().print(f"pending:      {', '.join(pending) if pending else 'none'}")
    for d in data.get("drift") or []:
        out().print(f"[yellow]drift:[/] {d.get('message', d) if isinstance(d, dict) else d}")
    if data.get("last_backup"):
        out().print(f"last backup:  {data['last_backup'].get('id')}")
    if data.get("message"):
        out().print(f"state:        {data['message']}")


# -- apply pipeline: progress, history, backups ----------------------------------------


class progress_reporter:  # noqa: N801 - used as a context manager, reads as a function
    """A `(step, done, total)` callback drawing progress on stderr (None when disabled)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and err().is_terminal
        self._progress: Any = None
        self._task: Any = None
        self._step = ""

    def __enter__(self) -> Callable[[str, int, int | None], None] | None:
        if not self.enabled:
            return None
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                  BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                                  console=err(), transient=True)
        self._progress.start()
        self._task = self._progress.add_task("starting", total=None)
        return self._update

    def _update(self, step: str, done: int, total: int | None) -> None:
        if step != self._step:
            self._step = step
            self._progress.update(self._task, description=step, completed=0, total=None)
        if done or total:
            self._progress.update(self._task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


@renderer("history")
def _history(data: dict[str, Any]) -> None:
    if data.get("warning"):
        from rich.markup import escape

        err().print(f"[yellow]warning:[/] {escape(data['warning'])}")
    entries = data.get("entries") or []
    if not entries:
        out().print("no audit entries")
        return
    rows = []
    for e in entries:
        colour = "green" if e.get("status") == "success" else "red"
        rows.append((_when(e.get("created_at")), str(e.get("action") or ""),
                     str(e.get("actor") or ""), str(e.get("revision") or "-"),
                     f"[{colour}]{e.get('status')}[/]", (e.get("git_commit") or "-")[:8],
                     str(e.get("backup_id") or "-")))
    _list_table(("when", "action", "actor", "revision", "status", "commit", "backup"), rows,
                narrow_drop=("backup",))
    from rich.markup import escape

    for e in entries:  # why a run failed is what the reader of a history looks for
        if e.get("status") != "success" and e.get("error"):
            out().print(f"[red]{e.get('created_at')} {e.get('action')} failed:[/] "
                        f"{escape(str(e['error']))}")


@renderer("backups list")
def _backups_list(data: dict[str, Any]) -> None:
    items = data.get("backups") or []
    if not items:
        out().print("no backups")
        return
    rows = [(str(b["id"]), _when(b.get("created_at")), str(b.get("revision_before") or "-"),
             _scope(b), _size(int(b.get("size") or 0)), str(b.get("pg_dump_version", "")),
             str(b.get("database", ""))) for b in items]
    _list_table(("id", "created", "revision before", "scope", "size", "pg_dump", "database"),
                rows, narrow_drop=("created", "pg_dump", "database"))


def _scope(b: dict[str, Any]) -> str:
    """``full``, or ``touched:`` and the tables whose data a scoped backup holds."""
    if b.get("scope") != "touched":
        return "full"
    tables = [str(t).split(".", 1)[-1] for t in b.get("tables") or []]
    shown = ", ".join(tables[:3]) + (f" +{len(tables) - 3}" if len(tables) > 3 else "")
    return f"touched: {shown or 'no data'}"


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@renderer("backups verify")
def _backups_verify(data: dict[str, Any]) -> None:
    v = data.get("verify") or {}
    if v.get("ok"):
        out().print(f"[green]✓[/] backup {v.get('id')}: sha256 matches, pg_restore reads "
                    f"{v.get('entries')} entries, table data of {v.get('data_tables')} "
                    f"table(s) as its scope ({v.get('scope')}) says")
    else:
        for problem in v.get("problems") or []:
            err().print(f"[red]✗[/] {problem}")


@renderer("backups prune")
def _backups_prune(data: dict[str, Any]) -> None:
    removed = data.get("removed") or []
    out().print(f"removed {len(removed)} backup(s), kept {len(data.get('kept') or [])}")
    for bid in removed:
        out().print(f"  - {bid}")
    for bid, tables in (data.get("protected") or {}).items():
        out().print(f"  kept {bid}: newest backup of {', '.join(tables)}")
    if data.get("kept_over_limit"):
        err().print("[yellow]warning:[/] still over max_total_mb: what is left is needed")


# -- propose / plan ---------------------------------------------------------------------


def sql_view(sql: str, title: str = "SQL") -> None:
    """Show SQL highlighted (rich Syntax) under a title rule; long lines wrap."""
    from rich.syntax import Syntax

    out().rule(f"[bold]{title}[/]", align="left")
    out().print(Syntax(sql.strip() or "-- nothing", "sql", theme="ansi_dark",
                       background_color="default"))
    out().rule()


_CHANGE_STYLE = {"create_table": ("+", "green"), "add_column": ("+", "green"),
                 "add_index": ("+", "green"), "add_foreign_key": ("+", "green"),
                 "add_unique": ("+", "green"), "deprecate_table": ("~", "yellow"),
                 "deprecate_column": ("~", "yellow")}


@renderer("propose")
def _propose(data: dict[str, Any]) -> None:
    if not data.get("ok"):
        violations_table(data.get("violations") or [])
        err().print(f"[bold red]rejected:[/] {data.get('message', '')}")
        return
    mig = data.get("migration")
    if not mig:
        out().print(f"[green]✓[/] {data.get('message') or 'nothing to propose'}")
        return
    verb = "would add" if data.get("dry_run") else "added"
    out().print(f"[bold]{data.get('message')}[/]")
    for ch in data.get("changes") or []:
        mark, colour = _CHANGE_STYLE.get(ch["action"], ("~", "yellow"))
        what = ch.get("column") or ch.get("index") or ch["table"]
        detail = f" [dim]{ch['detail']}[/]" if ch.get("detail") else ""
        out().print(f"  [{colour}]{mark} {ch['action'].replace('_', ' ')} {what}[/]{detail}")
    from rich.markup import escape

    for line in data.get("online_steps") or []:
        out().print(f"  [cyan]{escape(line)}[/]")
    sql_view(mig.get("sql") or "", f"SQL of {mig['revision']}")
    for a in mig.get("archives") or []:
        out().print(f"  [dim]downgrade archives {a['from']} → {a['to']}[/]")
    out().print(f"[green]✓[/] {verb} migration [bold]{mig['revision']}[/] ({mig['path']})")
    if data.get("commit"):
        out().print(f"  commit {data['commit'][:10]}")
    if data.get("violations"):
        violations_table(data["violations"])


@renderer("plan")
def _plan(data: dict[str, Any]) -> None:
    pending = data.get("pending") or []
    if not pending:
        out().print(f"[green]✓[/] nothing pending: {data.get('database')} is at "
                    f"[bold]{data.get('db_revision')}[/]")
        return
    out().print(f"{len(pending)} migration(s) pending on {data.get('database')}: "
                f"[bold]{', '.join(pending)}[/]")
    from rich.markup import escape

    for line in data.get("steps") or []:
        out().print(f"  [cyan]{escape(line)}[/]")
    sql_view(data.get("sql") or "", "SQL that apply would run")
    for w in data.get("warnings") or []:
        err().print(f"[yellow]warning:[/] {w}")


# -- tools ---------------------------------------------------------------------------------


@renderer("tools")
def _tools(data: dict[str, Any]) -> None:
    for tool in data.get("tools") or []:
        params = ", ".join(tool["input_schema"].get("properties", {})) or "no arguments"
        out().print(f"[bold]{tool['name']}[/] [dim]({params})[/]")
        out().print(f"  {tool['description']}")


# -- rollback / archive -------------------------------------------------------------------


@renderer("rollback")
def _rollback(data: dict[str, Any]) -> None:
    from rich.markup import escape

    if not data.get("rolled_back"):
        out().print(f"[green]✓[/] {escape(data.get('message') or 'nothing to roll back')}")
        return
    if data.get("restored_backup"):
        out().print(f"[green]✓[/] restored backup [bold]{data['restored_backup']}[/]"
                    + (" [yellow](forced)[/]" if data.get("forced") else ""))
        restored = data.get("restored_tables") or []
        out().print("  " + (f"data of {escape(', '.join(restored))} restored; every other "
                            "table left as it was" if restored else
                            "no table data needed (the undone revisions only made tables)"))
    steps = data.get("steps") or [data]
    for s in steps:
        revs = [s["rolled_back"]] if s is not data else (data.get("revisions") or [])
        out().print(f"[green]✓[/] rolled back [bold]{', '.join(revs)}[/]")
        for a in s.get("archived") or []:
            out().print(f"  [cyan]archived[/] {escape(a.get('from') or '?')} → "
                        f"[bold]{escape(a['to'])}[/]")
        if s.get("backup"):
            out().print(f"  backup {s['backup']['id']} ({s['backup'].get('path')}), "
                        f"scope {_scope(s['backup'])}")
        if s.get("commit"):
            out().print(f"  commit {s['commit'][:10]}")
    if not data.get("archived"):
        out().print("  [dim]nothing needed archiving (indexes and constraints are simply "
                    "removed)[/]")
    out().print(f"  database {data.get('database')} is now at [bold]{data.get('revision')}[/]")


@renderer("archive list")
def _archive_list(data: dict[str, Any]) -> None:
    entries = data.get("entries") or []
    if not entries:
        out().print("the archive is empty")
        return
    rows = [(str(e.get("archive_table")), str(e.get("kind")), str(e.get("source") or "-"),
             str(e.get("revision") or "-"), str(e.get("rows")), _when(e.get("archived_at")))
            for e in entries]
    _list_table(("archive table", "kind", "from", "revision", "rows", "archived at"), rows,
                narrow_drop=("revision",))


# -- check ---------------------------------------------------------------------------------


@renderer("check")
def _check(data: dict[str, Any]) -> None:
    from rich.markup import escape

    violations = data.get("violations") or []
    tables = data.get("changed_tables") or []
    added = data.get("migrations_added") or []
    out().print(f"[bold]base[/] {escape(str(data.get('base')))} "
                f"(merge base {str(data.get('merge_base'))[:10]}) → "
                f"[bold]head[/] {str(data.get('head'))[:10]}: {len(tables)} table(s) changed, "
                f"{len(added)} migration(s) added")
    violations_table(violations)
    for w in data.get("waived") or []:
        out().print(f"[dim]waived[/] {w.get('rule')} {escape(str(w.get('reason', '')))}")
    rt = data.get("round_trip")
    if rt is not None:
        if rt.get("ok"):
            out().print("[green]✓[/] round trip: upgrade → downgrade → upgrade")
        else:
            failed = rt.get("failed") or {}
            out().print(f"[red]✗[/] round trip failed at {escape(str(failed.get('step')))}: "
                        f"{escape(str(failed.get('message')))}")
            if failed.get("sql"):
                sql_view(str(failed["sql"]), "failed SQL")
    errors = sum(1 for v in violations if v.get("severity") == "error")
    if data.get("ok"):
        warnings = f", {len(violations)} warning(s)" if violations else ""
        out().print(f"[green]✓[/] check passed{warnings}")
    else:
        out().print(f"[red]✗[/] check failed: {errors} error(s), "
                    f"{len(violations) - errors} warning(s)")
