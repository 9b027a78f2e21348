"""Issue 5: the apply pipeline, against a real PostgreSQL with real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from schemactl.adapters.database import Target, connect
from schemactl.pipeline.locking import APPLY_KEY
from tests.apply_helpers import (
    add_column,
    add_index,
    add_notes,
    audit_lines,
    audit_rows,
    columns_of,
    git,
    idle_in_transaction,
    insert_notes,
    notes_fingerprint,
    revision_of,
    set_apply_config,
)
from tests.conftest import git_log


def _password(target: Target) -> str:
    from urllib.parse import unquote, urlsplit

    pw = urlsplit(target.url).password
    assert pw, "these tests need a password-bearing URL"
    return unquote(pw)


def _popen(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "SCHEMACTL_DATABASE_URL", "SCHEMACTL_ACTOR")}
    full.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "schemactl.cli", *args], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full)


def _apply_core_and_notes(repo: Path, db: Target, cli, rows: int = 0) -> None:  # type: ignore[no-untyped-def]
    add_notes(repo)
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert res.code == 0, res
    if rows:
        insert_notes(db, rows)


def test_apply_backs_up_audits_and_commits(repo: Path, db: Target, cli) -> None:  # type: ignore[no-untyped-def]
    add_notes(repo)
    head_before = git(repo, "rev-parse", "HEAD").strip()
    res = cli("apply", "--json", "--database-url", db.url, "--actor", "user:42", cwd=repo)
    assert res.code == 0, res
    out = res.json
    assert out["applied"] == ["0001_core", "0002_notes"]
    assert out["revision"] == "0002_notes" == revision_of(db)
    assert set(out["backup"]) >= {"id", "path", "sha256"} and Path(out["backup"]["path"]).is_file()
    # The audit row committed in the same transaction as the last migration.
    assert out["audit_row"] == "in_transaction"
    rows = audit_rows(db)
    assert len(rows) == 1
    row = rows[0]
    assert (row["action"], row["actor"], row["status"]) == ("apply", "user:42", "success")
    details = row["details"]
    assert isinstance(details, dict)
    assert details["revision"] == "0002_notes" and details["revision_before"] is None
    assert details["revisions"] == ["0001_core", "0002_notes"]
    assert details["backup_id"] == out["backup"]["id"]
    assert row["git_commit"] == head_before  # the commit whose migrations were applied
    lines = audit_lines(repo)
    assert len(lines) == 1 and lines[0]["id"] == out["audit_id"]
    # Git: one commit of the audit file with a readable subject and the trailers.
    assert out["commit"] == git(repo, "rev-parse", "HEAD").strip()
    msg = git_log(repo)[0]
    assert msg.startswith(f"apply: 0001_core, 0002_notes → {db.database}")
    for trailer in ("Schemactl-Action: apply", "Schemactl-Revision: 0002_notes",
                    f"Schemactl-Backup: {out['backup']['id']}", "Schemactl-Actor: user:42"):
        assert trailer in msg
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["audit.jsonl"]
    # History reads the entry back.
    hist = cli("history", "--json", "--database-url", db.url, cwd=repo)
    assert hist.code == 0, hist
    entry = hist.json["entries"][0]
    assert {k: entry[k] for k in ("action", "actor", "revision", "git_commit", "status")} == {
        "action": "apply", "actor": "user:42", "revision": "0002_notes",
        "git_commit": head_before, "status": "success"}
    assert entry["created_at"]
    # Applying again applies nothing, audits nothing, commits nothing.
    again = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert again.code == 0 and again.json["applied"] == [], again
    assert len(audit_rows(db)) == 1 and len(git_log(repo)) == len(git_log(repo))
    assert out["commit"] == git(repo, "rev-parse", "HEAD").strip()
    # The password is nowhere: output, audit rows and lines, manifests, commits, journal.
    secret = _password(db)
    manifest = Path(out["backup"]["path"]).with_suffix(".json").read_text()
    blobs = [res.stdout, res.stderr, hist.stdout, json.dumps(rows, default=str),
             (repo / "audit.jsonl").read_text(), manifest, "\n".join(git_log(repo))]
    for blob in blobs:
        assert secret not in blob
    assert json.loads(manifest)["database"] == db.display


def test_status_shows_drift_and_apply_refuses_it(repo: Path, db: Target, cli) -> None:  # type: ignore[no-untyped-def]
    _apply_core_and_notes(repo, db, cli, rows=3)
    with connect(db) as conn:
        conn.execute("alter table notes add column sneaky integer")
        conn.execute("create table unmanaged (id int)")
    add_column(repo, "0003_tags", "0002_notes", "tags")
    backups_before = sorted((repo / ".schemactl" / "backups").glob("*.dump"))
    head = git(repo, "rev-parse", "HEAD").strip()
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert res.code == 4, res
    err = res.json["error"]
    assert err["code"] == "drift"
    kinds = {(d["kind"], d["table"], d.get("column")) for d in err["details"]["drift"]}
    assert ("extra_column", "notes", "sneaky") in kinds
    assert ("extra_table", "unmanaged", None) in kinds
    # Nothing was touched: no backup, no migration, the unknown objects are still there.
    assert sorted((repo / ".schemactl" / "backups").glob("*.dump")) == backups_before
    assert revision_of(db) == "0002_notes"
    assert "sneaky" in [c[0] for c in columns_of(db, "notes")]
    assert columns_of(db, "unmanaged")
    assert git(repo, "rev-parse", "HEAD").strip() == head
    st = cli("status", "--json", "--database-url", db.url, cwd=repo)
    assert st.code == 0, st
    assert st.json["message"].startswith("drifted from git"), st
    assert {(d["kind"], d["table"]) for d in st.json["drift"]} >= {
        ("extra_column", "notes"), ("extra_table", "unmanaged")}


def test_unmanaged_table_is_reported_never_blocks_nor_touched(repo: Path, db: Target, cli) -> None:  # type: ignore[no-untyped-def]
    _apply_core_and_notes(repo, db, cli)
    with connect(db) as conn:  # the application's own table, which schemactl does not manage
        conn.execute("create table app_owned (id int primary key)")
        conn.execute("insert into app_owned values (1), (2)")
    add_column(repo, "0003_tags", "0002_notes", "tags")
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert res.code == 0, res
    assert res.json["applied"] == ["0003_tags"] and res.json["unmanaged"] == ["app_owned"]
    with connect(db) as conn:
        assert conn.execute("select count(*) from app_owned").fetchone() == (2,)
    human = cli("status", "--database-url", db.url, cwd=repo)
    assert human.code == 0 and "app_owned" in human.stdout, human


def test_journal_of_an_embedded_database_is_found_again(repo: Path, db: Target) -> None:
    """The embedded server's port changes between starts: its journal is keyed without it."""
    from schemactl.model.repo import SchemaRepo
    from schemactl.pipeline import journal, runner

    sr, target = SchemaRepo.open(repo), Target(db.url, embedded=True)
    journal.new(sr, key=journal.key_of(target), id="run-1", action="apply",
                database=target.display, actor="user:t", revision_before=None,
                revision_target="0002_notes", revisions=["0002_notes"], git_commit=None,
                git_branch=None)
    found = journal.load(sr, journal.key_of(target))
    assert found is not None and found.id == "run-1"
    assert "apply of 0002_notes in progress" in (runner.pipeline_state(sr, target) or "")
    journal.clear(sr, journal.key_of(target))
    assert not list(sr.state_dir.glob("journal-*.json"))


