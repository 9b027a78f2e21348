"""Online changes against a real PostgreSQL: rename, retype, NOT NULL with backfill.

Each test fills a ~20k-row table, proposes the marked change, applies it and checks every
value by checksum; the 1M-row runs under pgbench load are scripts/bench_online.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from schemactl import api
from schemactl.adapters.database import Target, connect

ROWS = 20_000

BASE = """  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
"""
V1 = "table: notes\ncolumns:\n" + BASE + """  - {name: title, type: varchar(200)}
  - {name: score, type: integer}
  - {name: body, type: text}
"""


def v2(title: str = "{name: title, type: varchar(200)}",
       score: str = "{name: score, type: integer}",
       body: str = "{name: body, type: text}") -> str:
    return "table: notes\ncolumns:\n" + BASE + f"  - {title}\n  - {score}\n  - {body}\n"


def fill(db: Target, rows: int = ROWS) -> None:
    with connect(db) as conn:
        conn.execute(
            "INSERT INTO notes (title, score, body) SELECT 'title ' || g, g * 7, "
            "CASE WHEN g %% 10 = 0 THEN NULL ELSE 'body ' || g END "
            "FROM generate_series(1, %s) g", (rows,))
        conn.commit()


def checksum(db: Target, *cols: str) -> str:
    exprs = " || '|' || ".join(f"coalesce({c}::text, '<null>')" for c in cols)
    with connect(db) as conn:
        row = conn.execute(f"SELECT md5(string_agg({exprs}, ',' ORDER BY id)) FROM notes"
                           ).fetchone()
    assert row is not None
    return str(row[0])


def columns(db: Target) -> dict[str, tuple[str, bool]]:
    with connect(db) as conn:
        rows = conn.execute(
            "SELECT column_name, format_type(a.atttypid, a.atttypmod), c.is_nullable = 'YES' "
            "FROM information_schema.columns c JOIN pg_attribute a ON a.attrelid = "
            "'public.notes'::regclass AND a.attname = c.column_name "
            "WHERE c.table_schema = 'public' AND c.table_name = 'notes'").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def setup(repo: Path, db: Target) -> None:
    api.propose(repo, stdin=V1, actor="user:test")
    api.apply(repo, database_url=db.url, actor="user:test")
    fill(db)


def propose_apply(repo: Path, db: Target, text: str, **kw: Any) -> Any:
    res = api.propose(repo, stdin=text, actor="user:test")
    assert res.ok, res
    return api.apply(repo, database_url=db.url, actor="user:test", **kw)


def test_integer_to_bigint_keeps_every_value(repo: Path, db: Target) -> None:
    setup(repo, db)
    before = checksum(db, "score")
    seen: list[tuple[str, int, int | None]] = []
    result = propose_apply(repo, db, v2(score="{name: score, type: bigint}"),
                           progress=lambda s, d, t: seen.append((s, d, t)))
    assert result.ok
    assert columns(db)["score"] == ("bigint", True)
    assert checksum(db, "score") == before
    assert not any(c.startswith("_sc_") for c in columns(db))
    assert any(s.startswith("backfill notes.score") and d == ROWS for s, d, _ in seen)
    with connect(db) as conn:
        archived = conn.execute("SELECT row_count FROM schemactl_archive.archive_registry "
                                "WHERE source_column = 'score'").fetchone()
    assert archived == (ROWS,)
    with connect(db) as conn:
        online = conn.execute("SELECT details->'online' FROM audit_log WHERE action = 'apply' "
                              "ORDER BY created_at DESC LIMIT 1").fetchone()
    assert online is not None
    steps = {s["step"]: s["rows_backfilled"] for s in online[0]}
    assert steps == {"expand": 0, "backfill": ROWS, "contract": ROWS, "archive": ROWS}


def _small_batches(repo: Path, rows: int = 2000, pause_ms: int = 0) -> None:
    import re
    import subprocess

    cfg = repo / "schemactl.toml"
    text = re.sub(r"(?m)^batch_rows = \d+$", f"batch_rows = {rows}", cfg.read_text())
    text = re.sub(r"(?m)^pause_ms = \d+$", f"pause_ms = {pause_ms}", text)
    assert f"batch_rows = {rows}" in text
    cfg.write_text(text)

    subprocess.run(["git", "-C", str(repo), "commit", "-qam", "online batches"], check=True)


def test_rename_keeps_old_and_new_names_in_step_until_contract(repo: Path, db: Target) -> None:
    setup(repo, db)
    _small_batches(repo)
    before = checksum(db, "title")
    during: list[tuple[Any, ...]] = []

    def mid_backfill(step: str, done: int, total: int | None) -> None:
        if not step.startswith("backfill") or during:
            return
        with connect(db) as conn:  # an old writer, a new writer, an old reader
            conn.execute("INSERT INTO notes (id, title) VALUES "
                         "('00000000-0000-0000-0000-000000000001', 'by old name')")
            conn.execute("INSERT INTO notes (id, headline) VALUES "
                         "('00000000-0000-0000-0000-000000000002', 'by new name')")
            conn.execute("UPDATE notes SET headline = 'renamed too' WHERE id = "
                         "'00000000-0000-0000-0000-000000000001'")
            during.append(conn.execute(
                "SELECT title, headline FROM notes WHERE id IN ("
                "'00000000-0000-0000-0000-000000000001', "
                "'00000000-0000-0000-0000-000000000002') ORDER BY id").fetchall())
            during.append(conn.execute("SELECT count(title) FROM notes").fetchone())
            conn.execute("DELETE FROM notes WHERE id IN ('00000000-0000-0000-0000-000000000001',"
                         " '00000000-0000-0000-0000-000000000002')")
            conn.commit()

    result = propose_apply(repo, db, v2(
        title="{name: headline, type: varchar(200), renamed_from: title}"),
        progress=mid_backfill)
    assert result.ok
    assert during[0] == [("renamed too", "renamed too"), ("by new name", "by new name")]
    assert during[1] == (ROWS + 2,)
    cols = columns(db)
    assert "title" not in cols and cols["headline"] == ("character varying(200)", True)
    assert checksum(db, "headline") == before
    status = api.status(repo, database_url=db.url)
    assert not status.drift


def test_varchar_narrowing_when_values_fit_and_refused_when_one_does_not(
        repo: Path, db: Target) -> None:
    setup(repo, db)
    before = checksum(db, "title")
    with connect(db) as conn:
        conn.execute("UPDATE notes SET title = repeat('x', 150) WHERE id = "
                     "(SELECT id FROM notes ORDER BY id LIMIT 1)")
        conn.commit()
        long_id = str(conn.execute("SELECT id FROM notes ORDER BY id LIMIT 1").fetchone()[0])
    with_long = checksum(db, "title")
    res = api.propose(repo, stdin=v2(title="{name: title, type: varchar(100)}"),
                      actor="user:test")
    assert res.ok
    from schemactl.errors import SchemactlError

    with pytest.raises(SchemactlError) as err:
        api.apply(repo, database_url=db.url, actor="user:test")
    assert long_id in err.value.message and "stopped before the contract" in err.value.message
    assert columns(db)["title"] == ("character varying(200)", True)
    assert set(columns(db)) == {"id", "created_at", "updated_at", "is_deleted", "created_by",
                                "title", "score", "body"}
    assert checksum(db, "title") == with_long
    with connect(db) as conn:  # make it fit; the next apply converges
        conn.execute("UPDATE notes SET title = 'title 0' WHERE id = %s", (long_id,))
        conn.commit()
    fitted = checksum(db, "title")
    assert fitted != before
    result = api.apply(repo, database_url=db.url, actor="user:test")
    assert result.ok
    assert columns(db)["title"] == ("character varying(100)", True)
    assert checksum(db, "title") == fitted


def test_not_null_with_backfill_then_rollback_restores_the_nulls(repo: Path, db: Target) -> None:
    setup(repo, db)
    before = checksum(db, "body")
    result = propose_apply(repo, db, v2(body="{name: body, type: text, nullable: false, "
                                              "backfill: ''}"))
    assert result.ok
    assert columns(db)["body"] == ("text", False)
    with connect(db) as conn:
        empty = conn.execute("SELECT count(*) FROM notes WHERE body = ''").fetchone()
    assert empty == (ROWS // 10,)
    back = api.rollback(repo, database_url=db.url, actor="user:test")
    assert back.ok
    assert columns(db)["body"] == ("text", True)
    assert checksum(db, "body") == before


def test_rollback_after_contract_of_a_rename_and_a_retype(repo: Path, db: Target) -> None:
    setup(repo, db)
    before = checksum(db, "title", "score")
    assert propose_apply(repo, db, v2(
        title="{name: headline, type: varchar(200), renamed_from: title}",
        score="{name: score, type: bigint}")).ok
    assert checksum(db, "headline", "score") == before
    assert api.rollback(repo, database_url=db.url, actor="user:test").ok
    cols = columns(db)
    assert cols["title"] == ("character varying(200)", True) and "headline" not in cols
    assert cols["score"] == ("integer", True)
    assert checksum(db, "title", "score") == before
    assert not any(c.startswith("_sc_") for c in cols)


def test_check_accepts_a_proposed_online_change_and_refuses_a_hand_written_one(
        repo: Path, db: Target) -> None:
    import subprocess

    from tests.test_check import HAND_WRITTEN, codes, commit_all, head_revision

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    api.propose(repo, stdin=V1, actor="user:test")
    git("branch", "base")
    git("checkout", "-q", "-b", "pr")
    api.propose(repo, stdin=v2(title="{name: headline, type: varchar(200), renamed_from: title}",
                               score="{name: score, type: bigint}",
                               body="{name: body, type: text, nullable: false, backfill: ''}"),
                actor="user:test")
    result = api.check(repo, base="base", database_url=db.url)
    data = result.to_json()
    assert data["ok"] and data["violations"] == [], data["violations"]
    assert data["round_trip"]["ok"], data["round_trip"]

    git("checkout", "-q", "-b", "hand", "base")
    path = repo / "dynamic_schema" / "notes.yaml"
    path.write_text(path.read_text().replace("{name: score, type: integer}",
                                             "{name: score, type: bigint}"))
    body = ('    op.alter_column("notes", "score", existing_type=sa.Integer(), '
            'type_=sa.BigInteger())')
    (repo / "migrations" / "versions" / "0003_hand.py").write_text(
        HAND_WRITTEN.format(rev="0003_hand", down=head_revision(repo), body=body))
    commit_all(repo, "score bigint, by hand")
    assert "SC504" in codes(api.check(repo, base="base"))


def _progress_row(db: Target) -> tuple[str, int] | None:
    with connect(db) as conn:
        if conn.execute("SELECT to_regclass('schemactl_archive.online_progress')"
                        ).fetchone() == (None,):
            return None
        row = conn.execute("SELECT step, rows_done FROM schemactl_archive.online_progress"
                           ).fetchone()
    return (str(row[0]), int(row[1])) if row else None


def _apply_killed_mid_backfill(repo: Path, db: Target, kill: Any = None) -> None:
    """Start `apply` in a process; once 2000 rows are backfilled, kill -9 it (or ``kill()``)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "schemactl.cli", "--database-url", db.url,
                             "--actor", "user:test", "apply"], cwd=repo,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={k: v for k, v in os.environ.items()
                                 if k not in ("DATABASE_URL", "SCHEMACTL_DATABASE_URL")})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            row = _progress_row(db)
            if row is not None and row[0] == "backfill" and row[1] >= 2000:
                break
            assert proc.poll() is None, "the apply ended before it could be killed"
            time.sleep(0.02)
        else:
            raise AssertionError("the backfill never started")
        if kill is not None:
            kill()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_kill_9_mid_backfill_then_apply_resumes_and_rollback_from_there(
        repo: Path, db: Target) -> None:
    setup(repo, db)
    _small_batches(repo, rows=500, pause_ms=15)
    before = checksum(db, "score")
    assert api.propose(repo, stdin=v2(score="{name: score, type: bigint}"),
                       actor="user:test").ok
    _apply_killed_mid_backfill(repo, db)
    step, done = _progress_row(db) or ("", 0)
    assert step == "backfill" and 2000 <= done < ROWS
    assert columns(db)["score"] == ("integer", True)  # the old shape still serves
    status = api.status(repo, database_url=db.url)
    assert not status.drift, status.drift
    assert [(o["table"], o["column"], o["step"]) for o in status.online] == [
        ("notes", "score", "backfill")]
    assert "apply resumes it" in status.message
    result = api.apply(repo, database_url=db.url, actor="user:test")
    assert result.ok, result
    assert _progress_row(db) == ("done", ROWS)  # every row once: none skipped, none twice
    assert columns(db)["score"] == ("bigint", True)
    assert checksum(db, "score") == before


