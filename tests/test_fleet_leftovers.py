"""A killed fleet run's audit lines belong to its own recovery, not to the next commit.

A fleet apply killed after two targets were audited leaves their lines in audit.jsonl,
uncommitted, with their journals. A plain single-database apply in between commits its own
line only; the next fleet run then commits the two with their own trailers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apply_helpers import add_notes, audit_lines, git, revision_of
from tests.conftest import Server, git_log
from tests.test_fleet import Fleet, _journals, _trailers, kill_when_audited


@pytest.fixture
def fleet(repo: Path) -> Iterator[Fleet]:
    f = Fleet(repo)
    try:
        yield f
    finally:
        f.drop()


def _committed_ids(repo: Path, rev: str = "HEAD") -> list[str]:
    text = git(repo, "show", f"{rev}:audit.jsonl") if git(
        repo, "ls-tree", rev, "audit.jsonl").strip() else ""
    return [json.loads(ln)["id"] for ln in text.splitlines() if ln.strip()]


@pytest.mark.slow
def test_single_apply_after_a_killed_fleet_run_commits_only_its_own_line(  # type: ignore[no-untyped-def]
        repo: Path, fleet: Fleet, pg_server: Server, cli) -> None:
    for name in ("k1", "k2", "k3"):
        fleet.add(pg_server, name)
    fleet.write()
    add_notes(repo)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env.update(fleet.env, SCHEMACTL_TEST_PAUSE_AT="audited", SCHEMACTL_TEST_PAUSE_SECONDS="60")
    kill_when_audited(repo, ["apply", "--target", "k1", "--target", "k2", "--parallel", "2",
                             "--json"], env)
    theirs = {ln["id"] for ln in audit_lines(repo)}
    assert len(theirs) == 2

    # A plain apply of another database: its commit carries its own line, not theirs.
    k3 = fleet.targets["k3"]
    one = cli("apply", "--database-url", k3.url, "--json", cwd=repo, env=fleet.env)
    assert one.code == 0, one
    assert revision_of(k3) == "0002_notes"
    committed = _committed_ids(repo)
    assert one.json["audit_id"] in committed and not theirs & set(committed), committed
    assert {ln["id"] for ln in audit_lines(repo)} == theirs | {one.json["audit_id"]}
    assert git(repo, "status", "--porcelain").strip() == "M audit.jsonl"
    assert len(_journals(repo)) == 2  # theirs, waiting for their recovery

    # Their recovery commits them, with their own trailers, once.
    res = cli("apply", "--target", "k1", "--target", "k2", "--json", cwd=repo, env=fleet.env)
    assert res.code == 0, res
    assert [t["status"] for t in res.json["targets"]] == ["applied", "applied"], res.json
    message = git_log(repo)[0]
    assert sorted(_trailers(message, "Schemactl-Target")) == \
        ["k1 0002_notes applied", "k2 0002_notes applied"]
    assert set(_trailers(message, "Schemactl-Audit")) == theirs
    committed = _committed_ids(repo)
    assert sorted(committed) == sorted(theirs | {one.json["audit_id"]})
    assert len(committed) == len(set(committed)) == 3
    assert git(repo, "status", "--porcelain") == "" and not _journals(repo)
