"""What the repository-level rules (SC601-SC604) read: migrations, heads, schema models.

`schemactl.ci.check` builds it; the rules stay pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from schemactl.model.config import Config
from schemactl.model.definitions import TableDef

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class RepoContext:
    """What the repository-level rules see: migrations, heads and three schema models.

    A schema model maps a table to its attributes (``column:<name>``, ``index:<name>``,
    ``fk:<column>``, ...; see :func:`table_state`). All plain data: the rules stay pure.
    """

    config: Config
    base_migrations: tuple[tuple[str, str], ...] = ()
    head_migrations: tuple[tuple[str, str], ...] = ()
    head_sum_problems: tuple[str, ...] = ()
    heads: tuple[str, ...] = ()
    base_state: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    head_state: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    migrated_state: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tables: tuple[str, ...] = ()
    head_defs: Mapping[str, TableDef] = field(default_factory=dict)
    touched_by: Mapping[str, str] = field(default_factory=dict)
    opaque: tuple[tuple[str, str], ...] = ()
    # revision → migration file name at HEAD, and (file, parent) whose parent is missing.
    head_revisions: Mapping[str, str] = field(default_factory=dict)
    missing_parents: tuple[tuple[str, str], ...] = ()


def describe_key(table: str, key: str) -> tuple[str, str | None]:
    """A readable name of a model attribute, and the column it concerns."""
    kind, _, name = key.partition(":")
    if kind == "table":
        return f"table {table}", None
    if kind == "comment":
        return f"the comment of table {table}", None
    if kind == "pk":
        return f"the primary key of {table}", None
    if kind == "column":
        return f"column {table}.{name}", name
    if kind == "column_comment":
        return f"the comment of column {table}.{name}", name
    if kind == "index":
        return f"index {name} on {table}", None
    if kind == "fk":
        return f"the foreign key of {table}.{name}", name
    if kind == "unique":
        return f"the unique constraint on {table}.{name}", name
    if kind == "check":
        return f"check {name} on {table}", None
    if kind == "generated":
        return f"the generated expression of {table}.{name}", name
    return f"{key} of {table}", None
