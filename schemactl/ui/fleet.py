"""Human output of fleet runs: one live line per target, then a summary table.

`live_targets` draws on stderr while the targets advance (rich, one line per target);
the renderers of the fleet results (``targets`` in apply, status, plan and history) print
the tables on stdout. Single-database results keep their own renderers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from schemactl.ui.output import _list_table, err, out, renderer, renderer_of

_COLOUR = {"applied": "green", "rolled_back": "green", "up_to_date": "green", "failed": "red",
           "drift": "red", "unreachable": "red", "skipped": "yellow"}


class live_targets:  # noqa: N801 - used as a context manager, reads as a function
    """An ``on_event(target, state)`` callback drawing one line per target on stderr."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and err().is_terminal
        self._live: Any = None
        self._rows: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Callable[[str, str], None] | None:
        if not self.enabled:
            return None
        from rich.live import Live

        self._live = Live(self._render(), console=err(), transient=True,
                          refresh_per_second=8, get_renderable=self._render)
        self._live.start()
        return self._event

    def _event(self, name: str, state: str) -> None:
        with self._lock:
            started = self._rows.get(name, ("", time.monotonic()))[1]
            if state == "queued":
                started = time.monotonic()
            self._rows[name] = (state, started)

    def _render(self) -> Any:
        from rich.markup import escape
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        with self._lock:
            rows = list(self._rows.items())
        for name, (state, started) in rows:
            colour = _COLOUR.get(state, "cyan")
            final = state in _COLOUR
            mark = {"green": "✓", "red": "✗", "yellow": "-"}.get(colour, "…") if final else "…"
            elapsed = "" if state == "queued" or final else f"{time.monotonic() - started:.1f}s"
            table.add_row(f"[{colour}]{mark}[/]", escape(name), f"[{colour}]{escape(state)}[/]",
                          elapsed)
        return table

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()


def _fleet_or(command: str, fn: Callable[[dict[str, Any]], None]) -> None:
    """Register ``fn`` for results of ``command`` that carry ``targets``; others as before."""
    single = renderer_of(command)

    @renderer(command)
    def _either(data: dict[str, Any]) -> None:
        (fn if "targets" in data else single)(data)


def _target_cells(t: dict[str, Any]) -> tuple[str, str, str]:
    """A target row's revision change, coloured status and error message."""
    colour = _COLOUR.get(t["status"], "white")
    before, after = t.get("revision_before") or "-", t.get("revision") or "-"
    change = after if before == after else f"{before} → {after}"
    error = (t.get("error") or {}).get("message", "") if t["status"] != "skipped" else ""
    return change, f"[{colour}]{t['status']}[/]", str(error)


def _summary_line(data: dict[str, Any], kinds: tuple[str, ...]) -> None:
    s = data.get("summary") or {}
    counts = ", ".join(f"{s[k]} {k.replace('_', ' ')}" for k in kinds if s.get(k))
    out().print(f"{s.get('total', 0)} target(s): {counts or 'none'}"
                + (f"; commit {data['commit'][:10]}" if data.get("commit") else ""))


def _apply(data: dict[str, Any]) -> None:
    rows = []
    for t in data.get("targets") or []:
        change, status, error = _target_cells(t)
        rows.append((t["name"], change, status, f"{t.get('seconds') or 0:.1f}s", error))
    _list_table(("target", "before → after", "status", "time", "error"), rows)
    _summary_line(data, ("applied", "up_to_date", "failed", "drift", "unreachable", "skipped"))


def _rollback(data: dict[str, Any]) -> None:
    from rich.markup import escape

    rows = []
    for t in data.get("targets") or []:
        change, status, error = _target_cells(t)
        archived = ", ".join(f"{a.get('from')} → {a.get('to')}" for a in t.get("archived") or [])
        rows.append((t["name"], change, status, archived, f"{t.get('seconds') or 0:.1f}s",
                     error))
    _list_table(("target", "before → after", "status", "archived", "time", "error"), rows)
    _summary_line(data, ("rolled_back", "up_to_date", "failed", "drift", "unreachable",
                         "skipped"))
    if data.get("removed"):
        out().print(f"{', '.join(data['removed'])} removed from git: no target has "
                    "them applied")
    elif data.get("kept"):
        out().print(escape(f"{', '.join(data['kept'])} kept in git: "
                           f"{'; '.join(data.get('kept_for') or [])} still "
                           "hold(s) them (docs/fleet.md, Rollback)"))


def _status(data: dict[str, Any]) -> None:
    out().print(f"git head {(data.get('git_head') or '-')[:10]}, "
                f"head revision {data.get('head_revision') or '-'}")
    rows = []
    for t in data.get("targets") or []:
        reach = "[green]yes[/]" if t.get("reachable") else "[red]no[/]"
        pending = len(t.get("pending") or [])
        drift = len(t.get("drift") or [])
        note = t.get("interrupted") or ("" if t.get("reachable") else t.get("message", ""))
        rows.append((t["name"], reach, str(t.get("db_revision") or "-"),
                     f"[yellow]{pending}[/]" if pending else "0",
                     f"[red]{drift}[/]" if drift else "0", str(note or "")))
    _list_table(("target", "reachable", "db revision", "pending", "drift", "note"), rows)


def _plan(data: dict[str, Any]) -> None:
    from rich.markup import escape

    for t in data.get("targets") or []:
        if not t.get("ok"):
            out().print(f"[red]✗[/] [bold]{escape(t['name'])}[/]: "
                        f"{escape(str((t.get('error') or {}).get('message', '')))}")
        elif not t.get("pending"):
            out().print(f"[green]✓[/] [bold]{escape(t['name'])}[/]: up to date at "
                        f"{t.get('db_revision') or '-'}")
        else:
            out().print(f"[yellow]…[/] [bold]{escape(t['name'])}[/]: "
                        f"{', '.join(t['pending'])} pending")
            out().print(escape(t.get("sql") or ""))


def _history(data: dict[str, Any]) -> None:
    from rich.markup import escape

    for w in data.get("warnings") or []:
        err().print(f"[yellow]warning:[/] {escape(str(w))}")
    rows = []
    for e in data.get("entries") or []:
        colour = "green" if e.get("status") == "success" else "red"
        rows.append((str(e.get("created_at") or "-").replace("T", " ").removesuffix("Z"),
                     str(e.get("target")), str(e.get("action") or ""),
                     str(e.get("revision") or "-"), f"[{colour}]{e.get('status')}[/]",
                     str(e.get("actor") or "")))
    if not rows:
        out().print("no audit entries")
        return
    _list_table(("when", "target", "action", "revision", "status", "actor"), rows)


_fleet_or("apply", _apply)
_fleet_or("rollback", _rollback)
_fleet_or("status", _status)
_fleet_or("plan", _plan)
_fleet_or("history", _history)
