"""Who is acting: recorded in every audit entry and commit trailer."""

from __future__ import annotations

import os
import re
from pathlib import Path

# Pattern text, compiled by `re` on first use: validate never resolves an actor.
_ACTOR_RE = r"^[A-Za-z0-9_.:@/+-]{1,100}$"


def resolve_actor(explicit: str | None, repo_root: Path | None = None) -> str:
    """`--actor`, then $SCHEMACTL_ACTOR, then the git user, then the OS user."""
    from schemactl.errors import BadInputError

    actor = explicit or os.environ.get("SCHEMACTL_ACTOR")
    if not actor and repo_root is not None:
        try:
            from schemactl.adapters.gitops import user_name

            name = user_name(repo_root)
            actor = f"user:{name}" if name else None
        except Exception:  # noqa: BLE001 - no git identity is not an error here
            actor = None
    if not actor:
        import getpass

        try:
            actor = f"user:{getpass.getuser()}"
        except (KeyError, OSError):
            actor = "user:unknown"
    actor = actor.strip()
    if not re.match(_ACTOR_RE, actor.replace(" ", "_")):
        raise BadInputError(f"invalid actor name {actor[:40]!r}",
                            hint="use letters, digits and :._@/+- (at most 100 characters)")
    return actor


def is_agent(actor: str) -> bool:
    """An actor is an agent when its name starts with `agent:` (DESIGN.md, Agents)."""
    return actor.startswith("agent:")
