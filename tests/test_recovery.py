"""Issue 12: runs killed mid-way are recognised, finished or redone, never wedged."""

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
from tests.apply_helpers import (
    add_column,
    add_index,
    add_notes,
    audit_lines,
    audit_rows,
    git,
    idle_in_transaction,
    insert_notes,
    notes_fingerprint,
    revision_of,
)
from tests.conftest import git_log


def _popen(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "SCHEMACTL_DATABASE_URL", "SCHEMACTL_ACTOR")}
    full.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "schemactl.cli", *args], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full)


def _wait_for(cond, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached")


def _indexes(db: Target) -> list[tuple[str, bool]]:
    with connect(db) as conn:
        rows = conn.execute("select indexrelid::regclass::text, indisvalid from pg_index "
                            "where indrelid = 'notes'::regclass order by 1").fetchall()
    return [(str(r[0]), bool(r[1])) for r in rows]



def _kill_inside_the_last_migration(repo: Path, db: Target) -> None:
    """kill -9 an apply whose last migration (an index on notes.body) has built its index
    and written its version row, its transaction not committed; wait until it is gone."""
    proc = _popen(repo, "apply", "--json", "--database-url", db.url,
                  env={"SCHEMACTL_TEST_PAUSE_AT": "migration",
                       "SCHEMACTL_TEST_PAUSE_SECONDS": "60"})
    try:
        _wait_for(lambda: ("ix_notes_body", True) in _indexes(db) and idle_in_transaction(db))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    _wait_for(lambda: not idle_in_transaction(db))


def _converged(repo: Path, db: Target, cli, revision: str, fingerprint: tuple[int, str]) -> None:  # type: ignore[no-untyped-def]
    """After recovery: one success row, one audit line, one commit, clean git, no drift."""
    assert revision_of(db) == revision
    assert notes_fingerprint(db) == fingerprint
    assert all(valid for _name, valid in _indexes(db)), _indexes(db)
    done = [r for r in audit_rows(db) if r["details"]["revision"] == revision  # type: ignore[index]
            and r["status"] == "success"]
    assert len(done) == 1, audit_rows(db)
    assert len([ln for ln in audit_lines(repo) if ln["revision"] == revision
                and ln["status"] == "success"]) == 1
    commits = [m for m in git_log(repo) if f"Schemactl-Revision: {revision}" in m
               and "Schemactl-Status: success" in m]
    assert len(commits) == 1, git_log(repo)
    assert git(repo, "status", "--porcelain") == ""
    st = cli("status", "--json", "--database-url", db.url, cwd=repo)
    assert st.code == 0 and st.json["interrupted"] is None and st.json["drift"] == [], st


@pytest.mark.slow
def test_killed_after_concurrent_index_before_version_moved(repo: Path, db: Target, cli) -> None:  # type: ignore[no-untyped-def]
    """Wedge 1: the index is built and valid, alembic_version still at the parent."""
    add_notes(repo)
    assert cli("apply", "--json", "--database-url", db.url, cwd=repo).code == 0
    insert_notes(db, 200)
    add_index(repo, "0003_ix_body", "0002_notes", "body")
    fingerprint = notes_fingerprint(db)
    _kill_inside_the_last_migration(repo, db)
    assert revision_of(db) == "0002_notes"
    st = cli("status", "--json", "--database-url", db.url, cwd=repo)
    assert st.code == 0, st
    assert "interrupted during the upgrade" in st.json["interrupted"], st.json
    # The index HEAD defines is not "not defined": status says a pending migration made it.
    for d in st.json["drift"]:
        assert "is not defined" not in d["message"] or "0003_ix_body" in d["message"], d
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo, timeout=120)
    assert res.code == 0, res
    assert res.json["applied"] == ["0003_ix_body"]
    _converged(repo, db, cli, "0003_ix_body", fingerprint)
    assert ("ix_notes_body", True) in _indexes(db)


@pytest.mark.slow
def test_killed_between_two_migrations_the_redo_audits_both(  # type: ignore[no-untyped-def]
        repo: Path, db: Target, cli) -> None:
    """A run of two revisions killed in the second: the first stays committed, the redo
    applies the second, and its one success entry covers both (history shows each once)."""
    add_notes(repo)
    assert cli("apply", "--json", "--database-url", db.url, cwd=repo).code == 0
    add_column(repo, "0003_tags", "0002_notes", "tags")
    add_index(repo, "0004_ix_body", "0003_tags", "body")
    _kill_inside_the_last_migration(repo, db)
    assert revision_of(db) == "0003_tags"  # the first migration committed, the second not
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo, timeout=120)
    assert res.code == 0, res
    assert res.json["applied"] == ["0004_ix_body"] and res.json["recovered"], res.json
    done = [r for r in audit_rows(db) if r["status"] == "success"]
    assert [(r["details"]["revision_before"], r["details"]["revisions"])  # type: ignore[index]
            for r in done] == [(None, ["0001_core", "0002_notes"]),
                               ("0002_notes", ["0003_tags", "0004_ix_body"])], done
    hist = cli("history", "--json", "--database-url", db.url, cwd=repo)
    assert hist.code == 0, hist
    applied = [r for e in hist.json["entries"] if e["action"] == "apply"
               and e["status"] == "success" for r in e.get("revisions") or [e["revision"]]]
    assert sorted(applied) == ["0001_core", "0002_notes", "0003_tags", "0004_ix_body"], hist.json
    _converged(repo, db, cli, "0004_ix_body", notes_fingerprint(db))


