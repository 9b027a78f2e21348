"""Every rule's table-driven cases (tests/rules/cases/SCnnn.yaml), one test id per case.

A case holds ``before`` and ``after`` definitions (lists; ``after`` defaults to
``before``), or ``ops`` (an Alembic operation tree, checked against ``before``),
an optional ``config`` and the exact set of rule codes it must ``expect``.
Base fields are not required unless the case's config says ``base_fields: true``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from safety_rules.registry import registry
from schemactl.rules.validation import check_definitions, check_operations
from tests.rules.helpers import build_ops, make_config, tables

CASES_DIR = Path(__file__).parent / "cases"


def _load() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(CASES_DIR.glob("SC*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for case in doc["cases"]:
            out.append((f"{doc['rule']}-{case['id']}", {**case, "rule": doc["rule"]}))
    return out


CASES = _load()


@pytest.mark.parametrize("case", [c for _, c in CASES], ids=[i for i, _ in CASES])
def test_rule_case(case: dict[str, Any]) -> None:
    if "repo" in case:  # repository-level rules (SC6xx): tests/rules/repo_cases.py
        from tests.rules.repo_cases import run_repo_case

        run_repo_case(case)
        return
    config = make_config(case.get("config"))
    before = tables(case.get("before"))
    after = tables(case["after"]) if "after" in case else dict(before)
    if "ops" in case:
        report = check_operations(build_ops(case["ops"]), before, after, config)
    else:
        report = check_definitions(before, after, config)
    got = {v.rule for v in report.violations}
    assert got == set(case["expect"]), [(v.rule, v.message) for v in report.violations]
    for v in report.violations:
        assert v.hint, f"{v.rule} violation without a hint"
    if "waived" in case:
        assert {w["rule"] for w in report.waived} == set(case["waived"])
    if "severity" in case:
        assert {v.rule: v.severity for v in report.violations} == case["severity"]


def test_every_rule_has_passing_and_failing_cases() -> None:
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for _, case in CASES:
        by_rule.setdefault(case["rule"], []).append(case)
    for rule in registry():
        cases = by_rule.get(rule.code, [])
        assert any(not c["expect"] for c in cases), f"{rule.code} has no passing case"
        assert any(rule.code in c["expect"] for c in cases), f"{rule.code} has no failing case"
