"""What an operation rule reads: an Alembic ``UpgradeOps`` tree, flattened, with both states.

Only `propose` and `apply` check operations; a plain `validate` never imports this module
(its classes are built at import, which a cold start pays for).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from schemactl.model.config import Config
from schemactl.model.definitions import TableDef

from .core_tables import CORE_TABLES, CoreTable

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class OpItem:
    """One Alembic operation with the table it acts on (flattened from ``ModifyTableOps``)."""

    op: Any
    table: str | None
    schema: str | None

    @property
    def kind(self) -> str:
        return type(self.op).__name__


# A context, compared by identity (its repr would print every table): fewer generated
# methods, which a cold validate pays for at import.
@dataclass(frozen=True, eq=False, repr=False)
class OpsContext:
    """What an operation rule sees: the flattened ``UpgradeOps`` tree plus both states."""

    upgrade_ops: Any
    current: Mapping[str, TableDef]
    proposed: Mapping[str, TableDef]
    config: Config
    core: Mapping[str, CoreTable] = field(default_factory=lambda: CORE_TABLES)

    @cached_property
    def items(self) -> list[OpItem]:
        return list(flatten_ops(self.upgrade_ops))

    @cached_property
    def created_tables(self) -> frozenset[str]:
        """Tables this very migration creates (changes to them lock nothing that exists)."""
        return frozenset(i.table for i in self.items
                         if i.kind == "CreateTableOp" and i.table is not None)

    def is_existing(self, table: str | None) -> bool:
        """A table that exists before the migration runs (HEAD definitions or core)."""
        if table is None or table in self.created_tables:
            return False
        return table in self.current or table in self.core

    def of_kind(self, *kinds: str) -> Iterator[OpItem]:
        return (i for i in self.items if i.kind in kinds)


def _op_table(op: Any) -> str | None:
    for attr in ("table_name", "source_table"):
        value = getattr(op, attr, None)
        if isinstance(value, str):
            return value
    return None


def flatten_ops(ops: Any, table: str | None = None, schema: str | None = None
                ) -> Iterator[OpItem]:
    """Every leaf operation of an ``UpgradeOps``/``ModifyTableOps`` tree (or a list of ops)."""
    children = ops if isinstance(ops, (list, tuple)) else getattr(ops, "ops", None)
    if children is not None and type(ops).__name__ in ("UpgradeOps", "DowngradeOps",
                                                      "ModifyTableOps", "list", "tuple"):
        inner_table = getattr(ops, "table_name", None) or table
        inner_schema = getattr(ops, "schema", None) or schema
        for child in children:
            yield from flatten_ops(child, inner_table, inner_schema)
        return
    yield OpItem(ops, _op_table(ops) or table, getattr(ops, "schema", None) or schema)