@pytest.mark.slow
def test_server_crash_mid_backfill_loses_batches_and_progress_together(
        repo: Path, tmp_path: Path) -> None:
    """Backfill batches commit without waiting for their WAL flush: a server crash may lose
    the last ones, but each with its progress row, so the next apply redoes exactly those."""
    from schemactl.adapters.embedded import EmbeddedServer

    server = EmbeddedServer(tmp_path / "crash" / ".schemactl")  # durable, as a user's
    server.start()
    try:
        admin = Target(server.secret_url(), embedded=True)
        with connect(admin) as conn:
            conn.execute("CREATE DATABASE crash")
        db = admin.with_database("crash")
        setup(repo, db)
        _small_batches(repo, rows=500, pause_ms=15)
        before = checksum(db, "score")
        assert api.propose(repo, stdin=v2(score="{name: score, type: bigint}"),
                           actor="user:test").ok
        _apply_killed_mid_backfill(repo, db, kill=lambda: server.stop("immediate"))
        server.start()
        db = Target(server.secret_url(), embedded=True).with_database("crash")  # a new port
        step, done = _progress_row(db) or ("", 0)
        assert step == "backfill" and done < ROWS
        result = api.apply(repo, database_url=db.url, actor="user:test")
        assert result.ok, result
        assert _progress_row(db) == ("done", ROWS)  # the lost tail redone once, none skipped
        assert columns(db)["score"] == ("bigint", True)
        assert checksum(db, "score") == before
    finally:
        server.stop()