def test_lock_held_by_another_apply_is_exit_4_naming_it(repo: Path, db: Target, cli) -> None:  # type: ignore[no-untyped-def]
    add_notes(repo)
    with psycopg.connect(db.url, autocommit=True,
                         application_name="schemactl apply user:other") as holder:
        holder.execute("select pg_advisory_lock(%s)", (APPLY_KEY,))
        res = cli("apply", "--json", "--database-url", db.url, cwd=repo)
        assert res.code == 4, res
        assert res.json["error"]["code"] == "locked"
        assert "user:other" in res.json["error"]["message"]
        assert res.json["error"]["details"]["holders"][0]["pid"] == holder.info.backend_pid
        start = time.monotonic()
        waited = cli("apply", "--wait", "1", "--database-url", db.url, cwd=repo)
        assert waited.code == 4, waited
        assert time.monotonic() - start >= 1
        assert "user:other" in waited.stderr and "Traceback" not in waited.stderr
    assert revision_of(db) is None
    res = cli("apply", "--json", "--wait", "--database-url", db.url, cwd=repo)
    assert res.code == 0 and res.json["revision"] == "0002_notes", res


def test_lock_timeout_gives_up_unchanged_then_succeeds(repo: Path, db: Target, cli) -> None:  # type: ignore[no-untyped-def]
    set_apply_config(repo, lock_timeout_ms=200, lock_retries=3, retry_backoff_ms=100)
    _apply_core_and_notes(repo, db, cli, rows=50)
    add_column(repo, "0003_tags", "0002_notes", "tags")
    head = git(repo, "rev-parse", "HEAD").strip()
    fingerprint = notes_fingerprint(db)
    columns = columns_of(db, "notes")
    holder = psycopg.connect(db.url)
    try:
        holder.execute("lock table notes in access share mode")  # held for up to 20 s
        holder.execute("select 1")
        start = time.monotonic()
        res = cli("apply", "--json", "--database-url", db.url, cwd=repo, timeout=20)
        took = time.monotonic() - start
        assert res.code == 3, res
        assert res.json["error"]["code"] == "lock_timeout"
        assert res.json["error"]["details"]["attempts"] == 3
        # 3 × 200 ms + 100 + 200 ms of backoff, plus process start, drift check and backup.
        assert took < 12, took
        assert revision_of(db) == "0002_notes"
        assert columns_of(db, "notes") == columns
        assert git(repo, "rev-parse", "HEAD").strip() == head
        assert git(repo, "status", "--porcelain") == ""
        failed = [r for r in audit_rows(db) if r["status"] == "failed"]
        assert len(failed) == 1 and "lock" in str(failed[0]["details"])
        hist = cli("history", "--database-url", db.url, cwd=repo, env={"COLUMNS": "200"})
        assert "apply gave up: a lock was not granted" in hist.stdout, hist  # the reason shows
    finally:
        holder.rollback()
        holder.close()
    assert notes_fingerprint(db) == fingerprint
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert res.code == 0 and res.json["applied"] == ["0003_tags"], res
    assert notes_fingerprint(db) == fingerprint