@pytest.mark.slow
def test_killed_during_concurrent_index_build(repo: Path, db: Target, cli) -> None:  # type: ignore[no-untyped-def]
    """The build is cut half-way (an invalid index): the next apply drops it and redoes it."""
    add_notes(repo)
    assert cli("apply", "--json", "--database-url", db.url, cwd=repo).code == 0
    insert_notes(db, 200)
    add_index(repo, "0003_ix_body", "0002_notes", "body")
    fingerprint = notes_fingerprint(db)
    holder = psycopg.connect(db.url)
    try:
        # A writer holds its transaction open: CREATE INDEX CONCURRENTLY waits on it with the
        # invalid index already in the catalog; the client is killed there.
        holder.execute("insert into notes (body) select 'x' where false")
        proc = _popen(repo, "apply", "--json", "--database-url", db.url)
        try:
            _wait_for(lambda: ("ix_notes_body", False) in _indexes(db))
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    finally:
        holder.rollback()
        holder.close()
    st = cli("status", "--json", "--database-url", db.url, cwd=repo)
    assert st.code == 0 and "interrupted" in (st.json["interrupted"] or ""), st
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo, timeout=120)
    assert res.code == 0, res
    _converged(repo, db, cli, "0003_ix_body", fingerprint)


def test_status_names_an_index_a_pending_migration_defines(repo: Path, db: Target, cli) -> None:  # type: ignore[no-untyped-def]
    """An index present before its migration ran is "defined at HEAD", not "not defined"."""
    add_notes(repo)
    assert cli("apply", "--json", "--database-url", db.url, cwd=repo).code == 0
    add_index(repo, "0003_ix_body", "0002_notes", "body")
    with connect(db) as conn:
        conn.execute("create index ix_notes_body on notes (body)")
    st = cli("status", "--json", "--database-url", db.url, cwd=repo)
    assert st.code == 0, st
    [d] = st.json["drift"]
    assert d["index"] == "ix_notes_body" and d.get("pending") == ["0003_ix_body"], d
    assert "not defined" not in d["message"] and "0003_ix_body" in d["message"], d
    assert json.dumps(st.json)


@pytest.mark.slow
def test_one_database_through_two_urls_has_one_journal(repo: Path, db: Target, cli) -> None:  # type: ignore[no-untyped-def]
    """Wedge 4: a run killed through one URL is finished once through another."""
    from urllib.parse import urlsplit

    from tests.apply_helpers import add_column
    from tests.tcp_proxy import TcpProxy, proxied

    add_notes(repo)
    assert cli("apply", "--json", "--database-url", db.url, cwd=repo).code == 0
    add_column(repo, "0003_tags", "0002_notes", "tags")
    parts = urlsplit(db.url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        other = proxied(db, proxy.port)
        proc = _popen(repo, "apply", "--json", "--database-url", db.url,
                      env={"SCHEMACTL_TEST_PAUSE_AT": "upgraded",
                           "SCHEMACTL_TEST_PAUSE_SECONDS": "60"})
        try:
            _wait_for(lambda: any('"upgraded"' in p.read_text()
                                  for p in (repo / ".schemactl").glob("journal-*.json")))
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        st = cli("status", "--json", "--database-url", other.url, cwd=repo)
        assert "not yet committed" in (st.json["interrupted"] or ""), st.json
        res = cli("apply", "--json", "--database-url", other.url, cwd=repo)
        assert res.code == 0 and res.json["recovered"], res
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert res.code == 0 and res.json["applied"] == [] and not res.json["recovered"], res
    ok = [r for r in audit_rows(db) if r["details"]["revision"] == "0003_tags"  # type: ignore[index]
          and r["status"] == "success"]
    assert len(ok) == 1, audit_rows(db)
    commits = [m for m in git_log(repo) if "Schemactl-Revision: 0003_tags" in m]
    assert len(commits) == 1, commits
    assert git(repo, "status", "--porcelain") == ""


def test_only_an_apply_carries_on_an_interrupted_apply() -> None:
    """What of an interrupted run a new run's audit entry takes over (recovery.done_by)."""
    from schemactl.pipeline.journal import Journal
    from schemactl.pipeline.recovery import done_by

    def run(action: str, revisions: list[str]) -> Journal:
        return Journal(id="j", action=action, step="upgrade", database="d", actor="a",
                       revision_before="0002", revision_target=revisions[-1],
                       revisions=revisions)

    apply_run = run("apply", ["0003", "0004"])
    assert done_by(apply_run, "0003", ["0004"], "apply") == ["0003"]
    assert done_by(apply_run, "0002", ["0003", "0004"], "apply") == []  # nothing committed
    assert done_by(apply_run, "0003", ["0004"], "rollback") == []
    assert done_by(None, "0003", ["0004"], "apply") == []
    # A rollback of 0004 then 0003, killed at 0003: an apply now redoes 0004 on its own.
    assert done_by(run("rollback", ["0004", "0003"]), "0003", ["0004"], "apply") == []
