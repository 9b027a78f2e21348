"""Issue 12: a few runs of the fault campaign (scripts/chaos.py runs many more)."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos_engine import Campaign


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Campaign]:
    bin_dir = os.environ.get("SCHEMACTL_TEST_PG_BIN")
    c = Campaign(tmp_path_factory.mktemp("chaos"), rows=300,
                 bin_dir=Path(bin_dir) if bin_dir else None)
    try:
        yield c
    finally:
        c.close()


@pytest.mark.slow
# The proxy cut runs in test_escapes; the rest of the kinds in scripts/chaos.py.
@pytest.mark.parametrize("kind", ["kill-step", "server-stop", "kill-fleet"])
def test_fault_then_converge(campaign: Campaign, kind: str) -> None:
    outcome = campaign.run(kind, random.Random(f"ci-{kind}"))
    assert not outcome.problems, outcome
    assert outcome.rows_lost == 0
