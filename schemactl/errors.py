"""The one error hierarchy of schemactl.

Every expected failure is a :class:`SchemactlError` carrying its process exit
code (DESIGN.md: 1 rejected, 2 bad input, 3 database/environment, 4 conflict),
a stable machine ``code`` for agents, a one-line message and a hint. The CLI
catches them in one place and never shows a traceback for them.
"""

from __future__ import annotations

from typing import Any


class SchemactlError(Exception):
    """Base of every expected schemactl failure."""

    exit_code: int = 1
    code: str = "error"

    def __init__(self, message: str, *, hint: str = "", code: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code
        self.details = details or {}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        if self.details:
            out["details"] = self.details
        return out


class RejectedError(SchemactlError):
    """A safety rule, a policy or a check said no (exit 1)."""

    exit_code = 1
    code = "rejected"


class PolicyError(RejectedError):
    """The caller is not allowed to do this (an agent under `agent_apply = "never"`)."""

    code = "policy"


class BadInputError(SchemactlError):
    """Malformed input or usage: bad YAML, unknown type, missing file (exit 2)."""

    exit_code = 2
    code = "bad_input"


class EnvironmentError_(SchemactlError):
    """The database or the machine failed us: cannot connect, no pg_dump, lock timeout (exit 3)."""

    exit_code = 3
    code = "environment"


class DatabaseError(EnvironmentError_):
    """The database could not be reached or refused a statement (exit 3)."""

    code = "database"


class ConflictError(SchemactlError):
    """Drift, a held apply lock, a database ahead of git (exit 4)."""

    exit_code = 4
    code = "conflict"
