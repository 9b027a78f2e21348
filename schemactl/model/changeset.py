"""Which tables a change touches: the one comparison of two sets of definitions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from schemactl.model.definitions import TableDef


def differs(current: Mapping[str, TableDef], proposed: Mapping[str, TableDef],
            name: str) -> bool:
    """Whether table ``name`` is added, removed, or its definition's state changed.

    Comments and deprecations count; formatting and key order do not. The rules see
    renames on top of this (:class:`safety_rules.base.RuleContext`).
    """
    if name not in current or name not in proposed:
        return True
    before, after = current[name], proposed[name]
    return before is not after and not before.same_state(after)


def changed_tables(current: Mapping[str, TableDef], proposed: Mapping[str, TableDef],
                   candidates: Iterable[str] | None = None) -> list[str]:
    """The tables that differ between ``current`` and ``proposed``, sorted.

    Args:
        candidates: the only names that may differ (e.g. what git says changed);
            default: every table of either side.
    """
    names = set(current) | set(proposed) if candidates is None else set(candidates)
    return sorted(n for n in names if differs(current, proposed, n))
