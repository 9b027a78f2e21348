"""The round trip of `check`: upgrade to the base, to HEAD, downgrade to the base, upgrade again."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from schemactl.model.repo import SchemaRepo


def run_round_trip(repo: SchemaRepo, base_revision: str | None, *,
                   database_url: str | None = None, ephemeral: bool = False
                   ) -> dict[str, Any]:
    """Upgrade to the base's head, upgrade to HEAD, downgrade to the base's head, upgrade.

    Args:
        repo: the schema repository (its work tree's migration files run).
        base_revision: the base branch's head revision (None: from nothing).
        database_url: an empty, disposable database.
        ephemeral: a fresh embedded server in a temporary folder, removed afterwards.

    Returns:
        ``{"ok", "database", "steps": [{"step", "ok", ...}], "failed": null | {step,
        message, sql}}``; a failure is reported here, never raised.
    """
    import shutil
    import tempfile

    from schemactl.adapters.database import Target

    server = None
    temp: str | None = None
    try:
        if ephemeral:
            from schemactl.adapters.embedded import EmbeddedServer

            temp = tempfile.mkdtemp(prefix="schemactl-check-")
            server = EmbeddedServer(Path(temp) / ".schemactl", durable=False)
            server.start()
            target = Target(server.secret_url(), embedded=True)
        else:
            target = Target(str(database_url))
        return _round_trip_steps(repo, target, base_revision, "ephemeral" if ephemeral
                                 else target.display)
    finally:
        if server is not None:
            try:
                server.stop()
            except Exception:  # noqa: BLE001 - a server that will not stop is left to the OS
                pass
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def _round_trip_steps(repo: SchemaRepo, target: Any, base_revision: str | None,
                      shown: str) -> dict[str, Any]:
    from schemactl.adapters import migrator
    from schemactl.adapters.database import make_engine
    from schemactl.errors import SchemactlError

    base_target = base_revision or "base"
    steps = [("upgrade to base", "upgrade", base_revision), ("upgrade to head", "upgrade",
                                                               "head"),
             ("downgrade to base", "downgrade", base_target),
             ("upgrade to head again", "upgrade", "head")]
    done: list[dict[str, Any]] = []
    engine = make_engine(target)
    try:
        for label, action, rev in steps:
            if rev is None:
                continue
            try:
                with engine.connect() as conn:
                    fn = migrator.upgrade if action == "upgrade" else migrator.downgrade
                    fn(repo, conn, rev)
                    conn.commit()
            except SchemactlError as exc:
                sql = str(exc.details.get("sql") or "") if exc.details else ""
                failed = {"step": label, "message": target.scrub(exc.message)
                          if hasattr(target, "scrub") else exc.message, "sql": sql}
                done.append({"step": label, "ok": False})
                return {"ok": False, "database": shown, "steps": done, "failed": failed}
            done.append({"step": label, "ok": True, "revision": rev})
    finally:
        engine.dispose()
    return {"ok": True, "database": shown, "steps": done, "failed": None}