def test_failed_concurrent_index_build_is_removed(repo: Path, db: Target, cli) -> None:  # type: ignore[no-untyped-def]
    set_apply_config(repo, lock_timeout_ms=300, lock_retries=2, retry_backoff_ms=50)
    _apply_core_and_notes(repo, db, cli, rows=20)
    add_index(repo, "0003_ix_body", "0002_notes", "body")
    holder = psycopg.connect(db.url)
    try:
        # An open transaction writing notes: CREATE INDEX CONCURRENTLY waits for it, times out
        # and leaves an invalid index behind.
        holder.execute("insert into notes (body) values ('in flight')")
        res = cli("apply", "--json", "--database-url", db.url, cwd=repo, timeout=30)
    finally:
        holder.rollback()
        holder.close()
    assert res.code == 3, res
    # DROP INDEX CONCURRENTLY waits for the same transaction, so the invalid index may have
    # to wait for the next apply; it must never be taken for a built index.
    assert res.json["error"]["code"] in ("lock_timeout", "invalid_index_left")
    assert revision_of(db) == "0002_notes"
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert res.code == 0 and res.json["applied"] == ["0003_ix_body"], res
    with connect(db) as conn:
        idx = conn.execute("select indexrelid::regclass::text, indisvalid from pg_index "
                           "where indrelid = 'notes'::regclass order by 1").fetchall()
    assert [tuple(r) for r in idx] == [("ix_notes_body", True), ("pk_notes", True)]


