"""Result objects returned by the engine API.

Each command returns a frozen dataclass; `to_json()` gives the object the CLI
prints with `--json` and the MCP server returns (DESIGN.md, JSON output):
`{"ok", "command", ...result..., "violations", "error"}`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "to_json"):
            return value.to_json()
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Result:
    """Base of every command result."""

    command: str = field(default="", kw_only=True)
    ok: bool = field(default=True, kw_only=True)
    violations: list[Any] = field(default_factory=list, kw_only=True)
    # Process exit code when ``ok`` is false (not part of the JSON object).
    exit_code: int = field(default=1, kw_only=True, repr=False)
    # The error of a result that is not ok but still carries data (e.g. status, db down).
    error: dict[str, Any] | None = field(default=None, kw_only=True)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "command": self.command}
        for f in dataclasses.fields(self):
            if f.name in ("ok", "command", "violations", "exit_code", "error"):
                continue
            out[f.name] = _plain(getattr(self, f.name))
        out["violations"] = _plain(self.violations)
        out["error"] = self.error
        return out


def error_json(command: str, error: Any, violations: list[Any] | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON object for a failed command (an expected SchemactlError)."""
    out: dict[str, Any] = {"ok": False, "command": command}
    out.update(extra or {})
    out["violations"] = _plain(violations or [])
    out["error"] = error.to_json()
    return out
