"""The registry, the rules' docstrings, and the static view of the core schema."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import yaml

from safety_rules.base import Rule, RuleContext
from safety_rules.core_tables import CORE_INDEXES, CORE_TABLES, core_from_metadata
from safety_rules.registry import DuplicateRuleError, Registry, registry, rule_modules
from safety_rules.violation import Violation

DESIGN_CODES = ["SC101", "SC102", "SC103", "SC104", "SC105", "SC201", "SC202", "SC203",
                "SC204", "SC301", "SC302", "SC401", "SC402", "SC403", "SC404", "SC405",
                "SC406", "SC501", "SC502", "SC503", "SC504"]


def test_every_design_rule_is_registered() -> None:
    assert set(DESIGN_CODES) <= set(registry().codes)


def test_one_rule_per_module_named_after_it() -> None:
    for rule in registry():
        module = rule.__module__.rsplit(".", 1)[1]
        assert module == f"{rule.code.lower()}_{rule.name.replace('-', '_')}", module
    assert len(rule_modules()) == len(registry())


def test_registry_refuses_duplicate_codes() -> None:
    class A(Rule):
        code, name = "SC999", "first-rule"

    class B(Rule):
        code, name = "SC999", "second-rule"

    reg = Registry()
    reg.register(A)
    with pytest.raises(DuplicateRuleError):
        reg.register(B)


def test_registry_refuses_malformed_rules() -> None:
    class Bad(Rule):
        code, name = "X1", "Bad_Name"

    with pytest.raises(ValueError):
        Registry().register(Bad)


def test_adding_a_rule_is_adding_a_class() -> None:
    class Custom(Rule):
        """Custom."""

        code, name = "SC998", "custom-rule"

        def check(self, ctx: RuleContext) -> Iterator[Violation]:
            yield self.violation("always", table="x")

    reg = Registry()
    reg.register(Custom)
    assert reg.get("sc998") is Custom


SECTION = re.compile(r"\*\*(Anti-pattern|Best practice)\*\*\s*```yaml\n(.*?)```", re.S)


@pytest.mark.parametrize("rule", list(registry()), ids=lambda r: r.code)
def test_rule_docstring_has_examples(rule: type[Rule]) -> None:
    doc = rule.__doc__ or ""
    assert rule.summary() and rule.summary().endswith("."), "first line is a one-line summary"
    assert rule.hint, "a default hint"
    sections = dict((k, v) for k, v in SECTION.findall(doc))
    assert set(sections) == {"Anti-pattern", "Best practice"}, f"{rule.code} lacks examples"
    for title, block in sections.items():
        import textwrap

        data = yaml.safe_load(textwrap.dedent(block))
        assert isinstance(data, dict) and "table" in data and "columns" in data, (
            f"{rule.code} {title} is not a definition")


def test_core_tables_match_core_schema_models() -> None:
    from core_schema.models import metadata

    assert core_from_metadata(metadata) == {t: dict(c) for t, c in CORE_TABLES.items()}


def test_core_index_names_match_core_schema_models() -> None:
    from core_schema.models import metadata

    named = {i.name: t.name for t in metadata.tables.values() for i in t.indexes}
    assert named == dict(CORE_INDEXES)
