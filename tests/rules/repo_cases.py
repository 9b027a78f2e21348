"""Cases of the repository-level rules (SC601-SC604), in the same case files as the others.

A case with a ``repo`` mapping describes a pull request instead of one change:
``base``/``head``/``migrated`` definitions (the state the branch's migrations lead to;
each defaults to ``base``), ``base_migrations``/``head_migrations`` as ``[file, sha]``
pairs in chain order, ``heads``, ``sum_problems`` and ``opaque`` operations
(``[migration, what]``).
"""

from __future__ import annotations

from typing import Any

from safety_rules.repo_context import RepoContext
from schemactl.ci.check import repo_violations
from schemactl.ci.schema_state import states_of
from schemactl.rules.validation import Report, check_definitions
from tests.rules.helpers import make_config, tables


def run_repo_case(case: dict[str, Any]) -> Report:
    """Build the case's :class:`RepoContext`, run the rules and check ``expect``."""
    config = make_config(case.get("config"))
    raw = case["repo"]
    base = tables(raw.get("base"))
    head = tables(raw["head"]) if "head" in raw else dict(base)
    migrated = tables(raw["migrated"]) if "migrated" in raw else dict(base)
    names = sorted(set(base) | set(head) | set(migrated))
    ctx = RepoContext(
        config=config,
        base_migrations=tuple(tuple(m) for m in raw.get("base_migrations", [])),  # type: ignore[misc]
        head_migrations=tuple(tuple(m) for m in raw.get("head_migrations", [])),  # type: ignore[misc]
        head_sum_problems=tuple(raw.get("sum_problems", [])),
        heads=tuple(raw.get("heads", [])),
        base_state=states_of(base, names), head_state=states_of(head, names),
        migrated_state=states_of(migrated, names), tables=tuple(names), head_defs=head,
        touched_by={n: "migrations/versions/0002_case.py" for n in names},
        opaque=tuple(tuple(o) for o in raw.get("opaque", [])),  # type: ignore[misc]
    )
    report = check_definitions({}, {}, config, changed=[], extra=repo_violations(ctx))
    got = {v.rule for v in report.violations}
    assert got == set(case["expect"]), [(v.rule, v.message) for v in report.violations]
    for v in report.violations:
        assert v.hint, f"{v.rule} violation without a hint"
    if "waived" in case:
        assert {w["rule"] for w in report.waived} == set(case["waived"])
    return report
