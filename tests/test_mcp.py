"""Issue 8: `schemactl mcp`, driven by the real MCP client over stdio, on a real PostgreSQL."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
import psycopg
from jsonschema import Draft202012Validator
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from schemactl.adapters.database import Target
from schemactl.pipeline.locking import APPLY_KEY
from tests.apply_helpers import audit_rows, git, revision_of
from tests.conftest import git_log

TOOLS = ["schema_validate", "schema_propose", "schema_revert", "schema_plan", "schema_apply",
         "schema_rollback", "schema_status", "schema_history"]

# Only the agent's own columns: the base fields come from add_base_fields.
NOTES = {"table": "notes", "comment": "Agent notes",
         "columns": [{"name": "title", "type": "varchar(200)", "nullable": False,
                      "default": ""},
                     {"name": "body", "type": "text"}]}


@asynccontextmanager
async def mcp_session(repo: Path, database_url: str | None = None,
                      client: str = "mechanic") -> AsyncIterator[ClientSession]:
    """A client session with `schemactl mcp` spawned as a real process."""
    args = ["-m", "schemactl.cli", "mcp", "--repo", str(repo)]
    if database_url:
        args += ["--database-url", database_url]
    params = StdioServerParameters(command=sys.executable, args=args, cwd=str(repo))
    with open(repo.parent / "mcp-server.err", "a") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write, client_info=types.Implementation(
                    name=client, version="1.0")) as session:
                await session.initialize()
                yield session


async def call(session: ClientSession, name: str, arguments: Any) -> dict[str, Any]:
    """Call a tool; the text content, the structured content and isError must agree."""
    res = await session.call_tool(name, arguments)
    data = json.loads(res.content[0].text)  # type: ignore[union-attr]
    assert res.structured_content == data
    assert res.is_error is (not data["ok"])
    assert set(data) >= {"ok", "command", "violations", "error"}
    if not data["ok"] and data["error"] is not None:
        assert data["error"]["code"] and data["error"]["message"] and data["error"]["hint"]
    elif not data["ok"]:  # rejected by the rules (as the CLI's validate): hints per violation
        assert data["violations"] and all(v["hint"] for v in data["violations"])
    return data


def set_policy(repo: Path, value: str) -> None:
    path = repo / "schemactl.toml"
    path.write_text(path.read_text().replace('agent_apply = "safe"', f'agent_apply = "{value}"'))
    git(repo, "commit", "-qam", f"policy: agent_apply = {value}")


def test_agent_loop_validate_propose_apply(repo: Path, db: Target) -> None:
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with mcp_session(repo, db.url) as s:
            listed = (await s.list_tools()).tools
            assert [t.name for t in listed] == TOOLS
            for tool in listed:
                Draft202012Validator.check_schema(tool.input_schema)
                assert tool.description

            proposed = await call(s, "schema_propose",
                                  {"definition": NOTES, "add_base_fields": True})
            assert proposed["ok"], proposed
            revision = proposed["migration"]["revision"]
            assert proposed["commit"] and "CREATE TABLE notes" in proposed["migration"]["sql"]
            # A retry of the same proposal makes no second migration and no commit.
            again = await call(s, "schema_propose", {"definition": NOTES, "add_base_fields": True})
            assert again["ok"] and again["migration"] is None and again["commit"] is None

            plan = await call(s, "schema_plan", {})
            assert plan["pending"] == ["0001_core", revision]

            # Another apply holds the lock: a conflict, at once.
            with psycopg.connect(db.url, autocommit=True) as holder:
                holder.execute("select pg_advisory_lock(%s)", (APPLY_KEY,))
                locked = await call(s, "schema_apply", {})
            assert not locked["ok"] and locked["error"]["code"] == "locked"

            applied = await call(s, "schema_apply", {})
            assert applied["ok"], applied
            assert applied["applied"] == ["0001_core", revision]
            retried = await call(s, "schema_apply", {"wait_seconds": 5})
            assert retried["ok"] and retried["applied"] == []

            # Leaving `body` out is a dropped column: SC102, with a hint to act on.
            unsafe = dict(NOTES, columns=NOTES["columns"][:1])
            checked = await call(s, "schema_validate",
                                 {"definition": unsafe, "add_base_fields": True})
            assert not checked["ok"]
            sc102 = [v for v in checked["violations"] if v["rule"] == "SC102"]
            assert sc102 and sc102[0]["column"] == "body" and sc102[0]["hint"]
            refused = await call(s, "schema_propose",
                                 {"definition": unsafe, "add_base_fields": True})
            assert not refused["ok"] and refused["commit"] is None
            assert any(v["rule"] == "SC102" for v in refused["violations"])

            status = await call(s, "schema_status", {})
            assert status["db_revision"] == revision and status["pending"] == []
            history = await call(s, "schema_history", {"limit": 5})
            seen["history"] = history["entries"]
            seen["revision"] = revision

    anyio.run(scenario)
    assert revision_of(db) == seen["revision"]
    assert [e["actor"] for e in seen["history"]] == ["agent:mechanic"]
    rows = audit_rows(db)
    assert [(r["action"], r["actor"], r["status"]) for r in rows] == [
        ("apply", "agent:mechanic", "success")]
    trailers = [m for m in git_log(repo) if "Schemactl-Action:" in m]
    assert trailers and all("Schemactl-Actor: agent:mechanic" in m for m in trailers[:2])
    assert (repo / "dynamic_schema" / "notes.yaml").read_text().splitlines()[3].startswith(
        "  - {name: id, type: uuid, primary_key: true")


def test_apply_refused_under_never(repo: Path, db: Target, cli) -> None:  # type: ignore[no-untyped-def]
    set_policy(repo, "never")
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with mcp_session(repo, db.url, client="planner") as s:
            proposed = await call(s, "schema_propose",
                                  {"definition": NOTES, "add_base_fields": True})
            assert proposed["ok"], proposed  # agents still propose: humans apply
            seen["head"] = git(repo, "rev-parse", "HEAD").strip()
            refused = await call(s, "schema_apply", {})
            assert refused["error"]["code"] == "policy"
            assert "never" in refused["error"]["message"]
            seen["rollback"] = await call(s, "schema_rollback", {"to": "0001_core"})

    anyio.run(scenario)
    # Nothing changed: no revision, no commit, no backup.
    assert revision_of(db) is None
    assert git(repo, "rev-parse", "HEAD").strip() == seen["head"]
    backups = repo / ".schemactl" / "backups"
    assert not backups.exists() or not any(backups.iterdir())
    assert seen["rollback"]["error"]["code"] in ("policy", "not_available")
    # The policy is about agents: a human applies.
    res = cli("apply", "--json", "--database-url", db.url, "--actor", "user:7", cwd=repo)
    assert res.code == 0, res


def test_hostile_input_gets_structured_errors(repo: Path) -> None:
    secret_url = "postgresql://agent:s3cr3t-pw@127.0.0.1:1/nowhere"
    big_comment = "x" * 100_000

    async def scenario() -> None:
        async with mcp_session(repo, secret_url) as s:
            cases: list[tuple[str, Any, str]] = [
                ("schema_validate", {"definition": "notes"}, "bad_input"),
                ("schema_validate", {"definition": {"table": 5, "columns": "no"}},
                 "bad_definition"),
                ("schema_validate", {"definition": {"table": "t", "columns": [[[[[]]]]]}},
                 "bad_definition"),
                ("schema_propose", {}, "bad_input"),
                ("schema_propose", {"definition": NOTES, "force": True}, "bad_input"),
                ("schema_propose", {"definition": dict(NOTES, waivers=["SC102"])},
                 "bad_definition"),
                ("schema_apply", {"wait_seconds": "soon"}, "bad_input"),
                ("schema_history", {"limit": -1}, "bad_input"),
                ("schema_validate", {"definition": dict(NOTES, comment="x" * 2_000_000)},
                 "too_large"),
                ("schema_drop_everything", {}, "unknown_tool"),
            ]
            for name, arguments, code in cases:
                out = await call(s, name, arguments)
                assert not out["ok"] and out["error"]["code"] == code, (name, out)
                if code == "bad_input" and "force" in arguments:
                    assert "force" in out["error"]["message"]

            # Over the per-definition limit: the SC406 violation, with its hint.
            oversized = await call(s, "schema_validate",
                                   {"definition": dict(NOTES, comment=big_comment),
                                    "add_base_fields": True})
            assert [v["rule"] for v in oversized["violations"]] == ["SC406"]
            # An injection attempt in a name is a rule violation, never SQL.
            injected = await call(s, "schema_validate", {"definition": dict(
                NOTES, table="notes; drop table agents"), "add_base_fields": True})
            assert any(v["rule"] == "SC401" for v in injected["violations"])
            # The database does not answer: a structured error, and no password anywhere.
            res = await s.call_tool("schema_status", {})
            text = res.content[0].text  # type: ignore[union-attr]
            assert "s3cr3t-pw" not in text and not json.loads(text)["ok"]

            # And the server still serves.
            fine = await call(s, "schema_validate", {"definition": NOTES,
                                                     "add_base_fields": True})
            assert fine["ok"], fine

    anyio.run(scenario)
