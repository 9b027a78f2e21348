"""Rendering results for people (rich, coloured) and for machines (one JSON object).

Human output goes to stdout, errors and progress to stderr; with `--json`
exactly one object is printed on stdout and nothing else.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

Renderer = Callable[[dict[str, Any]], None]
_RENDERERS: dict[str, Renderer] = {}


def renderer(command: str) -> Callable[[Renderer], Renderer]:
    """Register the human renderer of one command's JSON result."""

    def register(fn: Renderer) -> Renderer:
        _RENDERERS[command] = fn
        return fn

    return register


def print_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def print_human(data: dict[str, Any]) -> None:
    fn = _RENDERERS.get(data.get("command", ""), _generic)
    fn(data)
    if data.get("violations") and fn is _generic:
        violations_table(data["violations"])


def print_error(message: str, hint: str = "") -> None:
    err().print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    if hint:
        err().print(f"[dim]hint:[/] {hint}")


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
    from rich.table import Table

    table = Table(show_lines=False, header_style="bold")
    for col in ("rule", "severity", "where", "message", "hint"):
        table.add_column(col, overflow="fold")
    for v in violations:
        colour = "red" if v.get("severity") == "error" else "yellow"
        where = ".".join(x for x in (v.get("table"), v.get("column")) if x) or "-"
        table.add_row(f"{v.get('rule')} {v.get('name', '')}", f"[{colour}]{v.get('severity')}[/]",
                      where, v.get("message", ""), v.get("hint", ""))
    out().print(table)


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
        out().print(f"  backup {backup['id']} ({backup.get('path')})")
    if data.get("commit"):
        out().print(f"  commit {data['commit'][:10]}")
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
        out().print(f"[yellow]drift:[/] {d}")
    if data.get("last_backup"):
        out().print(f"last backup:  {data['last_backup'].get('id')}")
    if data.get("message"):
        out().print(f"state:        {data['message']}")