@pytest.mark.slow
def test_kill_9_mid_backfill_of_a_rename_then_rollback_returns_the_old_shape(
        repo: Path, db: Target) -> None:
    setup(repo, db)
    _small_batches(repo, rows=500, pause_ms=15)
    before = checksum(db, "title")
    assert api.propose(repo, stdin=v2(
        title="{name: headline, type: varchar(200), renamed_from: title}"),
        actor="user:test").ok
    _apply_killed_mid_backfill(repo, db)
    assert "headline" in columns(db)
    back = api.rollback(repo, database_url=db.url, actor="user:test")
    assert back.ok and "stopped the online change" in back.message, back
    cols = columns(db)
    assert "headline" not in cols and cols["title"] == ("character varying(200)", True)
    assert checksum(db, "title") == before
    with connect(db) as conn:
        triggers = conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = "
                                "'public.notes'::regclass AND NOT tgisinternal").fetchone()
        audited = conn.execute("SELECT details->'online_aborted'->>'rows_backfilled' FROM "
                               "audit_log WHERE details ? 'online_aborted'").fetchone()
    assert triggers == (0,)
    assert audited is not None and int(audited[0]) >= 2000
    # the proposal is pending again: the next apply does the whole change
    assert api.apply(repo, database_url=db.url, actor="user:test").ok
    assert checksum(db, "headline") == before


