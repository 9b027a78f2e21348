"""A rule finding: what every rule yields and every command reports (DESIGN.md, JSON)."""

from __future__ import annotations

from dataclasses import dataclass

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class Violation:
    """One rule finding, in the JSON shape of DESIGN.md."""

    rule: str
    name: str
    severity: str
    message: str
    hint: str
    table: str | None = None
    column: str | None = None
    source: str | None = None
    line: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "name": self.name, "severity": self.severity,
                "table": self.table, "column": self.column, "message": self.message,
                "hint": self.hint, "source": self.source, "line": self.line}
