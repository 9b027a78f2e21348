"""`rollback --to REV` over several targets (docs/fleet.md, Rollback).

Real databases on the suite's server, named as targets without a password in
schemactl.toml. Each target goes back through the single-database rollback pipeline; git
changes once, and the undone migration leaves git only when no configured target still
has it applied.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schemactl import api
from schemactl.adapters.database import Target, connect
from tests.apply_helpers import audit_lines, audit_rows, git, revision_of
from tests.conftest import Server, git_log
from tests.test_fleet import Fleet, _journals, _no_secret, _trailers, kill_when_audited

NOTES = """\
table: notes
columns:
  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
  - {name: title, type: varchar(200), nullable: false}
"""
NOTES_V2 = NOTES + "  - {name: score, type: integer}\n"


@pytest.fixture
def fleet(repo: Path) -> Iterator[Fleet]:
    f = Fleet(repo)
    try:
        yield f
    finally:
        f.drop()


def _one(db: Target, sql: str) -> Any:
    with connect(db) as conn:
        row = conn.execute(sql).fetchone()
    return row[0] if row else None


def _fleet_at_v2(fleet: Fleet, names: list[str], pg_server: Server,
                 monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """``names`` as targets, each at the score column with 20 scored notes."""
    for name in names:
        fleet.add(pg_server, name)
    fleet.write()
    for k, v in fleet.env.items():
        monkeypatch.setenv(k, v)
    repo = fleet.repo
    rev1 = str(api.propose(repo, stdin=NOTES, actor="user:test").migration["revision"])
    rev2 = str(api.propose(repo, stdin=NOTES_V2, actor="user:test").migration["revision"])
    res = api.apply_fleet(repo, api.Selection(all=True), actor="user:test")
    assert res.ok, res
    for db in fleet.targets.values():
        with connect(db) as conn:
            conn.execute("insert into notes (title, score) select 'n' || g, g "
                         "from generate_series(1, 20) g")
    return rev1, rev2


def _migration_files(repo: Path, rev: str) -> list[Path]:
    return list((repo / "migrations" / "versions").glob(f"{rev}*.py"))


def _rollbacks(db: Target) -> list[tuple[Any, Any]]:
    return [(r["action"], r["status"]) for r in audit_rows(db) if r["action"] == "rollback"]


def test_every_target_rolled_back_then_git_follows_once(  # type: ignore[no-untyped-def]
        repo: Path, fleet: Fleet, pg_server: Server, cli,
        monkeypatch: pytest.MonkeyPatch) -> None:
    rev1, rev2 = _fleet_at_v2(fleet, ["a", "b", "c"], pg_server, monkeypatch)
    before = len(git_log(repo))
    res = cli("rollback", "--to", rev1, "--all", "--parallel", "2", "--json",
              "--actor", "user:ops", cwd=repo, env=fleet.env)
    assert res.code == 0, res
    out = res.json
    assert out["ok"] and out["command"] == "rollback" and out["error"] is None
    assert out["removed"] == [rev2] and out["kept"] == [] and out["kept_for"] == []
    assert out["summary"]["rolled_back"] == 3 and out["summary"]["total"] == 3
    backups = set()
    for t in out["targets"]:
        db = fleet.targets[t["name"]]
        assert (t["status"], t["rolled_back"], t["revision"], t["revision_before"]) == \
            ("rolled_back", [rev2], rev1, rev2), t
        arch = f"schemactl_archive.notes__score__{rev2}"
        assert t["archived"] == [{"kind": "column", "from": "public.notes.score", "to": arch}]
        assert _one(db, f"select sum(score) from {arch}") == 210  # every value kept
        assert _one(db, "select count(*) from notes") == 20
        assert revision_of(db) == rev1
        assert Path(t["backup"]["path"]).is_file()
        backups.add(t["backup"]["id"])
        assert _rollbacks(db) == [("rollback", "success")]
    assert len(backups) == 3
    # One commit: the three audit lines, the migration gone, the definition back.
    log = git_log(repo)
    assert len(log) == before + 1 and out["commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert sorted(_trailers(log[0], "Schemactl-Target")) == \
        [f"{n} {rev1} rolled_back" for n in ("a", "b", "c")]
    assert _trailers(log[0], "Schemactl-Removed") == [rev2]
    assert f"Schemactl-Revision: {rev1}" in log[0]
    assert len(_trailers(log[0], "Schemactl-Audit")) == 3
    assert not _migration_files(repo, rev2)
    assert "score" not in (repo / "dynamic_schema" / "notes.yaml").read_text()
    assert git(repo, "status", "--porcelain") == "" and not _journals(repo)
    assert [ln["action"] for ln in audit_lines(repo)].count("rollback") == 3
    st = api.status_fleet(repo, api.Selection(all=True), fail_on=("pending", "drift"))
    assert st.ok, st
    assert all(t.db_revision == rev1 and not t.pending for t in st.targets)
    # A CI check of the branch accepts the fleet's rollback commit as schemactl's own.
    assert api.check(repo, base=f"HEAD~{len(git_log(repo)) - before}").ok

    # A rerun has nothing to do and makes no commit.
    again = cli("rollback", "--to", rev1, "--all", "--json", cwd=repo, env=fleet.env)
    assert again.code == 0, again
    assert [t["status"] for t in again.json["targets"]] == ["up_to_date"] * 3
    assert again.json["commit"] is None and len(git_log(repo)) == before + 1
    # The same rerun, for a person: one row per target and the summary line.
    shown = cli("rollback", "--to", rev1, "--all", cwd=repo, env=fleet.env)
    assert shown.code == 0 and "before → after" in shown.stdout, shown
    assert "3 target(s): 3 up to date" in " ".join(shown.stdout.split()), shown.stdout
    _no_secret(fleet.secrets(), res.stdout, res.stderr, again.stdout,
               (repo / "audit.jsonl").read_text(), "\n".join(git_log(repo)),
               *[json.dumps(audit_rows(db), default=str) for db in fleet.targets.values()])


def test_unreachable_target_with_stop_and_continue(  # type: ignore[no-untyped-def]
        repo: Path, fleet: Fleet, pg_server: Server, cli,
        monkeypatch: pytest.MonkeyPatch) -> None:
    rev1, rev2 = _fleet_at_v2(fleet, ["a", "b"], pg_server, monkeypatch)
    fleet.add_raw("gone", "postgresql://app@127.0.0.1:1/gone")
    fleet.toml = fleet.toml[-3:] + fleet.toml[:-3]  # gone first
    fleet.write()
    before = len(git_log(repo))

    stop = cli("rollback", "--to", rev1, "--all", "--parallel", "1", "--json", cwd=repo,
               env=fleet.env)
    assert stop.code == 3, stop
    assert [(t["name"], t["status"]) for t in stop.json["targets"]] == \
        [("gone", "unreachable"), ("a", "skipped"), ("b", "skipped")]
    assert all(revision_of(db) == rev2 for db in fleet.targets.values())
    assert len(git_log(repo)) == before and _migration_files(repo, rev2)

    cont = cli("rollback", "--to", rev1, "--all", "--on-error", "continue", "--json",
               cwd=repo, env=fleet.env)
    assert cont.code == 3, cont
    got = {t["name"]: t["status"] for t in cont.json["targets"]}
    assert got == {"gone": "unreachable", "a": "rolled_back", "b": "rolled_back"}
    assert all(revision_of(db) == rev1 for db in fleet.targets.values())
    # gone may still have rev2 applied: the migration stays, the commit is the audit only.
    assert cont.json["removed"] == [] and cont.json["kept"] == [rev2]
    assert any("gone" in k for k in cont.json["kept_for"]), cont.json
    assert _migration_files(repo, rev2) and "score" in \
        (repo / "dynamic_schema" / "notes.yaml").read_text()
    log = git_log(repo)
    assert len(log) == before + 1
    assert "gone - unreachable" in _trailers(log[0], "Schemactl-Target")
    assert _trailers(log[0], "Schemactl-Removed") == []
    assert git(repo, "diff", "--name-only", "HEAD~1", "HEAD").split() == ["audit.jsonl"]
    # status says it: the rolled-back targets have rev2 pending again.
    st = cli("status", "--target", "a", "--target", "b", "--json", cwd=repo, env=fleet.env)
    assert [(t["db_revision"], t["pending"]) for t in st.json["targets"]] == \
        [(rev1, [rev2])] * 2, st.json

    # Once gone is out of the configuration, the rerun only takes the migration out of git.
    fleet.toml = fleet.toml[3:]
    fleet.write()
    done = cli("rollback", "--to", rev1, "--all", "--json", cwd=repo, env=fleet.env)
    assert done.code == 0, done
    assert [t["status"] for t in done.json["targets"]] == ["up_to_date", "up_to_date"]
    assert done.json["removed"] == [rev2] and not _migration_files(repo, rev2)
    assert git(repo, "status", "--porcelain") == ""
    for db in fleet.targets.values():
        assert _rollbacks(db) == [("rollback", "success")]
    _no_secret(fleet.secrets(), stop.stdout, stop.stderr, cont.stdout, cont.stderr,
               done.stdout, "\n".join(git_log(repo)))


@pytest.mark.slow
def test_kill_9_midway_then_rerun_converges(  # type: ignore[no-untyped-def]
        repo: Path, fleet: Fleet, pg_server: Server, cli,
        monkeypatch: pytest.MonkeyPatch) -> None:
    rev1, rev2 = _fleet_at_v2(fleet, ["k1", "k2", "k3"], pg_server, monkeypatch)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env.update(fleet.env, SCHEMACTL_TEST_PAUSE_AT="audited", SCHEMACTL_TEST_PAUSE_SECONDS="60")
    kill_when_audited(repo, ["rollback", "--to", rev1, "--all", "--parallel", "2", "--json"], env)
    assert sorted(revision_of(db) for db in fleet.targets.values()) == [rev1, rev1, rev2]
    assert _migration_files(repo, rev2)  # git not changed yet

    res = cli("rollback", "--to", rev1, "--all", "--json", cwd=repo, env=fleet.env)
    assert res.code == 0, res
    assert sorted(t["status"] for t in res.json["targets"]) == \
        ["rolled_back", "rolled_back", "rolled_back"], res.json
    assert res.json["removed"] == [rev2] and not _migration_files(repo, rev2)
    hist = cli("history", "--all", "--json", cwd=repo, env=fleet.env)
    rollbacks = sorted((e["target"], e["revision"]) for e in hist.json["entries"]
                       if e["action"] == "rollback")
    assert rollbacks == [(n, rev1) for n in ("k1", "k2", "k3")], hist.json
    for db in fleet.targets.values():
        assert revision_of(db) == rev1 and _rollbacks(db) == [("rollback", "success")]
    lines = [ln for ln in audit_lines(repo) if ln["action"] == "rollback"]
    assert len(lines) == 3 and len({ln["id"] for ln in lines}) == 3
    assert git(repo, "status", "--porcelain") == "" and not _journals(repo)
