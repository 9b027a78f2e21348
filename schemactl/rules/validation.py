"""The rule engine's entry points: definitions and Alembic operation trees.

Rules live in the top-level `safety_rules` package, one module per rule. This
module runs them over a change (current state → proposed state), applies the
configured severities and waivers, and returns a :class:`Report`.

The rules are imported on first use, so importing this module stays cheap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from safety_rules.violation import Violation
from schemactl.model.config import Config, Waiver
from schemactl.model.definitions import TableDef

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class Report:
    """What a rule run found: violations (after severities), waived ones, the rules run."""

    violations: tuple[Violation, ...] = ()
    waived: tuple[dict[str, Any], ...] = ()
    rules_run: tuple[str, ...] = field(default_factory=tuple)

    @property
    def errors(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.severity == "error")

    @property
    def ok(self) -> bool:
        return not self.errors


def check_definitions(current: Mapping[str, TableDef], proposed: Mapping[str, TableDef],
                      config: Config, *, changed: Iterable[str] | None = None,
                      allow_waivers: bool = True, core: Mapping[str, Any] | None = None,
                      extra: Iterable[Violation] = ()) -> Report:
    """Run every definition rule over the change ``current`` → ``proposed``.

    Args:
        current: table name → definition as git HEAD (or the base branch) has it.
        proposed: table name → the whole proposed state (tables absent here were removed).
        config: the repository's configuration (severities, limits, base fields, waivers).
        changed: restrict per-table rules to these tables (None: every table that differs).
        allow_waivers: False for agents, who never get waivers.
        core: core table → column name → `safety_rules.core_tables.CoreColumn`
            (default: the shipped core schema).
        extra: violations found before parsing (an oversized file: SC406), put through
            the same severities and waivers.

    Returns:
        The report; ``report.ok`` is False when an error-severity violation remains.
    """
    from safety_rules.base import RuleContext

    kwargs: dict[str, Any] = {}
    if core is not None:
        kwargs["core"] = core
    ctx = RuleContext(current=current, proposed=proposed, config=config,
                      changed=frozenset(changed) if changed is not None else None, **kwargs)
    rules = active_rules(config)
    found: list[Violation] = list(extra)
    for rule in rules:
        found.extend(rule.check(ctx))
    return _report(found, config, allow_waivers, tuple(r.code for r in rules))


def check_operations(upgrade_ops: Any, current: Mapping[str, TableDef],
                     proposed: Mapping[str, TableDef], config: Config, *,
                     allow_waivers: bool = True, core: Mapping[str, Any] | None = None
                     ) -> Report:
    """Run the operation-level rules over an Alembic ``UpgradeOps`` tree (defence in depth).

    Args:
        upgrade_ops: what ``alembic.autogenerate.produce_migrations(...).upgrade_ops``
            returns (or a list of operations).
        current: the definitions at HEAD: tables there exist before the migration runs.
        proposed: the proposed definitions.
        config: the repository's configuration.
        allow_waivers: False for agents.
        core: as for :func:`check_definitions`.
    """
    from safety_rules.ops_context import OpsContext

    kwargs: dict[str, Any] = {"core": core} if core is not None else {}
    ctx = OpsContext(upgrade_ops=upgrade_ops, current=current, proposed=proposed,
                     config=config, **kwargs)
    rules = [r for r in active_rules(config) if r.has_ops()]
    found: list[Violation] = []
    for rule in rules:
        found.extend(rule.check_ops(ctx))
    return _report(found, config, allow_waivers, tuple(r.code for r in rules))


def active_rules(config: Config) -> list[Any]:
    """Instances of every registered rule whose configured severity is not "off"."""
    from safety_rules.registry import registry

    return [rule() for rule in registry() if config.severities.get(rule.code) != "off"]


def _waiver_for(v: Violation, waivers: Iterable[Waiver]) -> Waiver | None:
    for w in waivers:
        if w.rule == v.rule and (w.table is None or w.table == v.table) and (
                w.column is None or w.column == v.column):
            return w
    return None


def _report(found: Iterable[Violation], config: Config, allow_waivers: bool,
            rules_run: tuple[str, ...]) -> Report:
    """Apply severities, then waivers; drop duplicates, keep the rules' order."""
    kept: list[Violation] = []
    waived: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for v in found:
        severity = config.severities.get(v.rule, v.severity)
        if severity == "off":
            continue
        key = (v.rule, v.table, v.column, v.message)
        if key in seen:
            continue
        seen.add(key)
        if severity != v.severity:
            v = dataclasses.replace(v, severity=severity)
        waiver = _waiver_for(v, config.waivers) if allow_waivers else None
        if waiver is not None:
            waived.append({**v.to_json(), "waived": True, "reason": waiver.reason})
        else:
            kept.append(v)
    kept.sort(key=lambda v: (v.severity != "error", v.table or "", v.rule))
    return Report(violations=tuple(kept), waived=tuple(waived), rules_run=rules_run)


