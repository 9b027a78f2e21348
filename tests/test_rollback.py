"""Issue 6: `schemactl rollback` undoes the last change without losing a single value."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from schemactl import api
from schemactl.adapters.database import Target, connect, make_engine
from tests.conftest import git_log

NOTES = """\
table: notes
comment: Notes
columns:
  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
  - {name: title, type: varchar(200), nullable: false}
"""
# The evolution: a column with values and an index built concurrently.
NOTES_V2 = NOTES + "  - {name: score, type: integer}\nindexes:\n  - {columns: [score]}\n"


def _propose(repo: Path, text: str) -> str:
    res = api.propose(repo, stdin=text, actor="user:test")
    assert res.ok, res
    return str(res.migration["revision"])


def _apply(repo: Path, db: Target) -> Any:
    return api.apply(repo, database_url=db.url, actor="user:test")


def _fill(db: Target) -> tuple[int, int]:
    """300 notes with deterministic ids and scores; returns (sum of scores, count)."""
    with connect(db) as conn:
        conn.execute("insert into notes (id, title) select md5(g::text)::uuid, 'n' || g "
                     "from generate_series(1, 300) g")
        conn.execute("update notes set score = length(title) * 7 + 1")
        row = conn.execute("select sum(score), count(*) from notes").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _one(db: Target, sql: str) -> Any:
    with connect(db) as conn:
        row = conn.execute(sql).fetchone()
    return row[0] if row else None


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout


def test_column_then_table_rollback_keeps_every_value(repo: Path, db: Target, cli: Any) -> None:
    rev_table = _propose(repo, NOTES)
    _apply(repo, db)
    rev_col = _propose(repo, NOTES_V2)
    _apply(repo, db)
    total = _fill(db)

    res = cli("rollback", "--json", "--database-url", db.url, "--actor", "user:7", cwd=repo)
    assert res.code == 0, res
    out = res.json
    assert {"ok", "command", "rolled_back", "archived", "backup", "commit", "violations",
            "error"} <= set(out)
    assert out["rolled_back"] == rev_col and out["revision"] == rev_table
    assert set(out["backup"]) >= {"id", "path", "sha256"} and Path(out["backup"]["path"]).is_file()
    arch = f"schemactl_archive.notes__score__{rev_col}"
    assert out["archived"] == [{"kind": "column", "from": "public.notes.score", "to": arch}]
    # public keeps its rows without the column; the archive holds every value, keyed by id
    assert _one(db, "select count(*) from notes") == 300
    assert _one(db, "select count(*) from information_schema.columns where "
                    "table_name = 'notes' and column_name = 'score'") == 0
    assert _one(db, "select to_regclass('public.ix_notes_score')") is None
    with connect(db) as conn:
        assert conn.execute(f"select sum(score), count(*) from {arch}").fetchone() == total
        assert conn.execute(f"select count(*) from {arch} a join notes n using (id) "
                            f"where a.revision = '{rev_col}' and a.archived_at is not null"
                            ).fetchone() == (300,)
    # git follows the database: trailers, the migration file gone, the definition back
    message = git_log(repo)[0]
    for trailer in ("Schemactl-Action: rollback", f"Schemactl-Revision: {rev_table}",
                    f"Schemactl-Backup: {out['backup']['id']}", "Schemactl-Actor: user:7"):
        assert trailer in message
    assert not list((repo / "migrations/versions").glob(f"{rev_col}_*.py"))
    assert "score" not in (repo / "dynamic_schema/notes.yaml").read_text()
    assert _git(repo, "status", "--porcelain", "--", "dynamic_schema", "migrations") == ""
    st = api.status(repo, database_url=db.url)
    assert (st.db_revision, st.pending, st.drift) == (rev_table, [], [])
    assert api.validate(repo).ok
    with connect(db) as conn:
        action, status, details = conn.execute(
            "select action, status, details from audit_log order by created_at desc limit 1"
        ).fetchone()  # type: ignore[misc]
    assert (action, status) == ("rollback", "success")
    assert details["archived"] == out["archived"] and details["rolled_back"] == rev_col

    # the table itself: out of public, into the archive with every row
    res2 = api.rollback(repo, database_url=db.url, actor="user:7")
    assert res2.archived == [{"kind": "table", "from": "public.notes",
                              "to": f"schemactl_archive.notes__{rev_table}"}]
    assert _one(db, "select to_regclass('public.notes')") is None
    assert _one(db, f"select count(*) from schemactl_archive.notes__{rev_table}") == 300
    assert not (repo / "dynamic_schema/notes.yaml").exists()
    listed = {e["archive_table"]: e for e in api.archive_list(repo, db.url).entries}
    assert listed[arch]["source"] == "public.notes.score" and listed[arch]["rows"] == 300
    assert listed[arch]["revision"] == rev_col and listed[arch]["archived_at"]

    # re-proposing the same table works, and a second round trip does not collide
    assert _propose(repo, NOTES) == rev_table
    assert _apply(repo, db).applied == [rev_table]
    again = api.rollback(repo, database_url=db.url, actor="user:7")
    assert again.archived[0]["to"] == f"schemactl_archive.notes__{rev_table}_1"

    # the core schema's migration is never rolled back
    head = _git(repo, "rev-parse", "HEAD")
    core = cli("rollback", "--json", "--database-url", db.url, cwd=repo)
    assert core.code == 1, core
    assert core.json["error"]["code"] == "core_protected"
    assert _git(repo, "rev-parse", "HEAD") == head


def _catalog(db: Target) -> dict[str, Any]:
    """Columns of public and archive tables, indexes, and the archived values (no times)."""
    with connect(db) as conn:
        cols = conn.execute(
            "select table_schema, table_name, column_name, data_type from "
            "information_schema.columns where table_schema in ('public', 'schemactl_archive') "
            "and table_name not in ('audit_log', 'archive_registry') order by 1, 2, 3"
        ).fetchall()
        idx = conn.execute("select schemaname, tablename, indexname from pg_indexes where "
                           "schemaname in ('public', 'schemactl_archive') order by 1, 2, 3"
                           ).fetchall()
        tables = [r[0] for r in conn.execute(
            "select table_name from information_schema.tables where "
            "table_schema = 'schemactl_archive' and table_name <> 'archive_registry'")]
        values = {t: conn.execute(f'select id, score, revision from schemactl_archive."{t}" '
                                  "order by id").fetchall() for t in tables}
        reg = conn.execute("select revision, kind, source_table, source_column, archive_table, "
                           "row_count from schemactl_archive.archive_registry").fetchall()
        version = conn.execute("select version_num from alembic_version").fetchall()
    return {"columns": cols, "indexes": idx, "values": values, "registry": reg,
            "version": version}


def test_alembic_downgrade_matches_schemactl_rollback(repo: Path, db: Target, pg_server: Any,
                                                      ) -> None:
    from schemactl.adapters import migrator
    from schemactl.model.repo import SchemaRepo

    other = pg_server.create_database()
    try:
        _propose(repo, NOTES)
        _propose(repo, NOTES_V2)
        for target in (db, other):
            _apply(repo, target)
            _fill(target)
        engine = make_engine(other)
        try:
            with engine.connect() as connection:
                migrator.downgrade(SchemaRepo.open(repo), connection, "-1")
        finally:
            engine.dispose()
        api.rollback(repo, database_url=db.url, actor="user:test")
        assert _catalog(db) == _catalog(other)
    finally:
        pg_server.drop_database(other)


def test_restore_backup_refuses_new_writes_unless_forced(repo: Path, db: Target,
                                                         cli: Any) -> None:
    rev_table = _propose(repo, NOTES)
    _apply(repo, db)
    with connect(db) as conn:
        conn.execute("insert into notes (title) select 'n' || g from generate_series(1, 20) g")
    rev_col = _propose(repo, NOTES_V2)
    applied = _apply(repo, db)
    backup_id = applied.backup["id"]  # the dump taken before the column came
    with connect(db) as conn:
        conn.execute("insert into notes (title, score) values ('late', 5)")
    head = _git(repo, "rev-parse", "HEAD")

    refused = cli("rollback", "--restore-backup", backup_id, "--json", "--database-url",
                  db.url, cwd=repo)
    assert refused.code == 1, refused
    assert refused.json["error"]["code"] == "rows_written"
    assert _git(repo, "rev-parse", "HEAD") == head
    assert _one(db, "select version_num from alembic_version") == rev_col
    assert _one(db, "select count(*) from notes") == 21

    backups_before = {b["id"] for b in api.backups_list(repo).backups}
    forced = cli("rollback", "--restore-backup", backup_id, "--force", "--json",
                 "--database-url", db.url, cwd=repo)
    assert forced.code == 0, forced
    out = forced.json
    assert out["rolled_back"] == rev_col and out["restored_backup"] == backup_id
    fresh = out["backup"]["id"]
    assert fresh not in backups_before and Path(out["backup"]["path"]).is_file()
    # the database is back at the backup's revision, with the backup's rows ...
    assert _one(db, "select version_num from alembic_version") == rev_table
    assert _one(db, "select count(*) from notes") == 20
    assert _one(db, "select count(*) from information_schema.columns where "
                    "table_schema = 'public' and table_name = 'notes' and "
                    "column_name = 'score'") == 0
    # ... and the table as it was (with the late row) sits in the archive
    moved = out["archived"][0]["to"]
    assert out["archived"][0]["from"] == "public.notes"
    assert _one(db, f"select count(*) from {moved} where title = 'late'") == 1
    st = api.status(repo, database_url=db.url)
    assert (st.db_revision, st.pending, st.drift) == (rev_table, [], [])
    assert "score" not in (repo / "dynamic_schema/notes.yaml").read_text()


def test_to_must_be_a_known_ancestor(repo: Path, db: Target, cli: Any) -> None:
    _propose(repo, NOTES)
    _apply(repo, db)
    res = cli("rollback", "--to", "0009_deadbeef", "--json", "--database-url", db.url,
              cwd=repo)
    assert res.code == 2, res  # a revision migrations/ does not have is bad input
    assert res.json["error"]["code"] == "unknown_revision"
    assert "0001_core" in res.json["error"]["hint"]


def _journal_step(repo: Path) -> str | None:
    """The step the journal of a run in progress records (None: no run)."""
    import json

    for path in (repo / ".schemactl").glob("journal-*.json"):
        try:
            return str(json.loads(path.read_text())["step"])
        except (ValueError, KeyError, FileNotFoundError):
            return None
    return None


def test_rollback_killed_after_downgrade_is_finished_by_the_next_run(
        repo: Path, db: Target, cli: Any) -> None:
    """kill -9 between the downgrade and the commit: git still ends up following the database."""
    import os
    import signal
    import sys
    import time

    _propose(repo, NOTES)
    assert _apply(repo, db).ok
    rev = _propose(repo, NOTES_V2)
    assert _apply(repo, db).ok
    total, count = _fill(db)
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "SCHEMACTL_DATABASE_URL", "SCHEMACTL_ACTOR")}
    env.update(SCHEMACTL_TEST_PAUSE_AT="upgraded", SCHEMACTL_TEST_PAUSE_SECONDS="60")
    proc = subprocess.Popen([sys.executable, "-m", "schemactl.cli", "rollback", "--json",
                             "--database-url", db.url], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # The pause hook holds the run at `upgraded`, right after the downgrade.
            if _journal_step(repo) == "upgraded":
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the rollback never reached the journal step `upgraded`")
        assert _one(db, "select version_num from alembic_version") != rev
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    # The database is back, git not yet: the migration file is still there.
    assert any(p.name.startswith(rev) for p in (repo / "migrations" / "versions").glob("*.py"))
    st = cli("status", "--json", "--database-url", db.url, cwd=repo)
    assert st.code == 0 and st.json.get("interrupted"), st
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert res.code == 0, res
    assert not any(p.name.startswith(rev)
                   for p in (repo / "migrations" / "versions").glob("*.py"))
    assert "score" not in (repo / "dynamic_schema" / "notes.yaml").read_text()
    assert _git(repo, "status", "--porcelain") == ""
    assert "Schemactl-Action: rollback" in git_log(repo)[0]
    after = cli("status", "--json", "--database-url", db.url, cwd=repo).json
    assert after["pending"] == [] and after["drift"] == []
    archived = _one(db, "select archive_table from schemactl_archive.archive_registry "
                        "where kind = 'column'")
    assert _one(db, f"select sum(score) from schemactl_archive.{archived}") == total
    assert _one(db, "select count(*) from notes") == count


def test_rollback_to_goes_one_recorded_step_at_a_time_and_never_cuts_a_value(
        repo: Path, db: Target, cli: Any) -> None:
    rev1 = _propose(repo, NOTES)
    _apply(repo, db)
    rev2 = _propose(repo, NOTES_V2)  # a column with values and a concurrent index
    _apply(repo, db)
    wide = NOTES_V2.replace("varchar(200)", "varchar(400)")
    rev3 = _propose(repo, wide)
    _apply(repo, db)
    rev4 = _propose(repo, wide.replace("comment: Notes", "comment: Notes v2"))
    _apply(repo, db)
    total = _fill(db)
    with connect(db) as conn:
        conn.execute("update notes set title = repeat('x', 300) where title = 'n1'")
    commits = len(git_log(repo))

    # rev4 goes back; rev3 cannot: a title written since does not fit varchar(200)
    res = cli("rollback", "--to", rev1, "--json", "--database-url", db.url, cwd=repo)
    assert res.code == 3, res
    err = res.json["error"]
    assert err["code"] == "rollback_data_conflict"
    assert err["message"].startswith(f"rolled back {rev4} (the database is at {rev3}), then: "
                                     f"rolling back {rev3} failed: value too long")
    assert [s["rolled_back"] for s in err["details"]["done"]] == [rev4]
    assert _one(db, "select version_num from alembic_version") == rev3
    assert _one(db, "select count(*) from notes where length(title) = 300") == 1
    assert len(git_log(repo)) == commits + 1

    with connect(db) as conn:
        conn.execute("update notes set title = 'n1' where length(title) = 300")
    res = cli("rollback", "--to", rev1, "--json", "--database-url", db.url, cwd=repo)
    assert res.code == 0, res
    steps = res.json["steps"]
    assert [s["rolled_back"] for s in steps] == [rev3, rev2]
    assert steps[-1]["revision"] == rev1 == res.json["revision"]
    # each step has its own backup, audit entry and commit
    assert len({s["backup"]["id"] for s in steps}) == len({s["commit"] for s in steps}) == 2
    assert len({s["audit_id"] for s in steps}) == 2
    log = git_log(repo)
    assert len(log) == commits + 3 and all("Schemactl-Action: rollback" in m for m in log[:3])
    # files and definitions are as they were at rev1; the archive holds every value
    assert (repo / "dynamic_schema/notes.yaml").read_text() == NOTES
    assert sorted(p.name.split("_")[1] for p in (repo / "migrations/versions").glob("*.py")
                  ) == sorted(["core", rev1.split("_")[1]])
    st = api.status(repo, database_url=db.url)
    assert (st.db_revision, st.pending, st.drift) == (rev1, [], [])
    arch = res.json["archived"][0]["to"]
    assert _one(db, f"select sum(score) from {arch}") == total[0]
    assert _propose(repo, NOTES_V2) and _apply(repo, db).ok
