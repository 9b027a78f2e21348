"""A migration file run offline: Alembic's ``--sql`` context for PostgreSQL, no database.

`propose` shows the SQL of the file it wrote (:func:`offline_sql`); `check` records what a
pull request's migrations do in the same context (:mod:`schemactl.codegen.recorder`).
"""

from __future__ import annotations

import io
from typing import Any

from schemactl.codegen.sqltext import tidy_sql
from schemactl.errors import RejectedError, SchemactlError


def offline_context(buf: io.StringIO) -> Any:
    """A PostgreSQL ``MigrationContext`` in offline mode writing its SQL into ``buf``."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(
        dialect_name="postgresql", dialect_opts={"paramstyle": "named"},
        opts={"as_sql": True, "output_buffer": buf, "literal_binds": True,
              "transaction_per_migration": True})


def offline_sql(source: str, filename: str = "<migration>", downgrade: bool = False) -> str:
    """The SQL a migration file's upgrade (or downgrade) runs, rendered offline.

    The file is executed in a fresh namespace against Alembic's offline (``--sql``) context
    for PostgreSQL: the statements are exactly those `apply` sends, minus Alembic's own
    version-table bookkeeping. Nothing is written and no database is needed.

    Raises:
        RejectedError: the file cannot be compiled or its upgrade fails offline.
    """
    from alembic.operations import Operations

    from schemactl.adapters.migrator import ALEMBIC_LOCK

    with ALEMBIC_LOCK:  # the `op` proxy is module-wide (see ALEMBIC_LOCK)
        return _offline_sql(Operations, source, filename, downgrade)


def _offline_sql(Operations: Any, source: str, filename: str,  # noqa: N803 - a class
                 downgrade: bool) -> str:
    buf = io.StringIO()
    ctx = offline_context(buf)
    namespace: dict[str, Any] = {"__name__": "schemactl_migration", "__file__": filename}
    try:
        code = compile(source, filename, "exec")
        with Operations.context(ctx):
            exec(code, namespace)  # noqa: S102 - our own rendered migration, never user code
            ctx.impl.emit_begin()
            namespace["downgrade" if downgrade else "upgrade"]()
            ctx.impl.emit_commit()
    except SchemactlError:
        raise
    except Exception as exc:  # noqa: BLE001 - report any failure of the rendered file
        raise RejectedError(f"the generated migration does not render offline: {exc}",
                            code="render") from exc
    return tidy_sql(buf.getvalue())