def test_three_applies_at_once_apply_once(repo: Path, db: Target, cli) -> None:  # type: ignore[no-untyped-def]
    _apply_core_and_notes(repo, db, cli)
    add_column(repo, "0003_tags", "0002_notes", "tags")
    # The winner sleeps 2 s after taking the lock, so the three really overlap.
    env = {"SCHEMACTL_TEST_PAUSE_AT": "locked", "SCHEMACTL_TEST_PAUSE_SECONDS": "2"}
    procs = [_popen(repo, "apply", "--json", "--database-url", db.url, env=env),
             _popen(repo, "apply", "--json", "--database-url", db.url, env=env),
             _popen(repo, "apply", "--json", "--wait", "60", "--database-url", db.url, env=env)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read())  # type: ignore[union-attr]
               for p in procs]
    outs = [(code, json.loads(stdout)) for code, stdout, _ in results]
    winners = [o for code, o in outs if code == 0 and o["applied"] == ["0003_tags"]]
    assert len(winners) == 1, results
    for code, o in outs:
        if o is winners[0]:
            continue
        assert (code == 4 and o["error"]["code"] == "locked") or \
            (code == 0 and o["applied"] == []), results
    tags = [r for r in audit_rows(db) if r["details"]["revision"] == "0003_tags"]  # type: ignore[index]
    assert len(tags) == 1
    assert len([ln for ln in audit_lines(repo) if ln["revision"] == "0003_tags"]) == 1


def _wait_for(cond, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached")


def _journal_step(repo: Path) -> str | None:
    for path in (repo / ".schemactl").glob("journal-*.json"):
        try:
            return str(json.loads(path.read_text())["step"])
        except (ValueError, KeyError, FileNotFoundError):
            return None
    return None


@pytest.mark.slow
@pytest.mark.parametrize("step", ["dump", "migration", "upgraded"])
def test_kill_9_then_next_apply_completes(repo: Path, db: Target, cli, step: str) -> None:  # type: ignore[no-untyped-def]
    _apply_core_and_notes(repo, db, cli, rows=500)
    add_column(repo, "0003_tags", "0002_notes", "tags")
    add_column(repo, "0004_mood", "0003_tags", "mood")
    fingerprint = notes_fingerprint(db)
    proc = _popen(repo, "apply", "--json", "--database-url", db.url,
                  env={"SCHEMACTL_TEST_PAUSE_AT": step, "SCHEMACTL_TEST_PAUSE_SECONDS": "60"})
    backups = repo / ".schemactl" / "backups"
    try:
        if step == "dump":
            _wait_for(lambda: any(p.stat().st_size > 0 for p in backups.glob("*.partial")))
        elif step == "migration":
            # 0003 committed, 0004's DDL done and its transaction still open.
            _wait_for(lambda: revision_of(db) == "0003_tags")
            _wait_for(lambda: idle_in_transaction(db))
        else:
            _wait_for(lambda: _journal_step(repo) == "upgraded")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    st = cli("status", "--json", "--database-url", db.url, cwd=repo)
    assert st.code == 0, st
    expected = {"dump": "interrupted during backup", "migration": "interrupted during the upgrade",
                "upgraded": "applied, not yet committed"}[step]
    assert expected in st.json["interrupted"], st.json
    if step == "dump":
        listed = cli("backups", "list", "--json", cwd=repo).json["backups"]
        assert all(b["status"] == "complete" for b in listed)
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo, timeout=120)
    assert res.code == 0, res
    assert res.json["revision"] == "0004_mood" == revision_of(db)
    assert [c[0] for c in columns_of(db, "notes")][-2:] == ["tags", "mood"]
    assert notes_fingerprint(db) == fingerprint
    assert not list(backups.glob("*.partial"))
    for m in backups.glob("*.json"):
        assert json.loads(m.read_text())["status"] == "complete"
    done = [r for r in audit_rows(db) if r["details"]["revision"] == "0004_mood"  # type: ignore[index]
            and r["status"] == "success"]
    assert len(done) == 1
    assert len([ln for ln in audit_lines(repo) if ln["revision"] == "0004_mood"]) == 1
    assert git(repo, "status", "--porcelain") == ""
    assert "Schemactl-Revision: 0004_mood" in git_log(repo)[0]
    after = cli("status", "--json", "--database-url", db.url, cwd=repo)
    assert after.json["interrupted"] is None and after.json["drift"] == []



def test_history_says_when_the_database_did_not_answer(repo: Path, cli) -> None:  # type: ignore[no-untyped-def]
    res = cli("history", "--json", "--database-url", "postgresql://u:pw-x9@127.0.0.1:1/x",
              cwd=repo)
    assert res.code == 0 and res.json["entries"] == [], res
    assert "cannot connect" in res.json["warning"] and "pw-x9" not in res.stdout + res.stderr