# -- validating a repository's proposal (what `schemactl validate` runs) ------------------

# A context, compared by identity (its repr would print every table): fewer generated
# methods, which a cold validate pays for at import.
@dataclass(frozen=True, eq=False, repr=False)
class Proposal:
    """The states `validate` compares, and what it found before any rule ran.

    ``current`` and ``proposed`` are table sets (`schemactl.model.tableset`): in a large
    repository they answer from the parse cache, and only ``changed`` tables are read.
    """

    current: Mapping[str, TableDef]
    proposed: Mapping[str, TableDef]
    changed: frozenset[str] | None
    oversized: tuple[Violation, ...] = ()


def build_proposal(root: Any, config: Config, *, files: Iterable[str] | None = None,
                   stdin: bytes | str | Any | None = None, base: str = "HEAD") -> Proposal:
    """Read the current state (git ``base``) and the proposed one, without running rules.

    - neither ``files`` nor ``stdin``: the work tree's dynamic_schema/ against ``base``
      (a deleted file is a removed table);
    - ``files``: each file is a proposal against ``base``; a file at a path ``base``
      has replaces that path's table, any other replaces the table of the same name;
    - ``stdin``: one definition (bytes, text or a binary stream).

    A file over the size limit is not parsed: it becomes an SC406 violation. The
    current state comes from the parse cache when the repository has one
    (`schemactl.model.loading.tables_at_rev`): unchanged definitions are not read.

    Raises:
        DefinitionError: a definition cannot be parsed (exit 2).
        BadInputError: a missing file, an unknown revision (exit 2).
    """
    from pathlib import Path

    from schemactl.model.loading import tables_at_rev
    from schemactl.model.tableset import Overlay

    root = Path(root)
    current = tables_at_rev(root, base)
    if files is None and stdin is None:
        from schemactl.rules.inputs import worktree_changes

        edits, oversized = worktree_changes(root, current, config)
        return Proposal(current, Overlay(current, edits), frozenset(edits), tuple(oversized))
    edits_f, changed, oversized = _file_changes(root, current, config, files, stdin)
    return Proposal(current, Overlay(current, edits_f), frozenset(changed), tuple(oversized))


def _file_changes(root: Any, current: Mapping[str, TableDef], config: Config,
                  files: Iterable[str] | None, stdin: Any
                  ) -> tuple[dict[str, TableDef | None], set[str], list[Violation]]:
    from pathlib import Path

    from schemactl.model.loading import add_table
    from schemactl.model.parsing import parse_definition
    from schemactl.model.tableset import as_table_set
    from schemactl.rules.inputs import HARD_MAX_BYTES, bounded_read, oversized_file, read_stream

    edits: dict[str, TableDef | None] = {}
    changed: set[str] = set()
    oversized: list[Violation] = []
    sources: list[tuple[str, str | None, bytes | None, int]] = []  # shown, head path, data, size
    if stdin is not None:
        if isinstance(stdin, (bytes, str)):
            raw = stdin.encode("utf-8", errors="surrogateescape") if isinstance(stdin, str) \
                else stdin
            data_s: bytes | None = raw if len(raw) <= config.limits.max_definition_bytes \
                else None
            sources.append(("<stdin>", None, data_s, len(raw)))
        else:
            data_s, size = read_stream(stdin, min(config.limits.max_definition_bytes,
                                                   HARD_MAX_BYTES))
            sources.append(("<stdin>", None, data_s, size))
    for name in files or ():
        path = Path(name)
        absolute = path if path.is_absolute() else Path.cwd() / path
        try:
            rel = absolute.resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            rel = None
        data, size = bounded_read(absolute, config, name)
        sources.append((name, rel, data, size))
    seen: dict[str, TableDef] = {}
    for shown, rel, data, size in sources:
        old = as_table_set(current).at_path(rel) if rel else None
        if data is None:
            oversized.append(oversized_file(shown, size, config, old))
            continue
        tdef = parse_definition(data, shown)
        add_table(seen, tdef)
        if old is not None and old != tdef.table:
            # The file at this path now defines another table: the old one is gone.
            edits[old] = None
            changed.add(old)
        edits[tdef.table] = tdef
        changed.add(tdef.table)
    return edits, changed, oversized


def validate_proposal(proposal: Proposal, config: Config, *, allow_waivers: bool = True
                      ) -> Report:
    """Run the definition rules over a :class:`Proposal` (see :func:`build_proposal`)."""
    return check_definitions(proposal.current, proposal.proposed, config,
                             changed=proposal.changed, allow_waivers=allow_waivers,
                             extra=proposal.oversized)


def changed_tables(proposal: Proposal) -> list[str]:
    """The tables a proposal changes (what `validate` reports as checked)."""
    from schemactl.model.changeset import changed_tables as differ

    if proposal.changed is not None:
        return sorted(proposal.changed)
    return differ(proposal.current, proposal.proposed)
