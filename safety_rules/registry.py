"""The rule registry: every ``safety_rules/scNNN_*.py`` module's rule, by code.

Adding a rule is adding a module: the registry finds it. Two rules with the
same code (or the same name) are a programming error and refused at once.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterable
from functools import cache

from .base import Rule

_MODULE_RE = re.compile(r"^sc\d{3}_[a-z0-9_]+$")
_CODE_RE = re.compile(r"^SC\d{3}$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


class DuplicateRuleError(RuntimeError):
    """Two rules claim the same code or name."""


class Registry:
    """Rules by code, in code order."""

    def __init__(self) -> None:
        self._rules: dict[str, type[Rule]] = {}

    def register(self, rule: type[Rule]) -> type[Rule]:
        """Add a rule class (usable as a decorator).

        Raises:
            DuplicateRuleError: the code or name is already taken.
            ValueError: the code or name is malformed.
        """
        if not _CODE_RE.match(rule.code):
            raise ValueError(f"{rule.__name__}: code {rule.code!r} is not SCnnn")
        if not _NAME_RE.match(rule.name):
            raise ValueError(f"{rule.__name__}: name {rule.name!r} is not kebab-case")
        if rule.severity not in ("error", "warning"):
            raise ValueError(f"{rule.__name__}: default severity must be error or warning")
        if rule.code in self._rules and self._rules[rule.code] is not rule:
            raise DuplicateRuleError(f"rule code {rule.code} is registered twice "
                                     f"({self._rules[rule.code].__name__}, {rule.__name__})")
        for other in self._rules.values():
            if other.name == rule.name and other is not rule:
                raise DuplicateRuleError(f"rule name {rule.name} is registered twice")
        self._rules[rule.code] = rule
        return rule

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._rules.values(), key=lambda r: r.code))

    def __len__(self) -> int:
        return len(self._rules)

    def get(self, code: str) -> type[Rule] | None:
        return self._rules.get(code.upper())

    @property
    def codes(self) -> list[str]:
        return sorted(self._rules)


def rule_modules() -> list[str]:
    """Names of the rule modules in the safety_rules package."""
    import safety_rules

    # A listing, not pkgutil.iter_modules: pkgutil imports typing, which a cold validate
    # does not otherwise need.
    return sorted({name[:-3] for folder in safety_rules.__path__ for name in os.listdir(folder)
                   if name.endswith(".py") and _MODULE_RE.match(name[:-3])})


def rules_in_module(module: object) -> Iterable[type[Rule]]:
    for value in vars(module).values():
        if (isinstance(value, type) and issubclass(value, Rule) and value is not Rule
                and value.__module__ == getattr(module, "__name__", None) and value.code):
            yield value


@cache
def registry() -> Registry:
    """The registry of every rule module (imported once per process)."""
    reg = Registry()
    for name in rule_modules():
        module = importlib.import_module(f"safety_rules.{name}")
        for rule in rules_in_module(module):
            reg.register(rule)
    return reg


def all_rules() -> list[type[Rule]]:
    return list(registry())
