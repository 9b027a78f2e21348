"""Issue: foundation. init, the embedded server, first-form apply, status, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from schemactl.adapters.database import Target, connect
from tests.conftest import REPO_ROOT, git_log, table_names

CORE = {"conversations", "langgraph_checkpoints", "agents", "tools", "audit_log"}


def test_init_scaffolds_layout_and_commits(repo: Path) -> None:
    for rel in ("core_schema/models.py", "dynamic_schema", "migrations/env.py",
                "migrations/versions/0001_core_schema.py", "schemactl.toml", "alembic.ini",
                ".gitignore"):
        assert (repo / rel).exists(), rel
    assert ".schemactl/" in (repo / ".gitignore").read_text()
    log = git_log(repo)
    assert len(log) == 1
    assert log[0].startswith("schemactl init")
    assert "Schemactl-Action: init" in log[0]
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"],
                            capture_output=True, text=True, check=True).stdout
    assert status == ""


def test_init_refuses_non_empty_directory(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    res = cli("init", str(target), "--json")
    assert res.code == 2, res
    assert res.json["ok"] is False and res.json["error"]["code"] == "bad_input"
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]


def test_apply_creates_core_tables(repo: Path, db: Target, cli) -> None:  # type: ignore[no-untyped-def]
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert res.code == 0, res
    assert res.json["applied"] == ["0001_core"]
    assert CORE <= table_names(db)
    assert "schemactl_archive" in _schemas(db)
    with connect(db) as conn:
        cols = conn.execute(
            "select column_name, data_type, is_nullable, column_default "
            "from information_schema.columns where table_name = 'agents' order by ordinal_position"
        ).fetchall()
        assert [c[0] for c in cols] == ["id", "name", "description", "config_path", "is_active",
                                        "version", "created_at", "updated_at", "created_by"]
        assert cols[1][1:3] == ("character varying", "NO")
        conn.execute("insert into agents (name, config_path) values ('mechanic', 'a.yaml')")
        row = conn.execute("select is_active, version, created_by from agents").fetchone()
        assert row == (True, 1, "system")
        fks = conn.execute(
            "select conname from pg_constraint where conrelid = 'tools'::regclass "
            "and contype = 'f'").fetchall()
        assert fks == [("fk_tools_agent_id_agents",)]
    # idempotent: a second apply applies nothing
    again = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert again.code == 0 and again.json["applied"] == []


def _schemas(db: Target) -> set[str]:
    with connect(db) as conn:
        return {r[0] for r in conn.execute("select nspname from pg_namespace").fetchall()}


def test_core_models_match_the_first_migration(repo: Path, db: Target, cli) -> None:  # type: ignore[no-untyped-def]
    """Alembic autogenerate finds nothing between core_schema/ and the migrated database."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from core_schema import metadata
    from schemactl.adapters.database import make_engine

    assert cli("apply", "--database-url", db.url, cwd=repo).code == 0
    engine = make_engine(db)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={
            "compare_type": True, "compare_server_default": True,
            "include_name": lambda name, type_, parents: type_ != "table"
            or name in metadata.tables})
        diffs = compare_metadata(ctx, metadata)
    engine.dispose()
    assert diffs == []


def test_status_reports_revision_and_pending(repo: Path, db: Target, cli) -> None:  # type: ignore[no-untyped-def]
    before = cli("status", "--json", "--database-url", db.url, cwd=repo)
    assert before.code == 0, before
    assert before.json["db_revision"] is None
    assert before.json["pending"] == ["0001_core"]
    assert before.json["database_ok"] is True
    cli("apply", "--database-url", db.url, cwd=repo)
    after = cli("status", "--json", "--database-url", db.url, cwd=repo).json
    assert after["db_revision"] == "0001_core" and after["pending"] == []
    assert len(after["git_head"]) == 40


def test_cannot_connect_is_exit_3_without_password(repo: Path, cli) -> None:  # type: ignore[no-untyped-def]
    url = "postgresql://alice:s3cr3t-pw@127.0.0.1:1/app"
    res = cli("apply", "--database-url", url, cwd=repo)
    assert res.code == 3, res
    assert "127.0.0.1:1" in res.stderr
    assert "s3cr3t-pw" not in res.stderr + res.stdout
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) <= 2  # message + hint
    js = cli("status", "--json", "--database-url", url, cwd=repo)
    assert js.code == 3 and "s3cr3t-pw" not in js.stdout
    assert js.json["database_ok"] is False and js.json["error"]["code"] == "database"


def test_not_a_schema_repository_is_exit_2(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    res = cli("status", "--json", cwd=tmp_path)
    assert res.code == 2 and res.json["error"]["code"] == "bad_input"


def test_embedded_server_on_demand_start_stop(repo: Path, cli) -> None:  # type: ignore[no-untyped-def]
    st = cli("db", "status", "--json", cwd=repo).json
    assert st["running"] is False
    res = cli("apply", "--json", cwd=repo)  # no URL: the embedded server starts on demand
    assert res.code == 0, res
    st = cli("db", "status", "--json", cwd=repo).json
    assert st["running"] is True
    assert st["url"].startswith("postgresql://postgres@127.0.0.1:")
    assert ":" not in st["url"].split("@")[0].removeprefix("postgresql://")  # no password
    password = (repo / ".schemactl" / "password").read_text()
    assert password not in res.stdout
    assert oct((repo / ".schemactl" / "password").stat().st_mode & 0o777) == "0o600"
    # left running for the next call, which sees the core tables
    target = Target(f"postgresql://postgres:{password}@127.0.0.1:{st['port']}/postgres")
    assert CORE <= table_names(target)
    assert cli("db", "stop", "--json", cwd=repo).json["running"] is False
    assert cli("db", "status", "--json", cwd=repo).json["running"] is False


def test_plain_alembic_upgrade_works_without_schemactl(repo: Path, db: Target) -> None:
    env = {**os.environ, "DATABASE_URL": db.url}
    proc = subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=repo,
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert CORE <= table_names(db)


def test_project_is_a_schema_repository_made_from_the_templates() -> None:
    tpl = REPO_ROOT / "schemactl" / "templates"
    pairs = {"env.py": "migrations/env.py", "script.py.mako": "migrations/script.py.mako",
             "0001_core_schema.py": "migrations/versions/0001_core_schema.py",
             "alembic.ini": "alembic.ini"}
    for src, dst in pairs.items():
        assert (tpl / src).read_text() == (REPO_ROOT / dst).read_text(), dst


@pytest.mark.parametrize("url", ["mysql://x@h/db", "not a url"])
def test_bad_url_is_bad_input(repo: Path, cli, url: str) -> None:  # type: ignore[no-untyped-def]
    res = cli("status", "--json", "--database-url", url, cwd=repo)
    assert res.code == 2, res
