"""Drift finds each hand-made difference once: a foreign key's action, a CHECK, a partial
index's predicate, a generated column's expression (one repository and database per module;
each case alters the live schema, reads `status`, then puts it back)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schemactl import api
from schemactl.adapters.database import Target, connect

BASE = """\
  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
"""
TEAMS = "table: teams\ncolumns:\n" + BASE + "  - {name: name, type: text}\n"
MEMBERS = "table: members\ncolumns:\n" + BASE + """\
  - {name: email, type: text, nullable: false}
  - {name: age, type: integer, check: {min: 0}}
  - {name: team_id, type: uuid, references: {to: teams.id, on_delete: set_null}}
  - {name: search, type: tsvector, generated: {tsvector: [email], config: simple}}
indexes:
  - {columns: [email], unique: true, where: {is_deleted: false}}
"""
FK = "fk_members_team_id_teams_del_set_null"


class Live:
    def __init__(self, repo: Path, db: Target) -> None:
        self.repo, self.db = repo, db

    def execute(self, *statements: str) -> None:
        with connect(self.db) as conn:
            for sql in statements:
                conn.execute(sql)  # type: ignore[arg-type]

    def drift(self) -> list[dict[str, Any]]:
        return list(api.status(self.repo, self.db.url).drift)


@pytest.fixture(scope="module")
def live(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    repo = tmp_path_factory.mktemp("drift") / "repo"
    api.init(repo, actor="user:test")
    db = pg_server.create_database()
    try:
        for text in (TEAMS, MEMBERS):
            assert api.propose(repo, stdin=text, actor="user:test").ok
        assert api.apply(repo, db.url, actor="user:test").ok
        yield Live(repo, db)
    finally:
        pg_server.drop_database(db)


def _fk(name: str, action: str) -> list[str]:
    return [f"alter table members drop constraint if exists {FK}",
            f"alter table members add constraint {name} foreign key (team_id) "
            f"references teams (id) on delete {action}"]


def test_a_foreign_key_action_changed_by_hand_is_one_finding(live: Live) -> None:
    assert live.drift() == []
    live.execute(*_fk(FK, "cascade"))
    drift = live.drift()
    assert [(d["kind"], d["index"], d["column"]) for d in drift] == [
        ("foreign_key_action", FK, "team_id")], drift
    (d,) = drift
    assert (d["expected"], d["actual"]) == ("ON DELETE SET NULL", "ON DELETE CASCADE")
    assert d["message"] == (f"members: foreign key {FK} (team_id → teams.id) is ON DELETE "
                            "CASCADE, defined ON DELETE SET NULL")

    # recreated under another name: still the same key with another action
    other = "members_team_id_fkey"
    live.execute(f"alter table members drop constraint {FK}", *_fk(other, "restrict"))
    drift = live.drift()
    assert [(d["kind"], d["index"], d.get("live_name")) for d in drift] == [
        ("foreign_key_action", FK, other)], drift
    assert drift[0]["message"] == (
        f"members: foreign key {FK} (team_id → teams.id) is ON DELETE RESTRICT (as "
        f"{other}), defined ON DELETE SET NULL")
    live.execute(f"alter table members drop constraint {other}", *_fk(FK, "set null"))
    assert live.drift() == []

    # a core model's key: the same one finding
    core = "fk_tools_agent_id_agents"
    live.execute(f"alter table tools drop constraint {core}",
                 f"alter table tools add constraint {core} foreign key (agent_id) "
                 "references agents (id) on delete cascade on update cascade")
    assert [(d["kind"], d["table"], d["message"]) for d in live.drift()] == [
        ("foreign_key_action", "tools", f"tools: foreign key {core} (agent_id → agents.id) is "
         "ON DELETE CASCADE ON UPDATE CASCADE, defined ON DELETE NO ACTION ON UPDATE NO ACTION")]
    live.execute(f"alter table tools drop constraint {core}",
                 f"alter table tools add constraint {core} foreign key (agent_id) "
                 "references agents (id)")
    assert live.drift() == []


def test_checks_predicates_and_generated_expressions_are_one_finding_each(live: Live) -> None:
    live.execute("alter table members drop constraint ck_members_age",
                 "alter table members add constraint ck_members_age check (age >= 1)")
    assert [(d["kind"], d["index"]) for d in live.drift()] == [("check", "ck_members_age")]
    live.execute("alter table members drop constraint ck_members_age",
                 "alter table members add constraint ck_members_age check (age >= 0)",
                 "drop index uq_members_email",
                 "create unique index uq_members_email on members (email) where is_deleted")
    assert [(d["kind"], d["index"]) for d in live.drift()] == [
        ("index_predicate", "uq_members_email")]
    live.execute("drop index uq_members_email",
                 "create unique index uq_members_email on members (email) "
                 "where is_deleted = false",
                 "alter table members drop column search",
                 "alter table members add column search tsvector generated always as "
                 "(to_tsvector('english', coalesce(email, ''))) stored")
    assert [(d["kind"], d["column"]) for d in live.drift()] == [("generated", "search")]
    live.execute("alter table members drop column search",
                 "alter table members add column search tsvector generated always as "
                 "(to_tsvector('simple', coalesce(email, ''))) stored")
    assert live.drift() == []
