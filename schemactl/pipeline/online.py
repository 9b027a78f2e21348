"""Online changes as the pipeline sees them: which are under way (for drift and status).

The steps themselves run inside the migration (``schemactl/templates/online_helpers.py``,
written into the file so plain Alembic runs them); their progress rows live in
``schemactl_archive.online_progress``, committed with each backfill batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def under_way(connection: Connection) -> list[dict[str, Any]]:
    """Online changes started and not finished: revision, table, column, step, shadow, rows."""
    from sqlalchemy import text

    present = connection.execute(
        text("SELECT to_regclass('schemactl_archive.online_progress')")).scalar()
    if present is None:
        return []
    rows = connection.execute(text(
        "SELECT revision, table_name, column_name, step, shadow, rows_done "
        "FROM schemactl_archive.online_progress WHERE step <> 'done' ORDER BY started_at"))
    return [{"revision": r[0], "table": r[1], "column": r[2], "step": r[3], "shadow": r[4],
             "rows_done": int(r[5])} for r in rows]


def hide_shadows(connection: Connection, differences: list[dict[str, Any]]
                 ) -> list[dict[str, Any]]:
    """Drift without the shadow columns of online changes under way (the next run resumes)."""
    shadows = {(u["table"], u["shadow"]) for u in under_way(connection)}
    if not shadows:
        return differences
    return [d for d in differences
            if not (d.get("kind") == "extra_column" and (d.get("table"), d.get("column"))
                    in shadows)]