def test_plan_and_dry_run_show_the_steps_with_their_locks(repo: Path, db: Target) -> None:
    setup(repo, db)
    text = v2(body="{name: body, type: text, nullable: false, backfill: ''}")
    dry = api.propose(repo, stdin=text, actor="user:test", dry_run=True)
    assert dry.ok and dry.online_steps
    words = "\n".join(dry.online_steps)
    for step in ("expand", "backfill", "validate", "contract", "archive"):
        assert step in words
    assert "ACCESS EXCLUSIVE for milliseconds" in words and "resumable after kill -9" in words
    assert api.propose(repo, stdin=text, actor="user:test").ok
    plan = api.plan(repo, database_url=db.url)
    assert [s.split(" of ")[0] for s in plan.steps] == [
        "online step expand", "online step backfill", "online step validate",
        "online step contract", "online step archive"]
    assert all("[lock: " in s for s in plan.steps)
    assert "VALIDATE CONSTRAINT" in plan.sql and "SET NOT NULL" in plan.sql


def _not_null_names(db: Target) -> tuple[int, set[str]]:
    """The server's major version and the names of its NOT NULL constraints on notes (18
    names them in pg_constraint; 15 has none)."""
    with connect(db) as conn:
        major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000  # type: ignore[index]
        rows = conn.execute("SELECT conname FROM pg_constraint WHERE conrelid = "
                            "'public.notes'::regclass AND contype::text = 'n'").fetchall()
    return major, {r[0] for r in rows}


def test_swap_of_a_not_null_column_keeps_the_not_null_names_a_fresh_table_has(
        repo: Path, db: Target) -> None:
    tight = v2(score="{name: score, type: integer, nullable: false, default: 0}",
               title="{name: title, type: varchar(200), nullable: false, default: ''}")
    assert propose_apply(repo, db, tight).ok
    fill(db, 200)
    major, fresh = _not_null_names(db)
    canonical = {f"notes_{c}_not_null" for c in
                 ("id", "created_at", "updated_at", "is_deleted", "title", "score")}
    assert fresh == (canonical if major >= 18 else set())
    before = checksum(db, "title", "score")

    wide = v2(score="{name: score, type: bigint, nullable: false, default: 0}",
              title="{name: headline, type: varchar(200), nullable: false, default: '', "
                    "renamed_from: title}")
    assert propose_apply(repo, db, wide).ok
    renamed = canonical - {"notes_title_not_null"} | {"notes_headline_not_null"}
    assert _not_null_names(db)[1] == (renamed if major >= 18 else set())
    assert columns(db)["score"] == ("bigint", False) and columns(db)["headline"][1] is False
    assert checksum(db, "headline", "score") == before
    assert api.status(repo, database_url=db.url).drift == []

    assert api.rollback(repo, database_url=db.url, actor="user:test").ok
    assert _not_null_names(db)[1] == fresh
    assert columns(db)["score"] == ("integer", False)
    assert checksum(db, "title", "score") == before
