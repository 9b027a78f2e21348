"""Which revision each database was last recorded at, from the audit file's lines.

The audit file (`audit.jsonl`, committed with every apply and rollback) is the
repository's own record of what reached which database. `propose --replace/--revert`
and `check` read it to decide whether a migration was ever applied anywhere: a database
whose last recorded revision is that migration has it; a line that names the migration
but says neither ``success`` nor ``failed`` leaves the question open, and open counts as
applied (refuse rather than guess).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

AUDIT_PATH = "audit.jsonl"
SETTLED = ("success", "failed")


def parse_lines(text: bytes | str | None) -> list[dict[str, Any]]:
    """The JSON objects of an audit file, oldest first (cut or unreadable lines skipped)."""
    if text is None:
        return []
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    out = []
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def last_revisions(lines: Iterable[dict[str, Any]]) -> dict[str, str | None]:
    """database → the revision its latest settled line left it at (lines in file order)."""
    seen: dict[str, dict[str, Any]] = {}
    for obj in lines:
        if obj.get("status") in SETTLED and "revision" in obj:
            seen[str(obj.get("id"))] = obj  # a line written twice counts once
    state: dict[str, str | None] = {}
    for obj in seen.values():
        rev = obj.get("revision")
        state[str(obj.get("database") or "?")] = str(rev) if rev is not None else None
    return state


def recorded_applied(lines: Iterable[dict[str, Any]], revision: str) -> list[str]:
    """Why the audit lines say (or cannot rule out) that ``revision`` is applied somewhere:
    one reason per database, empty when every record says it is not."""
    lines = list(lines)
    reasons = [f"{db} is recorded at {revision}" for db, rev in
               sorted(last_revisions(lines).items()) if rev == revision]
    for obj in lines:
        names = obj.get("revisions") or []
        if obj.get("status") not in SETTLED and isinstance(names, list) and revision in names:
            reasons.append(f"{obj.get('database') or '?'} has a {obj.get('action')} of "
                           f"{revision} recorded as {obj.get('status')!r}")
    return reasons
