"""What every safety rule builds on: the rule base class and the contexts rules read.

A rule is pure: it reads a :class:`RuleContext` (current state → proposed state)
or an `safety_rules.ops_context.OpsContext` (an Alembic ``UpgradeOps`` tree), and yields
:class:`~safety_rules.violation.Violation` objects. No I/O, no database.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from schemactl.model.config import Config
from schemactl.model.definitions import Column, TableDef
from schemactl.model.online import column_pairs, renamed_source, table_renames
from schemactl.model.tableset import TableSet, as_table_set

from .core_tables import CORE_TABLES, CoreTable
from .violation import Violation

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import ClassVar

    from .ops_context import OpsContext


@dataclass(frozen=True)
class TableChange:
    """One table's change: ``before`` is None for a new table, ``after`` None for a removed one."""

    name: str
    before: TableDef | None
    after: TableDef | None

    @property
    def is_new(self) -> bool:
        return self.before is None

    @property
    def is_removed(self) -> bool:
        return self.after is None

    def added_columns(self) -> list[Column]:
        """Columns of ``after`` that ``before`` lacks (all of them for a new table)."""
        if self.after is None:
            return []
        if self.before is None:
            return list(self.after.columns)
        old = set(self.before.column_names)
        return [c for c in self.after.columns
                if c.name not in old and renamed_source(self.before, c) is None]

    def removed_columns(self) -> list[Column]:
        """Columns of ``before`` that ``after`` lacks (deprecating is not removing)."""
        if self.before is None or self.after is None:
            return []
        new = set(self.after.column_names)
        renamed = {c.renamed_from for c in self.after.columns
                   if renamed_source(self.before, c) is not None}
        return [c for c in self.before.columns if c.name not in new and c.name not in renamed]

    def kept_columns(self) -> list[tuple[Column, Column]]:
        """(before, after) pairs of the columns both states have (a marked rename is kept)."""
        if self.before is None or self.after is None:
            return []
        return column_pairs(self.before, self.after)


# A context, compared by identity (its repr would print every table): fewer generated
# methods, which a cold validate pays for at import.
@dataclass(frozen=True, eq=False, repr=False)
class RuleContext:
    """What a definition rule sees: the current and proposed states and the configuration."""

    current: Mapping[str, TableDef]
    proposed: Mapping[str, TableDef]
    config: Config
    changed: frozenset[str] | None = None
    core: Mapping[str, CoreTable] = field(default_factory=lambda: CORE_TABLES)

    @cached_property
    def changes(self) -> list[TableChange]:
        """The tables that differ between the two states (or the ``changed`` ones), sorted.

        With ``changed`` given only those tables are looked at (a table renamed with
        ``renamed_from`` is new, so it is among them): the rest of a large state is
        never read.
        """
        if self.changed is not None:
            names = sorted(self.changed)
            renames = table_renames(self.current, self.proposed, names)
        else:
            names = sorted(set(self.current) | set(self.proposed))
            renames = table_renames(self.current, self.proposed)
        out = []
        for name in names:
            if name in renames.values():
                continue  # seen under its new name
            before, after = self.current.get(name), self.proposed.get(name)
            if name in renames:
                before = self.current[renames[name]]
            if before is None and after is None:
                continue
            if self.changed is None and before is not None and after is not None \
                    and before.same_state(after):
                continue
            out.append(TableChange(name, before, after))
        return out

    @cached_property
    def renamed_tables(self) -> dict[str, str]:
        """Old name → new name of the tables this change renames online (``renamed_from``)."""
        return {ch.before.table: ch.name for ch in self.changes
                if ch.before is not None and ch.after is not None and ch.before.table != ch.name}

    @property
    def proposed_changes(self) -> Iterator[TableChange]:
        """Changed tables that exist in the proposed state."""
        return (c for c in self.changes if c.after is not None)

    def table_exists(self, name: str) -> bool:
        return name in self.proposed or name in self.core

    @cached_property
    def _proposed_set(self) -> TableSet:
        return as_table_set(self.proposed)

    def referrers(self, table: str) -> frozenset[str]:
        """The proposed tables with a column referencing ``table`` (from the state's index)."""
        return self._proposed_set.referrers(table)

    def relation_owners(self, name: str) -> frozenset[str]:
        """The proposed tables owning relation ``name`` (a table, index or key of that name),
        answered from the state's index, not by walking every definition."""
        return self._proposed_set.owners_of(name)


class Rule:
    """Base of every safety rule. Subclasses set ``code``, ``name``, ``severity`` and a docstring.

    ``check(ctx)`` runs over definitions; rules that also apply to Alembic
    operations override ``check_ops(ctx)``.
    """

    code: ClassVar[str] = ""
    name: ClassVar[str] = ""
    severity: ClassVar[str] = "error"
    hint: ClassVar[str] = ""

    @classmethod
    def summary(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0].strip() if cls.__doc__ else ""

    @classmethod
    def has_ops(cls) -> bool:
        return cls.check_ops is not Rule.check_ops

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        return iter(())

    def check_ops(self, ctx: OpsContext) -> Iterator[Violation]:
        return iter(())

    def violation(self, message: str, *, table: str | None = None, column: str | None = None,
                  hint: str | None = None, tdef: TableDef | None = None) -> Violation:
        """A violation of this rule; ``tdef`` gives the source file and line."""
        return Violation(
            rule=self.code, name=self.name, severity=self.severity, message=message,
            hint=hint or self.hint, table=table, column=column,
            source=tdef.source if tdef is not None else None,
            line=tdef.line_of(column) if tdef is not None else None,
        )
