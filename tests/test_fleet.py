"""Issue 16: one repository, many databases (targets, fleet apply, fleet status).

Real servers: the session's PostgreSQL and, when Debian's PostgreSQL 15 is installed, a
second server started here in a temporary folder. Targets reach them without a password in
schemactl.toml (PGPASSWORD, or a URL in a named environment variable).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from schemactl.adapters.database import Target, connect
from tests.apply_helpers import (
    add_column,
    add_notes,
    audit_lines,
    audit_rows,
    columns_of,
    commit_all,
    git,
    revision_of,
)
from tests.conftest import Server, git_log

PG15 = Path("/usr/lib/postgresql/15/bin")


def _password(target: Target) -> str:
    pw = urlsplit(target.url).password
    assert pw, "these tests need a password-bearing URL"
    return unquote(pw)


def _bare(target: Target) -> str:
    """The target's URL without its password (what schemactl.toml may hold)."""
    parts = urlsplit(target.url)
    return f"postgresql://{parts.username}@{parts.hostname}:{parts.port}/{target.database}"


@pytest.fixture(scope="module")
def second_server() -> Iterator[Server | None]:
    """Debian's PostgreSQL 15 in a temporary folder, when installed (else None)."""
    if not (PG15 / "postgres").exists():
        yield None
        return
    from schemactl.adapters.embedded import EmbeddedServer

    state = Path(tempfile.mkdtemp(prefix="schemactl-fleet-pg15-"))
    server = EmbeddedServer(state / ".schemactl", PG15, durable=False)
    server.start()
    try:
        admin = Target(server.secret_url(), embedded=True)
        yield Server(admin, "pg15", "15")
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)


class Fleet:
    """Databases made for one test, named as targets, dropped afterwards."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.made: list[tuple[Server, Target]] = []
        self.env: dict[str, str] = {}
        self.toml: list[str] = []
        self.targets: dict[str, Target] = {}

    def add(self, server: Server, name: str, *, via: str = "pgpassword",
            group: str | None = None) -> Target:
        """A new database as target ``name``; its password comes ``via`` PGPASSWORD, a
        .pgpass file (PGPASSFILE) or ``env`` (the whole URL in a variable)."""
        db = server.create_database()
        self.made.append((server, db))
        self.targets[name] = db
        lines = [f"[targets.{name}]"]
        if via == "env":
            var = f"FLEET_{name.upper()}_URL"
            self.env[var] = db.url  # the whole URL, password included, lives in the environment
            lines.append(f'url_env = "{var}"')
        else:
            lines.append(f'url = "{_bare(db)}"')
            parts = urlsplit(db.url)
            if via == "pgpassword":
                self.env["PGPASSWORD"] = _password(db)
            else:
                passfile = self.repo.parent / "pgpass"
                entry = f"{parts.hostname}:{parts.port}:*:{parts.username}:{_password(db)}\n"
                known = passfile.read_text() if passfile.exists() else ""
                if entry not in known:
                    passfile.write_text(known + entry)
                passfile.chmod(0o600)
                self.env["PGPASSFILE"] = str(passfile)
        if group:
            lines.append(f'group = "{group}"')
        self.toml += lines + [""]
        return db

    def add_raw(self, name: str, url: str) -> None:
        self.toml += [f"[targets.{name}]", f'url = "{url}"', ""]

    def write(self) -> None:
        path = self.repo / "schemactl.toml"
        base = path.read_text().split("\n# -- fleet --\n")[0]
        path.write_text(base + "\n# -- fleet --\n" + "\n".join(self.toml))
        commit_all(self.repo, "targets")

    def drop(self) -> None:
        for server, db in self.made:
            server.drop_database(db)

    def secrets(self) -> set[str]:
        return {_password(db) for db in self.targets.values()}


@pytest.fixture
def fleet(repo: Path) -> Iterator[Fleet]:
    f = Fleet(repo)
    try:
        yield f
    finally:
        f.drop()


def kill_when_audited(repo: Path, args: list[str], env: dict[str, str], count: int = 2) -> None:
    """Run ``schemactl ARGS`` and kill -9 it once ``count`` targets' journals say `audited`."""
    proc = subprocess.Popen([sys.executable, "-m", "schemactl.cli", *args], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            steps = [json.loads(p.read_text()).get("step") for p in _journals(repo)]
            if steps.count("audited") == count:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"`schemactl {' '.join(args)}` never reached {count} audited targets")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _journals(repo: Path) -> list[Path]:
    return list((repo / ".schemactl").glob("journal-*.json"))


def _no_secret(secrets: set[str], *blobs: str) -> None:
    for secret in secrets:
        for blob in blobs:
            assert secret not in blob


