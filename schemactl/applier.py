"""`schemactl apply`: bring the database to the head of migrations/."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemactl import migrator
from schemactl.database import Target, connect, make_engine
from schemactl.repo import SchemaRepo
from schemactl.results import Result


@dataclass(frozen=True)
class ApplyResult(Result):
    applied: list[str] = field(default_factory=list)
    revision_before: str | None = None
    revision: str | None = None
    database: str = ""
    backup: dict[str, Any] | None = None
    commit: str | None = None


def session_options(repo: SchemaRepo) -> dict[str, str]:
    cfg = repo.config
    return {"lock_timeout": f"{cfg.lock_timeout_ms}ms",
            "statement_timeout": f"{cfg.statement_timeout_ms}ms"}


def apply(repo: SchemaRepo, target: Target, actor: str) -> ApplyResult:
    """Upgrade the database to the single head of migrations/.

    Raises:
        ConflictError: the database is at a revision git does not know, or migrations/ has
            several heads.
        DatabaseError: the database cannot be reached or a migration failed (rolled back).
    """
    with connect(target) as conn:
        before = migrator.current_revision(conn)
    todo = migrator.pending(repo, before)
    if todo:
        engine = make_engine(target, session_options(repo))
        try:
            with engine.connect() as connection:
                migrator.upgrade(repo, connection, "head")
        finally:
            engine.dispose()
    with connect(target) as conn:
        after = migrator.current_revision(conn)
    return ApplyResult(command="apply", applied=todo, revision_before=before, revision=after,
                       database=target.display)
