"""Backups at production size: a backup holds the data of the tables the run touches only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from schemactl.adapters import pgtools
from schemactl.adapters.database import Target, connect
from schemactl.model.repo import SchemaRepo
from schemactl.pipeline import backup, retention, scope
from tests.apply_helpers import (
    add_column,
    add_notes,
    commit_all,
    insert_notes,
)

# A table no migration here touches, with rows (its data must stay out of scoped backups).
BYSTANDER = ("create table bystander (id bigint primary key, payload text not null); "
             "insert into bystander select g, repeat('x', 100) from generate_series(1, 2000) g")

# Made by propose: projects, untouched later, and notes with a foreign key to it.
PROJECTS = """\
table: projects
columns:
  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
  - {name: name, type: varchar(200), nullable: false}
"""
NOTES = """\
table: notes
columns:
  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
  - {name: title, type: varchar(200), nullable: false}
  - {name: project_id, type: uuid, references: projects.id}
"""
NOTES_V2 = NOTES + "  - {name: score, type: integer}\n"


def _propose(repo: Path, text: str) -> str:
    from schemactl import api

    res = api.propose(repo, stdin=text, actor="user:test")
    assert res.ok, res
    return str(res.migration["revision"])


RAW_SQL_MIGRATION = '''"""raw SQL"""
from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("update notes set body = body")


def downgrade() -> None:
    pass
'''


def _migration(repo: Path, name: str, text: str) -> None:
    (repo / "migrations" / "versions" / f"{name}.py").write_text(text)
    commit_all(repo, name)


def _apply(cli: Any, repo: Path, db: Target) -> dict[str, Any]:
    """An apply in this process (the command line is exercised where its output matters)."""
    from schemactl import api

    res = api.apply(repo, database_url=db.url, actor="user:test")
    assert res.ok, res
    return res.to_json()


def _toc(db: Target, path: str) -> str:
    _v, major, _size = pgtools.server_info(db)
    exe, _ = pgtools.find_tool("pg_restore", major)
    return pgtools.restore_list(exe, path).stdout


def _fingerprint(db: Target, table: str) -> tuple[int, str]:
    with connect(db) as conn:
        row = conn.execute(f"select count(*), coalesce(md5(string_agg(t::text, ',' order by "
                           f"t::text)), '') from {table} t").fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


@pytest.fixture
def applied(repo: Path, db: Target, cli: Any) -> dict[str, Any]:
    """A repository with notes (1,000 rows) applied, beside an untouched table."""
    add_notes(repo)
    _apply(cli, repo, db)
    insert_notes(db, 1000)
    with connect(db) as conn:
        conn.execute(BYSTANDER)
    return {}


def test_scope_comes_from_the_operations(repo: Path) -> None:
    add_notes(repo)
    add_column(repo, "0003_mood", "0002_notes", "mood")
    _migration(repo, "0004_raw", RAW_SQL_MIGRATION.format(revision="0004_raw", down="0003_mood"))
    sr = SchemaRepo.open(repo)
    run = scope.of_revisions(sr, ["0002_notes", "0003_mood"])
    assert run.tables == () and run.created == ("public.notes",) and run.full is None
    assert scope.of_revisions(sr, ["0003_mood"]).tables == ("public.notes",)
    down = scope.of_revisions(sr, ["0003_mood"], "downgrade")
    assert down.tables == ("public.notes",) and down.full is None
    raw = scope.of_revisions(sr, ["0003_mood", "0004_raw"])
    assert raw.full and "runs SQL" in raw.full  # opaque SQL widens, never narrows


def test_scoped_backup_holds_touched_data_only(repo: Path, db: Target, cli: Any,
                                               applied: dict[str, Any]) -> None:
    add_column(repo, "0003_mood", "0002_notes", "mood")
    res = _apply(cli, repo, db)
    assert res["backup"]["scope"] == "touched"
    assert res["backup"]["tables"] == ["public.notes"]
    listing = _toc(db, res["backup"]["path"])
    data = sorted(ln.split()[6] for ln in listing.splitlines() if " TABLE DATA " in ln)
    assert data == ["notes"]
    tables = {ln.split()[5] for ln in listing.splitlines() if " TABLE public " in ln}
    assert {"notes", "bystander", "audit_log", "agents"} <= tables  # the schema of all
    manifest = json.loads(Path(SchemaRepo.open(repo).backup_dir / f"{res['backup']['id']}.json")
                          .read_text())
    assert manifest["tables"] == [{"table": "public.notes", "rows": 1000}]
    assert manifest["marks"]["txid"] and manifest["size"] > 0 and manifest["sha256"]
    listed = cli("backups", "list", cwd=repo)
    assert "touched: notes" in listed.stdout, listed
    ok = cli("backups", "verify", res["backup"]["id"], "--json", cwd=repo)
    assert ok.code == 0 and ok.json["verify"]["scope_ok"] and ok.json["verify"]["data_tables"] == 1


def test_new_table_only_apply_dumps_no_table_data(repo: Path, db: Target, cli: Any) -> None:
    _apply(cli, repo, db)
    with connect(db) as conn:
        conn.execute(BYSTANDER)
    add_notes(repo)
    res = _apply(cli, repo, db)
    assert res["backup"]["scope"] == "touched" and res["backup"]["tables"] == []
    assert " TABLE DATA " not in _toc(db, res["backup"]["path"])


@pytest.fixture
def proposed(repo: Path, db: Target, cli: Any) -> dict[str, Any]:
    """projects (3 rows) and notes (500 rows, each referencing a project), beside bystander."""
    _propose(repo, PROJECTS)
    _apply(cli, repo, db)
    _propose(repo, NOTES)
    _apply(cli, repo, db)
    with connect(db) as conn:
        conn.execute(BYSTANDER)
        conn.execute("insert into projects (name) values ('a'), ('b'), ('c')")
        conn.execute("insert into notes (title, project_id) select 'n' || g, (select id from "
                     "projects order by name offset g % 3 limit 1) from generate_series(1, 500) g")
    return {}


def test_restore_from_scoped_backup_brings_back_touched_rows(repo: Path, db: Target, cli: Any,
                                                            proposed: dict[str, Any]) -> None:
    before_notes = _fingerprint(db, "notes")
    before_projects = _fingerprint(db, "projects")
    _propose(repo, NOTES_V2)
    res = _apply(cli, repo, db)
    assert res["backup"]["tables"] == ["public.notes"]  # projects: schema only
    with connect(db) as conn:  # after the backup: notes and the untouched tables change
        conn.execute("update notes set score = 1, title = 'changed'")
        conn.execute("update projects set name = name || '!'")
        conn.execute("update bystander set payload = 'later' where id <= 10")
    after_projects = _fingerprint(db, "projects")
    after_other = _fingerprint(db, "bystander")
    refused = cli("rollback", "--restore-backup", res["backup"]["id"], "--json",
                  "--database-url", db.url, cwd=repo)
    assert refused.code == 1 and refused.json["error"]["code"] == "rows_written", refused
    forced = cli("rollback", "--restore-backup", res["backup"]["id"], "--force", "--json",
                 "--database-url", db.url, cwd=repo, env={"SCHEMACTL_ACTOR": "user:test"})
    assert forced.code == 0, forced
    assert forced.json["restored_tables"] == ["notes"]
    assert forced.json["backup"]["scope"] == "touched"  # the fresh backup before it
    assert forced.json["backup"]["tables"] == ["public.notes"]
    assert "the data of notes" in forced.json["message"]
    assert _fingerprint(db, "notes") == before_notes  # count and checksum, FK to projects
    assert _fingerprint(db, "projects") == after_projects != before_projects  # untouched
    assert _fingerprint(db, "bystander") == after_other
    with connect(db) as conn:
        fk = conn.execute("select count(*) from pg_constraint where conname = "
                          "'fk_notes_project_id_projects' and convalidated "
                          "and conrelid = 'public.notes'::regclass").fetchone()
    assert fk is not None and fk[0] == 1


def test_restore_needing_data_the_backup_lacks_is_exit_2(repo: Path, db: Target, cli: Any,
                                                        proposed: dict[str, Any]) -> None:
    _propose(repo, NOTES_V2)
    res = _apply(cli, repo, db)
    sr = SchemaRepo.open(repo)
    revision, parent = res["revision"], res["revision_before"]
    # A scoped backup of another table only (as an apply touching just it would take).
    other = backup.create_backup(sr, db, parent, touches=scope.of_tables(
        ["bystander"], "public", [revision]), prune=False)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout
    bad = cli("rollback", "--restore-backup", other.id, "--force", "--json", "--database-url",
              db.url, cwd=repo)
    assert bad.code == 2, bad
    assert "holds no data of notes" in bad.json["error"]["message"]
    assert subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout == head
    assert _one(db, "select version_num from alembic_version") == revision


def _one(db: Target, sql: str) -> Any:
    with connect(db) as conn:
        row = conn.execute(sql).fetchone()
    return row[0] if row else None


def test_rollback_backup_is_scoped_to_the_downgrade(repo: Path, db: Target,
                                                   proposed: dict[str, Any]) -> None:
    from schemactl import api

    _propose(repo, NOTES_V2)
    applied = api.apply(repo, database_url=db.url, actor="user:test")
    assert applied.ok, applied
    res = api.rollback(repo, database_url=db.url, actor="user:test")
    assert res.ok, res
    assert res.backup is not None
    assert res.backup["scope"] == "touched" and res.backup["tables"] == ["public.notes"]
    b = backup.get_backup(SchemaRepo.open(repo), res.backup["id"])
    assert b.revisions == [applied.revision]


def test_bad_backup_settings_are_exit_2_and_apply_nothing(repo: Path, db: Target,
                                                         cli: Any) -> None:
    add_notes(repo)
    config = repo / "schemactl.toml"
    text = config.read_text()
    for bad, word in (('scope = "some"', "backup.scope"), ('format = "tar"', "backup.format"),
                      ("jobs = 0", "backup.jobs")):
        key = bad.split(" =")[0]
        lines = [bad if ln.startswith(f"{key} =") else ln for ln in text.splitlines()]
        config.write_text("\n".join(lines) + "\n")
        res = cli("apply", "--json", "--database-url", db.url, cwd=repo)
        assert res.code == 2, res
        assert word in res.json["error"]["message"] and "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) <= 1
    config.write_text(text.replace('dir = ".schemactl/backups"', 'dir = "schemactl.toml/x"'))
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert res.code == 3, res
    assert "not writable" in res.json["error"]["message"]
    with connect(db) as conn:
        row = conn.execute("select to_regclass('public.alembic_version')").fetchone()
    assert row is not None and row[0] is None  # nothing applied


@pytest.mark.slow
def test_kill_9_mid_scoped_dump_never_counts(repo: Path, db: Target, cli: Any,
                                            applied: dict[str, Any]) -> None:
    add_column(repo, "0003_mood", "0002_notes", "mood")
    env = {**os.environ, "SCHEMACTL_TEST_PAUSE_AT": "dump", "SCHEMACTL_TEST_PAUSE_SECONDS": "60"}
    env.pop("DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "schemactl.cli", "apply", "--json",
                             "--database-url", db.url], cwd=repo, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = SchemaRepo.open(repo).backup_dir
    deadline = time.monotonic() + 60
    while not list(folder.glob("*.dump.partial")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(folder.glob("*.dump.partial")), "the dump never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    sr = SchemaRepo.open(repo)
    assert all(b.revision_before != "0002_notes" for b in backup.list_backups(sr))
    res = _apply(cli, repo, db)
    assert res["applied"] == ["0003_mood"] and res["backup"]["tables"] == ["public.notes"]
    assert not list(folder.glob("*.partial"))
    assert backup.verify_backup(sr, res["backup"]["id"])["ok"]


def test_retention_by_size_keeps_what_it_must(repo: Path, db: Target, cli: Any,
                                              applied: dict[str, Any]) -> None:
    add_column(repo, "0003_mood", "0002_notes", "mood")
    notes_backup = _apply(cli, repo, db)["backup"]["id"]  # the only copy of notes' old rows
    sr = SchemaRepo.open(repo)
    made = [backup.create_backup(sr, db, "0003_mood", backup_id=f"20990101T00000{i}Z-x-{i}",
                                 touches=scope.of_tables(["bystander"], "public", ["0003_mood"]),
                                 prune=False) for i in range(3)]
    done = retention.prune(sr, keep_last=1, max_total_mb=0.000001)
    kept = set(done["kept"])
    assert notes_backup in kept  # newest backup of notes, whose change is still applied
    assert made[-1].id in kept  # the newest backup (and the newest of bystander)
    assert {m.id for m in made[:-1]} <= set(done["removed"])
    assert done["kept_over_limit"]
    assert sorted(p.stem for p in sr.backup_dir.glob("*.json")) == sorted(kept)


def test_full_directory_backup_verifies_and_restores(repo: Path, db: Target, cli: Any,
                                                     applied: dict[str, Any],
                                                     pg_server: Any) -> None:
    config = repo / "schemactl.toml"
    config.write_text(config.read_text().replace('scope = "touched"', 'scope = "full"')
                      .replace('format = "custom"', 'format = "directory"')
                      .replace("jobs = 1", "jobs = 2"))
    commit_all(repo, "full directory backups")
    sr = SchemaRepo.open(repo)
    b = backup.create_backup(sr, db, "0002_notes", prune=False)
    assert b.format == "directory" and b.scope == "full" and Path(b.path).is_dir()
    ok = cli("backups", "verify", b.id, "--json", cwd=repo)
    assert ok.code == 0 and ok.json["verify"]["data_tables"] >= 2, ok
    restored = pg_server.create_database()
    try:
        backup.restore(sr, b.id, restored)
        assert _fingerprint(restored, "bystander") == _fingerprint(db, "bystander")
    finally:
        pg_server.drop_database(restored)
    victim = next(p for p in sorted(Path(b.path).iterdir()) if p.name != "toc.dat")
    victim.write_bytes(victim.read_bytes() + b"x")
    bad = cli("backups", "verify", b.id, "--json", cwd=repo)
    assert bad.code == 3 and not bad.json["verify"]["sha256_ok"], bad


def test_online_change_backup_holds_that_table_only(repo: Path, db: Target,
                                                    proposed: dict[str, Any]) -> None:
    """An online retype goes through its helper, not raw SQL: the backups of its apply and
    of its rollback hold the changed table's data only, and its rows come back."""
    from schemactl import api

    _propose(repo, NOTES_V2)
    assert api.apply(repo, database_url=db.url, actor="user:test").ok
    with connect(db) as conn:
        conn.execute("update notes set score = length(title)")
    before = _fingerprint(db, "notes")
    _propose(repo, NOTES_V2.replace("{name: score, type: integer}", "{name: score, type: bigint}"))
    res = api.apply(repo, database_url=db.url, actor="user:test")
    assert res.ok, res
    assert res.backup is not None
    assert res.backup["scope"] == "touched" and res.backup["tables"] == ["public.notes"]
    manifest = json.loads(Path(SchemaRepo.open(repo).backup_dir / f"{res.backup['id']}.json")
                          .read_text())
    assert manifest["tables"] == [{"table": "public.notes", "rows": 500}]
    back = api.rollback(repo, database_url=db.url, actor="user:test")
    assert back.ok, back
    assert back.backup is not None and back.backup["tables"] == ["public.notes"]
    assert _fingerprint(db, "notes") == before