def _trailers(message: str, key: str) -> list[str]:
    return [ln.split(": ", 1)[1] for ln in message.splitlines() if ln.startswith(key + ": ")]


@pytest.mark.slow
def test_twelve_targets_two_servers_then_drift_and_unreachable(  # type: ignore[no-untyped-def]
        repo: Path, fleet: Fleet, pg_server: Server, second_server: Server | None, cli) -> None:
    servers = [pg_server, second_server or pg_server]
    for i in range(12):
        fleet.add(servers[i % 2], f"t{i:02d}", via="env" if i % 3 == 1 else "pgpass",
                  group="tenants" if i else None)
    fleet.write()
    add_notes(repo)
    commits_before = len(git_log(repo))
    res = cli("apply", "--all", "--parallel", "4", "--json", "--actor", "user:ops", cwd=repo,
              env=fleet.env)
    assert res.code == 0, res
    out = res.json
    assert out["ok"] and out["command"] == "apply" and out["error"] is None
    assert out["summary"]["applied"] == 12 and out["summary"]["total"] == 12
    backups = set()
    for t in out["targets"]:
        db = fleet.targets[t["name"]]
        assert (t["status"], t["revision"], t["ok"]) == ("applied", "0002_notes", True), t
        assert t["applied"] == ["0001_core", "0002_notes"]
        assert revision_of(db) == "0002_notes"
        assert Path(t["backup"]["path"]).is_file()
        backups.add(t["backup"]["id"])
        rows = audit_rows(db)
        assert [(r["action"], r["status"]) for r in rows] == [("apply", "success")]
    assert len(backups) == 12
    lines = audit_lines(repo)
    assert len(lines) == 12 and len({ln["id"] for ln in lines}) == 12
    # One commit for the run, a trailer per target.
    log = git_log(repo)
    assert len(log) == commits_before + 1
    assert out["commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert sorted(_trailers(log[0], "Schemactl-Target")) == \
        sorted(f"t{i:02d} 0002_notes applied" for i in range(12))
    assert git(repo, "status", "--porcelain") == "" and not _journals(repo)

    st = cli("status", "--group", "tenants", "--json", cwd=repo, env=fleet.env)
    assert st.code == 0, st
    assert len(st.json["targets"]) == 11
    assert all(t["reachable"] and t["pending"] == [] and t["drift"] == []
               and t["db_revision"] == "0002_notes" for t in st.json["targets"])

    # Next change: one target drifted by hand, one more that does not answer.
    add_column(repo, "0003_tags", "0002_notes", "tags")
    with connect(fleet.targets["t03"]) as conn:
        conn.execute("alter table notes add column sneaky text")
    fleet.add_raw("gone", "postgresql://app@127.0.0.1:1/gone")
    fleet.write()
    gate = cli("status", "--all", "--fail-on", "pending,drift,unreachable", "--json",
               cwd=repo, env=fleet.env)
    assert gate.code == 4, gate
    by_name = {t["name"]: t for t in gate.json["targets"]}
    assert by_name["gone"]["reachable"] is False and by_name["t03"]["drift"]
    assert by_name["t05"]["pending"] == ["0003_tags"]
    commits_before = len(git_log(repo))
    chosen = ["t01", "t02", "t03", "t04", "gone"]
    res2 = cli("apply", *[a for n in chosen for a in ("--target", n)], "--on-error", "continue",
               "--json", cwd=repo, env=fleet.env)
    assert res2.code == 4, res2
    got = {t["name"]: t for t in res2.json["targets"]}
    assert list(got) == chosen
    assert got["t03"]["status"] == "drift" and got["gone"]["status"] == "unreachable"
    assert got["t03"]["exit_code"] == 4 and got["gone"]["exit_code"] == 3
    assert not res2.json["ok"] and res2.json["summary"]["applied"] == 3
    assert revision_of(fleet.targets["t03"]) == "0002_notes"
    for name in ("t01", "t02", "t04"):
        db = fleet.targets[name]
        assert got[name]["status"] == "applied" and revision_of(db) == "0003_tags"
        assert [c[0] for c in columns_of(db, "notes")][-1] == "tags"
    assert revision_of(fleet.targets["t05"]) == "0002_notes"  # not selected, not touched
    log = git_log(repo)
    assert len(log) == commits_before + 1
    assert "t03 0002_notes drift" in _trailers(log[0], "Schemactl-Target")
    assert "gone - unreachable" in _trailers(log[0], "Schemactl-Target")

    # The password is nowhere: output, audit rows and lines, manifests, commits, journals.
    manifests = [p.read_text() for p in (repo / ".schemactl" / "backups").glob("*.json")]
    rows = [json.dumps(audit_rows(db), default=str) for db in fleet.targets.values()]
    _no_secret(fleet.secrets(), res.stdout, res.stderr, res2.stdout, res2.stderr, st.stdout,
               gate.stdout, (repo / "audit.jsonl").read_text(), "\n".join(git_log(repo)),
               (repo / "schemactl.toml").read_text(), *manifests, *rows)


def _three_at_notes(fleet: Fleet, pg_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from schemactl import api

    for name in ("a", "b", "c"):
        fleet.add(pg_server, name)
    fleet.write()
    add_notes(fleet.repo)
    for k, v in fleet.env.items():
        monkeypatch.setenv(k, v)
    res = api.apply_fleet(fleet.repo, api.Selection(all=True), actor="user:test")
    assert res.ok, res
    add_column(fleet.repo, "0003_tags", "0002_notes", "tags")


def _backup_count(repo: Path) -> int:
    return len(list((repo / ".schemactl" / "backups").glob("*.dump")))


def test_stop_and_canary_leave_the_rest_untouched(  # type: ignore[no-untyped-def]
        repo: Path, fleet: Fleet, pg_server: Server, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    _three_at_notes(fleet, pg_server, monkeypatch)
    with connect(fleet.targets["a"]) as conn:
        conn.execute("alter table notes add column sneaky text")
    plan = cli("plan", "--all", "--json", cwd=repo, env=fleet.env)
    assert plan.code == 0, plan
    assert [(t["name"], t["pending"]) for t in plan.json["targets"]] == \
        [(n, ["0003_tags"]) for n in ("a", "b", "c")]
    assert all("ADD COLUMN tags" in t["sql"] for t in plan.json["targets"])
    many = cli("rollback", "--all", "--json", cwd=repo, env=fleet.env)
    assert many.code == 2 and many.json["error"]["code"] == "one_target", many
    dumps = _backup_count(repo)
    stop = cli("apply", "--all", "--parallel", "1", "--json", cwd=repo, env=fleet.env)
    assert stop.code == 4, stop
    assert [t["status"] for t in stop.json["targets"]] == ["drift", "skipped", "skipped"]
    assert all(revision_of(db) == "0002_notes" for db in fleet.targets.values())
    assert _backup_count(repo) == dumps  # nothing after the failure started

    # Canaries a and b alone first: a fails, so c never starts, even with continue.
    canary = cli("apply", "--all", "--canary", "2", "--on-error", "continue", "--json",
                 cwd=repo, env=fleet.env)
    assert canary.code == 4, canary
    got = {t["name"]: t["status"] for t in canary.json["targets"]}
    assert got == {"a": "drift", "b": "applied", "c": "skipped"}
    assert revision_of(fleet.targets["c"]) == "0002_notes"
    assert len(audit_rows(fleet.targets["c"])) == 1

    # Fixed by hand, the rerun applies only where the head is missing.
    with connect(fleet.targets["a"]) as conn:
        conn.execute("alter table notes drop column sneaky")
    again = cli("apply", "--all", cwd=repo, env=fleet.env)  # the human summary table
    assert again.code == 0, again
    rows = {ln.split()[0]: ln.split() for ln in again.stdout.splitlines() if ln.strip()}
    assert "before → after" in again.stdout and "3 target(s): 2 applied, 1 up to date" in \
        again.stdout, again.stdout
    assert rows["a"][1:5] == ["0002_notes", "→", "0003_tags", "applied"], rows
    assert rows["b"][1:3] == ["0003_tags", "up_to_date"], rows
    assert all(revision_of(db) == "0003_tags" for db in fleet.targets.values())
    assert len([r for r in audit_rows(fleet.targets["b"]) if r["status"] == "success"]) == 2


def test_retention_counts_each_target_on_its_own(  # type: ignore[no-untyped-def]
        repo: Path, fleet: Fleet, pg_server: Server, cli) -> None:
    """With keep_last = 1 each target keeps its newest backup: one tenant's run never prunes
    another tenant's only copy from before the change."""
    toml = repo / "schemactl.toml"
    toml.write_text(toml.read_text().replace("keep_last = 20", "keep_last = 1"))
    for name in ("r1", "r2", "r3"):
        fleet.add(pg_server, name)
    fleet.write()
    add_notes(repo)
    folder = repo / ".schemactl" / "backups"
    taken: set[str] = set()
    for step in ("first", "second"):
        if step == "second":
            add_column(repo, "0003_tags", "0002_notes", "tags")
        res = cli("apply", "--all", "--parallel", "3", "--json", cwd=repo, env=fleet.env)
        assert res.code == 0, res
        assert all(Path(t["backup"]["path"]).is_file() for t in res.json["targets"]), step
        taken |= {t["backup"]["id"] for t in res.json["targets"]}
        # The first run's full backups stay too: each is its database's newest full one.
        assert {json.loads(p.read_text())["id"] for p in folder.glob("*.json")} == taken
    assert _backup_count(repo) == 6


def test_kill_9_midway_then_rerun_applies_each_target_once(  # type: ignore[no-untyped-def]
        repo: Path, fleet: Fleet, pg_server: Server, cli) -> None:
    for name in ("k1", "k2", "k3"):
        fleet.add(pg_server, name)
    fleet.write()
    add_notes(repo)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env.update(fleet.env, SCHEMACTL_TEST_PAUSE_AT="audited", SCHEMACTL_TEST_PAUSE_SECONDS="60")
    kill_when_audited(repo, ["apply", "--all", "--parallel", "2", "--json"], env)
    at_head = [n for n, db in fleet.targets.items() if revision_of(db) == "0002_notes"]
    assert len(at_head) == 2
    st = cli("status", "--all", "--json", cwd=repo, env=fleet.env)
    interrupted = [t["name"] for t in st.json["targets"] if t["interrupted"]]
    assert sorted(interrupted) == sorted(at_head), st.json
    assert git(repo, "status", "--porcelain").strip() in ("M audit.jsonl", "?? audit.jsonl")

    res = cli("apply", "--all", "--json", cwd=repo, env=fleet.env)
    assert res.code == 0, res
    assert all(t["status"] == "applied" for t in res.json["targets"]), res.json
    for db in fleet.targets.values():
        assert revision_of(db) == "0002_notes"
        assert [r["status"] for r in audit_rows(db)] == ["success"]
    hist = cli("history", "--all", "--json", cwd=repo, env=fleet.env)
    assert hist.code == 0, hist
    applies = [(e["target"], e["revision"]) for e in hist.json["entries"]
               if e["action"] == "apply"]
    assert sorted(applies) == sorted((n, "0002_notes") for n in fleet.targets)
    lines = audit_lines(repo)
    assert len(lines) == 3 and len({ln["id"] for ln in lines}) == 3
    assert git(repo, "status", "--porcelain") == "" and not _journals(repo)
    assert sorted(_trailers(git_log(repo)[0], "Schemactl-Target")) == \
        sorted(f"{n} 0002_notes applied" for n in fleet.targets)


def test_targets_config_is_checked(repo: Path, cli) -> None:  # type: ignore[no-untyped-def]
    toml = repo / "schemactl.toml"
    base = toml.read_text()
    res = cli("status", "--all", "--json", cwd=repo)
    assert res.code == 2 and "no [targets]" in res.json["error"]["message"], res
    toml.write_text(base + '\n[targets.prod]\nurl = "postgresql://app:hunter2@db1/app"\n')
    res = cli("apply", "--all", "--json", cwd=repo)
    assert res.code == 2, res
    assert res.json["error"]["code"] == "password_in_config"
    assert "url_env" in res.json["error"]["hint"]
    assert "hunter2" not in res.stdout + res.stderr
    human = cli("status", "--all", cwd=repo)
    assert human.code == 2 and "hunter2" not in human.stdout + human.stderr
    assert "Traceback" not in human.stderr and "PGPASSWORD" in human.stderr
    toml.write_text(base + '\n[targets.prod]\nurl = "postgresql://app@127.0.0.1:1/app"\n'
                    'group = "live"\n')
    for args, needle in ((("apply", "--target", "nope"), "unknown target"),
                         (("plan", "--group", "nope"), "unknown group"),
                         (("apply", "--all", "--database-url", "postgresql://x@h/d"),
                          "single-target"),
                         (("status", "--fail-on", "drift"), "needs --target")):
        res = cli(*args, "--json", cwd=repo)
        assert res.code == 2 and needle in res.json["error"]["message"], res
    assert git(repo, "status", "--porcelain").strip() == "M schemactl.toml"


def test_migration_headers_are_read_one_thread_at_a_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """CPython 3.11's ast fails ("AST constructor recursion depth mismatch") when two threads
    convert source at once, which a fleet's targets did reading migration headers."""
    import ast
    import threading

    from schemactl.adapters import migrator

    inside, overlaps = [0], [0]
    real = ast.literal_eval

    def watched(text: str) -> object:
        inside[0] += 1
        if inside[0] > 1:
            overlaps[0] += 1
        time.sleep(0.001)  # widen the window another thread would need
        inside[0] -= 1
        return real(text)

    monkeypatch.setattr(migrator.ast, "literal_eval", watched)
    source = 'revision = "0003_a"\ndown_revision = ("0002_b", "0002_c")\n'
    threads = [threading.Thread(target=lambda: [migrator.parse_header(source)
                                                for _ in range(20)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps[0] == 0
    assert migrator.parse_header(source) == ("0003_a", ("0002_b", "0002_c"))
