"""Issue 12, wedge 2: proposals at the same time make one line of history, none lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from schemactl.adapters import migrator
from schemactl.codegen.sumfile import SUM_PATH, sum_text
from schemactl.model.repo import SchemaRepo
from tests.apply_helpers import git


def _definition(table: str) -> str:
    return (f"table: {table}\ncolumns:\n"
            "  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}\n"
            "  - {name: created_at, type: timestamptz, nullable: false, default: now()}\n"
            "  - {name: updated_at, type: timestamptz, nullable: false, default: now()}\n"
            "  - {name: is_deleted, type: boolean, nullable: false, default: false}\n"
            "  - {name: created_by, type: bigint}\n"
            "  - {name: title, type: text}\n")


def _popen(repo: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "SCHEMACTL_DATABASE_URL", "SCHEMACTL_ACTOR")}
    return subprocess.Popen([sys.executable, "-m", "schemactl.cli", *args], cwd=repo,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


def assert_one_line(repo: Path, tables: list[str]) -> None:
    """One head, the sum file agrees with the files, every table committed, git clean."""
    sr = SchemaRepo.open(repo)
    assert len(migrator.heads(sr)) == 1, migrator.heads(sr)
    chain = migrator.revisions_upto(sr)
    assert len(chain) == 1 + len(tables), chain
    assert (repo / SUM_PATH).read_text() == sum_text(repo, {})
    assert git(repo, "status", "--porcelain") == ""
    tracked = git(repo, "ls-files").split()
    for t in tables:
        assert f"dynamic_schema/{t}.yaml" in tracked
    assert not (repo / ".git" / "index.lock").exists()


@pytest.mark.slow
def test_four_propose_processes_at_once(repo: Path) -> None:
    tables = ["alpha", "bravo", "charlie", "delta"]
    procs = [_popen(repo, "propose", "--json", "-") for _ in tables]
    for p, t in zip(procs, tables, strict=True):
        assert p.stdin is not None
        p.stdin.write(_definition(t).encode())
        p.stdin.close()
        p.stdin = None
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        outs.append((p.returncode, out.decode(), err.decode()))
    for code, out, err in outs:
        assert code == 0, (code, out, err)
        assert json.loads(out)["commit"], out
    assert_one_line(repo, tables)


@pytest.mark.slow
def test_two_mcp_servers_propose_into_one_repository(repo: Path) -> None:
    from tests.test_mcp import call, mcp_session

    results: list[dict[str, object]] = []

    async def agent(tables: list[str], name: str) -> None:
        async with mcp_session(repo, client=name) as session:
            for t in tables:
                definition = {"table": t, "columns": [{"name": "title", "type": "text"}]}
                results.append(await call(session, "schema_propose",
                                          {"definition": definition,
                                           "add_base_fields": True}))

    async def scenario() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(agent, ["echo", "foxtrot"], "agent-one")
            tg.start_soon(agent, ["golf", "hotel"], "agent-two")

    anyio.run(scenario)
    assert all(r["ok"] and r["commit"] for r in results), results
    assert_one_line(repo, ["echo", "foxtrot", "golf", "hotel"])
