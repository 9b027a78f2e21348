"""Imports made before threads share the pipeline's work (a fleet's targets)."""

from __future__ import annotations

# Imported lazily elsewhere: importing them from two threads at once can hand one thread a
# half-initialised module (alembic's packages import each other), so the fleet imports
# them in its own thread before any worker starts.
_LAZY_MODULES = (
    "psycopg", "sqlalchemy", "sqlalchemy.dialects.postgresql", "sqlalchemy.exc",
    "alembic.command", "alembic.config", "alembic.script", "alembic.runtime.migration",
    "alembic.operations", "alembic.operations.ops", "alembic.autogenerate",
    "alembic.autogenerate.api", "mako.template",
    "schemactl.codegen.metadata", "schemactl.codegen.planner", "schemactl.codegen.render",
    "schemactl.codegen.recorder", "schemactl.codegen.offline", "schemactl.codegen.sumfile",
    "schemactl.pipeline.drift", "schemactl.pipeline.backup", "schemactl.pipeline.scope",
    "schemactl.pipeline.applier", "schemactl.pipeline.runner",
)


def warm_imports() -> None:
    """Import what the pipeline imports lazily, once, before threads share the work."""
    import importlib

    for name in _LAZY_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional piece missing fails in its own target, as before
            pass
