"""docs/rules/ is generated from the rules' docstrings and must be up to date."""

from __future__ import annotations

import importlib.util
import sys

from tests.conftest import REPO_ROOT


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_rule_docs",
                                                  REPO_ROOT / "scripts" / "gen_rule_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_rule_docs"] = module
    spec.loader.exec_module(module)
    return module


def test_rule_docs_are_current() -> None:
    gen = _generator()
    stale = gen.stale(gen.render_all())
    assert not stale, f"docs/rules is stale ({stale}): run python scripts/gen_rule_docs.py"


def test_every_rule_page_has_both_examples() -> None:
    gen = _generator()
    for name, text in gen.render_all().items():
        if name != "README.md":
            assert "## Anti-pattern\n\n```yaml" in text, name
            assert "## Best practice\n\n```yaml" in text, name
