"""The core tables' columns, as the rules need them, without importing SQLAlchemy.

`schemactl validate` must start fast, so the shape of the core schema that the
rules read (names, types, keys) is kept here as data. A test checks it against
the SQLAlchemy models in `core_schema.models`; :func:`core_from_metadata` builds
the same map from any MetaData for callers that have one loaded already.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schemactl.model.naming import ARCHIVE_SCHEMA, DYNAMIC_SCHEMA

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class CoreColumn:
    """A column of a protected core table."""

    type: str
    nullable: bool = True
    primary_key: bool = False
    unique: bool = False


CoreTable = Mapping[str, CoreColumn]

_PK = CoreColumn("uuid", nullable=False, primary_key=True)
_TS = CoreColumn("timestamp")

CORE_TABLES: Mapping[str, CoreTable] = {
    "conversations": {
        "id": _PK, "user_id": CoreColumn("bigint", False), "chat_id": CoreColumn("bigint", False),
        "messages": CoreColumn("jsonb"), "metadata": CoreColumn("jsonb"),
        "created_at": _TS, "updated_at": _TS,
    },
    "langgraph_checkpoints": {
        "id": _PK, "thread_id": CoreColumn("text", False),
        "checkpoint_id": CoreColumn("text", False), "parent_id": CoreColumn("text"),
        "checkpoint": CoreColumn("jsonb", False), "metadata": CoreColumn("jsonb"),
        "created_at": _TS,
    },
    "agents": {
        "id": _PK, "name": CoreColumn("varchar(100)", False, unique=True),
        "description": CoreColumn("text"), "config_path": CoreColumn("text", False),
        "is_active": CoreColumn("boolean"), "version": CoreColumn("integer"),
        "created_at": _TS, "updated_at": _TS, "created_by": CoreColumn("text"),
    },
    "tools": {
        "id": _PK, "name": CoreColumn("varchar(100)", False, unique=True),
        "description": CoreColumn("text"), "module_path": CoreColumn("text", False),
        "schema": CoreColumn("jsonb"), "agent_id": CoreColumn("uuid"),
        "is_active": CoreColumn("boolean"), "created_at": _TS, "updated_at": _TS,
    },
    "audit_log": {
        "id": _PK, "action": CoreColumn("varchar(50)", False),
        "actor": CoreColumn("varchar(100)", False), "details": CoreColumn("jsonb"),
        "git_commit": CoreColumn("varchar(40)"), "git_branch": CoreColumn("varchar(100)"),
        "status": CoreColumn("varchar(20)"), "created_at": _TS,
    },
}

# The core schema's explicit indexes (name → table); its keys follow pk_/uq_ naming.
CORE_INDEXES: Mapping[str, str] = {
    "ix_langgraph_checkpoints_thread_id_checkpoint_id": "langgraph_checkpoints",
}

# Relations Alembic makes besides its version table: the version table's primary key.
ALEMBIC_RELATIONS: Mapping[str, str] = {"alembic_version_pkc": "alembic_version"}

# Names a dynamic table may never take besides the core tables: Alembic's bookkeeping
# and schemactl's own tables.
PROTECTED_TABLES = frozenset({"alembic_version"})
PROTECTED_PREFIXES = ("pg_", "schemactl_", "sql_")
# Schemas out of reach of a dynamic definition (besides any schema but the dynamic one).
SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast", DYNAMIC_SCHEMA,
                            ARCHIVE_SCHEMA})


def sa_type_name(type_: Any) -> str:
    """A SQLAlchemy type as the definition language spells it (``VARCHAR(100)`` → varchar(100))."""
    from schemactl.model.definitions import normalise_type

    try:
        from sqlalchemy.dialects import postgresql

        text = str(type_.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]
    except Exception:  # noqa: BLE001 - an unknown/unrenderable type keeps its class name
        text = type(type_).__name__
    return normalise_type(text.lower())


def core_from_metadata(metadata: Any) -> dict[str, dict[str, CoreColumn]]:
    """The rules' view of the tables in a SQLAlchemy ``MetaData``."""
    out: dict[str, dict[str, CoreColumn]] = {}
    for table in metadata.tables.values():
        cols: dict[str, CoreColumn] = {}
        uniques = {next(iter(c.columns)).name for c in table.constraints
                   if type(c).__name__ == "UniqueConstraint" and len(c.columns) == 1}
        for col in table.columns:
            cols[col.name] = CoreColumn(sa_type_name(col.type), bool(col.nullable),
                                        bool(col.primary_key), bool(col.unique) or
                                        col.name in uniques)
        out[table.name] = cols
    return out
