"""`validate`, the verb: a proposal checked against the repository, as a `ValidateResult`.

`schemactl.api.validate` is this function; it lives here, below the API, so that the
command line's lean path for a plain `schemactl validate FILE` (`schemactl.entry`) runs it
without importing the API and click.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from schemactl.model.actor import is_agent
from schemactl.model.repo import SchemaRepo
from schemactl.results import Result


@dataclass(frozen=True)
class ValidateResult(Result):
    """What `validate` answers."""

    tables: list[str]
    rules_run: list[str]
    waived: list[dict[str, object]] = field(default_factory=list)


def validate(repo: str | Path | None = None, files: list[str] | None = None,
             stdin: bytes | str | object | None = None, *, allow_waivers: bool = True,
             base: str = "HEAD", actor: str | None = None) -> ValidateResult:
    """See `schemactl.api.validate`."""
    from schemactl.rules import validation

    if is_agent(actor or os.environ.get("SCHEMACTL_ACTOR") or ""):
        allow_waivers = False
    sr = SchemaRepo.open(repo)
    proposal = validation.build_proposal(sr.root, sr.config, files=files, stdin=stdin,
                                         base=base)
    report = validation.validate_proposal(proposal, sr.config, allow_waivers=allow_waivers)
    error = None
    if not report.ok:
        # Like propose and check: a result that is not ok always says why in `error`.
        n = len(report.errors)
        error = {"code": "rejected", "message": f"{n} safety rule violation(s)",
                 "hint": "each violation's hint says how to make the change safely"}
    return ValidateResult(command="validate", ok=report.ok, exit_code=1, error=error,
                          violations=list(report.violations),
                          tables=validation.changed_tables(proposal),
                          rules_run=list(report.rules_run), waived=list(report.waived))
