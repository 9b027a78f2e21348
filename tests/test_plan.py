"""Issue 4: `schemactl plan` shows the SQL `apply` would run against a database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from schemactl.adapters.database import Target
from tests.test_propose import NOTES, PROJECTS, propose


def test_plan_lists_pending_revisions_and_their_sql(repo: Path, db: Target, cli: Any) -> None:
    res = cli("plan", "--json", "--database-url", db.url, cwd=repo)
    assert res.code == 0, res
    assert res.json["pending"] == ["0001_core"]
    assert "CREATE TABLE conversations" in res.json["sql"]
    assert res.json["db_revision"] is None

    assert cli("apply", "--database-url", db.url, cwd=repo).code == 0
    rev_projects = propose(cli, repo, PROJECTS).json["migration"]["revision"]
    rev_notes = propose(cli, repo, NOTES).json["migration"]["revision"]
    res = cli("plan", "--json", "--database-url", db.url, cwd=repo)
    assert res.code == 0, res
    data = res.json
    assert data["pending"] == [rev_projects, rev_notes]
    assert data["db_revision"] == "0001_core" and data["head_revision"] == rev_notes
    sql = data["sql"]
    assert sql.index("CREATE TABLE projects") < sql.index("CREATE TABLE notes")
    assert "CREATE TABLE conversations" not in sql
    assert f"UPDATE alembic_version SET version_num='{rev_notes}'" in sql

    human = cli("plan", "--database-url", db.url, cwd=repo)
    assert human.code == 0 and "2 migration(s) pending" in human.stdout
    assert "CREATE TABLE notes" in human.stdout

    assert cli("apply", "--database-url", db.url, cwd=repo).code == 0
    res = cli("plan", "--json", "--database-url", db.url, cwd=repo)
    assert res.json["pending"] == [] and res.json["sql"] == ""


def test_plan_without_a_database_is_exit_3(repo: Path, cli: Any) -> None:
    res = cli("plan", "--json", "--database-url", "postgresql://nobody@127.0.0.1:1/none",
              cwd=repo)
    assert res.code == 3, res
    assert res.json["ok"] is False and res.json["error"]["code"] == "database"
