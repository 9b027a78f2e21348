"""Issue 8: agents as callers: tool definitions, policy in the engine, actor, add_base_fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from schemactl import api
from schemactl.adapters.database import Target
from schemactl.agents import agent_tools
from schemactl.errors import PolicyError
from schemactl.model.actor import resolve_actor
from tests.apply_helpers import git, revision_of

OWN_COLUMNS = """\
table: ideas
columns:
  - {name: summary, type: text, nullable: false, default: ''}
"""


def test_tools_json_shape(cli) -> None:  # type: ignore[no-untyped-def]
    res = cli("tools", "--json")
    assert res.code == 0, res
    out = res.json
    assert out["ok"] and out["command"] == "tools" and out["error"] is None
    tools = out["tools"]
    assert [t["name"] for t in tools] == [
        "schema_validate", "schema_propose", "schema_revert", "schema_plan", "schema_apply",
        "schema_rollback", "schema_status", "schema_history"]
    for tool in tools:
        assert set(tool) == {"name", "description", "input_schema"}
        Draft202012Validator.check_schema(tool["input_schema"])
        assert tool["input_schema"]["type"] == "object"
        assert tool["input_schema"]["additionalProperties"] is False
    by_name = {t["name"]: t for t in tools}
    assert "policy" in by_name["schema_apply"]["description"]
    assert "refuse" in by_name["schema_propose"]["description"].lower()
    # The definition's own schema is inlined: its $refs resolve inside the tool schema.
    propose = Draft202012Validator(by_name["schema_propose"]["input_schema"])
    good = {"definition": {"table": "ideas", "columns": [{"name": "summary", "type": "text"}]},
            "add_base_fields": True}
    assert not list(propose.iter_errors(good))
    bad = {"definition": {"table": "ideas", "columns": [{"name": "x", "type": "text",
                                                         "nulable": True}]}}
    assert list(propose.iter_errors(bad))
    assert list(propose.iter_errors({"definition": good["definition"], "force": True}))


def test_agent_actor() -> None:
    assert agent_tools.agent_actor(None, "Desk Client 2") == "agent:Desk-Client-2"
    assert agent_tools.agent_actor("mechanic", "whatever") == "agent:mechanic"
    assert agent_tools.agent_actor("agent:x", None) == "agent:x"
    assert agent_tools.agent_actor(None, None) == "agent:mcp"
    hostile = agent_tools.agent_actor(None, "../../;rm -rf /\n" + "a" * 500)
    assert hostile.startswith("agent:") and resolve_actor(hostile) == hostile


def test_agent_actor_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEMACTL_ACTOR", "agent:ops-bot")
    assert agent_tools.agent_actor(None, "client") == "agent:ops-bot"
    monkeypatch.setenv("SCHEMACTL_ACTOR", "user:42")  # a human's name never leaks to MCP
    assert agent_tools.agent_actor(None, "client") == "agent:client"


def test_call_never_raises(repo: Path) -> None:
    ctx = agent_tools.ToolContext(repo=str(repo), database_url=None, actor="agent:t")
    for name, arguments in [(None, {}), (["schema_status"], {}), ("schema_validate", [1, 2]),
                            ("schema_validate", "definition"),
                            ("schema_propose", {"definition": {"table": "t", "columns": [
                                {"name": "a", "type": "text", "default": {"sql": "now()"}}]}}),
                            ("schema_history", {"limit": True})]:
        out = agent_tools.call(name, arguments, ctx)
        assert out["ok"] is False and out["error"]["code"] and out["error"]["hint"], out
    missing = agent_tools.ToolContext(repo=str(repo / "nope"), database_url=None, actor="a")
    out = agent_tools.call("schema_validate", {}, missing)
    assert out["error"]["code"] == "bad_input" and "schema repository" in out["error"]["message"]


def test_propose_add_base_fields(repo: Path, cli) -> None:  # type: ignore[no-untyped-def]
    # Without the flag the base fields are required (SC301), with it they are inserted.
    plain = cli("propose", "-", "--json", cwd=repo, input=OWN_COLUMNS)
    assert plain.code == 1 and any(v["rule"] == "SC301" for v in plain.json["violations"])
    res = cli("propose", "-", "--add-base-fields", "--json", cwd=repo, input=OWN_COLUMNS)
    assert res.code == 0, res
    text = (repo / "dynamic_schema" / "ideas.yaml").read_text()
    names = [ln.split("name: ")[1].split(",")[0] for ln in text.splitlines() if "name: " in ln]
    assert names == ["id", "created_at", "updated_at", "is_deleted", "created_by", "summary"]
    assert "{name: is_deleted, type: boolean, nullable: false, default: false}" in text
    head = git(repo, "rev-parse", "HEAD")
    # Idempotent: the same proposal again (with or without the base fields spelled out).
    again = api.propose(repo, stdin=OWN_COLUMNS, add_base_fields=True, actor="agent:t")
    assert again.ok and again.migration is None and again.commit is None
    whole = api.propose(repo, stdin=text, actor="agent:t")
    assert whole.ok and whole.migration is None
    assert git(repo, "rev-parse", "HEAD") == head
    # Still validated like any definition: a bad own column is refused.
    bad = api.propose(repo, definition={"table": "ideas", "columns": [
        {"name": "summary", "type": "text", "nullable": False, "default": ""},
        {"name": "Bad Name", "type": "money"}]}, add_base_fields=True, actor="agent:t")
    assert not bad.ok and {"SC401", "SC403"} <= {v["rule"] for v in bad.violations}


def _write_toml(repo: Path, old: str, new: str) -> None:
    path = repo / "schemactl.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_never_policy_in_the_engine(repo: Path, db: Target, cli) -> None:  # type: ignore[no-untyped-def]
    _write_toml(repo, 'agent_apply = "safe"', 'agent_apply = "never"')
    git(repo, "commit", "-qam", "agents never apply")
    head = git(repo, "rev-parse", "HEAD")
    res = cli("apply", "--json", "--actor", "agent:cli-bot", "--database-url", db.url, cwd=repo)
    assert res.code == 1, res
    assert res.json["ok"] is False and res.json["error"]["code"] == "policy"
    env = cli("rollback", "--json", "--database-url", db.url, cwd=repo,
              env={"SCHEMACTL_ACTOR": "agent:env-bot"})
    assert env.code == 1 and env.json["error"]["code"] == "policy", env
    with pytest.raises(PolicyError):
        api.apply(repo, database_url=db.url, actor="agent:py")
    assert revision_of(db) is None and git(repo, "rev-parse", "HEAD") == head


def test_agent_rollback_names_its_target_so_a_retry_undoes_nothing_more(
        repo: Path, db: Target) -> None:
    ctx = agent_tools.ToolContext(repo=str(repo), database_url=db.url, actor="agent:undo")
    revs = [agent_tools.call("schema_propose", {"definition": {
        "table": t, "columns": [{"name": "body", "type": "text"}]}, "add_base_fields": True},
        ctx)["migration"]["revision"] for t in ("ideas", "notes")]
    assert agent_tools.call("schema_apply", {}, ctx)["ok"]
    # Without a target a retry after a lost reply would undo a second migration.
    assert agent_tools.call("schema_rollback", {}, ctx)["error"]["code"] == "bad_input"
    for _ in range(2):  # the call and its retry
        res = agent_tools.call("schema_rollback", {"to": revs[0]}, ctx)
        assert res["ok"], res
        assert revision_of(db) == revs[0]


def test_safe_policy_refuses_a_waived_change(repo: Path, db: Target, cli) -> None:  # type: ignore[no-untyped-def]
    # A human may waive a rule; an agent may not apply what only passed thanks to it.
    _write_toml(repo, "max_columns = 100", "max_columns = 6")
    _write_toml(repo, "[limits]", '[[rules.waivers]]\nrule = "SC406"\ntable = "ideas"\n'
                                  'reason = "ideas is wide by design"\n\n[limits]')
    git(repo, "commit", "-qam", "ideas may be wide")
    wide = OWN_COLUMNS + "  - {name: detail, type: text}\n"
    proposed = cli("propose", "-", "--add-base-fields", "--json", "--actor", "user:1", cwd=repo,
                   input=wide)
    assert proposed.code == 0, proposed
    assert [w["rule"] for w in proposed.json["waived"]] == ["SC406"]
    head = git(repo, "rev-parse", "HEAD")
    res = cli("apply", "--json", "--actor", "agent:bot", "--database-url", db.url, cwd=repo)
    assert res.code == 1, res
    assert res.json["error"]["code"] == "policy"
    assert [v["rule"] for v in res.json["violations"]] == ["SC406"]
    assert revision_of(db) is None and git(repo, "rev-parse", "HEAD") == head
    human = cli("apply", "--json", "--actor", "user:1", "--database-url", db.url, cwd=repo)
    assert human.code == 0, human
    lines = [json.loads(ln) for ln in (repo / "audit.jsonl").read_text().splitlines()]
    assert [ln["actor"] for ln in lines] == ["user:1"]


def test_agents_never_force(repo: Path) -> None:
    # Refused before the database is even looked at.
    with pytest.raises(PolicyError):
        api.rollback(repo, database_url="postgresql://u@127.0.0.1:1/x", actor="agent:t",
                     restore_backup="20260101T000000Z-base-000000", force=True)
