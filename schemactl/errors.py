"""The one error hierarchy of schemactl.

Every expected failure is a :class:`SchemactlError` carrying its process exit
code (DESIGN.md: 1 rejected, 2 bad input, 3 database/environment, 4 conflict),
a stable machine ``code`` for agents, a one-line message and a hint. The CLI
catches them in one place and never shows a traceback for them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
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


def translate(exc: BaseException) -> SchemactlError | None:
    """An unexpected exception as the expected error it stands for, or None (a bug).

    A full disk, a read-only file system, input nested too deeply for the parser, a number
    out of any range and a database connection that died are all expected in unattended
    use: each becomes one line with its exit code instead of a traceback.
    """
    import errno

    if isinstance(exc, SchemactlError):
        return exc
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        if exc.errno == errno.ENOSPC:
            return EnvironmentError_(f"no space left on the device{where}", code="disk_full",
                                     hint="free some space (or prune backups), then run again")
        if exc.errno == errno.EROFS:
            return EnvironmentError_(f"read-only file system{where}", code="read_only",
                                     hint="run where the repository and its state can be "
                                          "written")
        return EnvironmentError_(f"{exc.strerror or type(exc).__name__}{where}",
                                 code="os_error", hint="check the file system, then run again")
    if isinstance(exc, RecursionError):
        return BadInputError("the input is nested too deeply", code="too_deep",
                             hint="a definition is a flat mapping of a table's columns")
    module = type(exc).__module__ or ""
    if type(exc).__name__ in ("InvalidOperation", "DivisionByZero", "Overflow") \
            and module == "decimal":
        return BadInputError("a number is out of range", code="number_range",
                             hint="use a number the column type can hold")
    if module.startswith(("psycopg", "sqlalchemy")):
        lines = [ln.strip() for ln in str(getattr(exc, "orig", None) or exc).splitlines()
                 if ln.strip() and not ln.lstrip().startswith(("[SQL", "(Background"))]
        first = lines[0][:300] if lines else type(exc).__name__
        return DatabaseError(f"the database connection failed: {first}", code="connection_lost",
                             hint="check that the server answers; `schemactl status` says "
                                  "where the run stopped, and the next apply finishes it")
    return None


def internal(exc: BaseException) -> SchemactlError:
    """A bug (an exception :func:`translate` does not know) as one line, exit 3.

    Unattended callers still get their JSON object and an exit code that says "not your
    input": the run's journal, lock and audit rules hold whatever failed, and
    ``SCHEMACTL_DEBUG=1`` shows the traceback for a report.
    """
    text = " ".join(str(exc).split())[:300]
    return EnvironmentError_(
        f"internal error: {type(exc).__name__}{': ' + text if text else ''}", code="internal",
        hint="a bug in schemactl: `schemactl status` shows where things stand; rerun with "
             "SCHEMACTL_DEBUG=1 for the traceback to report")
