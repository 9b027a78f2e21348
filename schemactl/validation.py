"""The rule engine's entry points: definitions and Alembic operation trees.

Rules live in the top-level `safety_rules` package, one module per rule. This
module runs them over a change (current state → proposed state), applies the
configured severities and waivers, and returns a :class:`Report`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemactl.config import Config
from schemactl.definitions import TableDef


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


@dataclass(frozen=True)
class Report:
    """What a rule run found: violations (after severities), waived ones, the rules run."""

    violations: tuple[Violation, ...] = ()
    waived: tuple[dict[str, Any], ...] = ()
    rules_run: tuple[str, ...] = field(default_factory=tuple)

    @property
    def errors(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.severity == "error")

    @property
    def ok(self) -> bool:
        return not self.errors


def check_definitions(current: Mapping[str, TableDef], proposed: Mapping[str, TableDef],
                      config: Config, *, changed: Iterable[str] | None = None,
                      allow_waivers: bool = True) -> Report:
    """Run every definition rule over the change ``current`` → ``proposed``.

    Args:
        current: table name → definition as git HEAD (or the base branch) has it.
        proposed: table name → the whole proposed state (tables absent here were removed).
        config: the repository's configuration (severities, limits, base fields, waivers).
        changed: restrict per-table rules to these tables (None: every table that differs).
        allow_waivers: False for agents, who never get waivers.
    """
    raise NotImplementedError  # implemented with the safety rules


def check_operations(upgrade_ops: Any, current: Mapping[str, TableDef],
                     proposed: Mapping[str, TableDef], config: Config) -> Report:
    """Run the operation-level rules over an Alembic ``UpgradeOps`` tree (defence in depth)."""
    raise NotImplementedError  # implemented with the safety rules
