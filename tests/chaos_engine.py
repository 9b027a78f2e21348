"""The fault campaign: apply and rollback killed, cut, frozen or left by their server.

Used by scripts/chaos.py (many runs, figures for docs/reliability.md) and by
tests/test_chaos.py (a handful in CI). Each run makes a repository with a 2-revision chain
pending (a column, then a concurrently built index) over a table with rows, injects one
fault, then checks: ``status`` answers and says what happened, the next ``apply``
converges, the rows and their checksum are equal, ``alembic_version`` is at the target,
every revision is covered by exactly one success audit row and one commit, no invalid
index is left, and git is clean.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from schemactl.adapters.database import Target, connect
from tests.apply_helpers import (
    add_column,
    add_index,
    add_notes,
    insert_notes,
    notes_fingerprint,
    revision_of,
)
from tests.apply_helpers import git as git_run
from tests.tcp_proxy import TcpProxy

PENDING = ["0003_tags", "0004_ix_body"]
TARGET = PENDING[-1]
PAUSE_STEPS = ["dump", "backup_done", "upgrade", "migration", "upgraded", "verified", "audited"]
KINDS = ["kill-random", "kill-step", "proxy-cut", "proxy-freeze", "server-stop",
         "kill-rollback"]


@dataclass
class Outcome:
    """One run: the fault, what status said, and every invariant that did not hold."""

    kind: str
    point: str
    first_exit: int | None
    interrupted: str | None
    rows_lost: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def wedged(self) -> bool:
        return bool(self.problems)


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "SCHEMACTL_DATABASE_URL", "SCHEMACTL_ACTOR")}
    env.update(extra or {})
    return env


def cli(repo: Path, *args: str, timeout: float = 180) -> tuple[int, dict[str, object]]:
    proc = subprocess.run([sys.executable, "-m", "schemactl.cli", *args, "--json"], cwd=repo,
                          capture_output=True, text=True, env=_env(), timeout=timeout)
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        data = {"unparsable": proc.stdout[-500:], "stderr": proc.stderr[-500:]}
    return proc.returncode, data


class Campaign:
    """Runs faults against databases of one server that the campaign owns (so it may stop
    it): an embedded PostgreSQL in ``workdir``."""

    def __init__(self, workdir: Path, rows: int = 2000, bin_dir: Path | None = None) -> None:
        from schemactl.adapters.embedded import EmbeddedServer

        self.workdir = workdir
        self.rows = rows
        self.server = EmbeddedServer(workdir / "server", bin_dir, durable=False)
        self.server.start()
        self.n = 0

    def close(self) -> None:
        self.server.stop()

    def target(self, database: str) -> Target:
        url = self.server.secret_url()
        return Target(url, embedded=True).with_database(database)

    def prepare(self) -> tuple[Path, str, tuple[int, str]]:
        """A repository at 0002 with rows and PENDING in git; a database of its own."""
        from schemactl import api

        self.n += 1
        name = f"chaos_{os.getpid()}_{self.n}"
        admin = self.target("postgres")
        with connect(admin) as conn:
            conn.execute(f'create database "{name}"')
        repo = self.workdir / name
        api.init(repo, actor="user:chaos")
        add_notes(repo)
        db = self.target(name)
        code, out = cli(repo, "apply", "--database-url", db.url)
        assert code == 0, out
        insert_notes(db, self.rows)
        add_column(repo, "0003_tags", "0002_notes", "tags")
        add_index(repo, "0004_ix_body", "0003_tags", "body")
        return repo, name, notes_fingerprint(db)

    def drop(self, name: str, repo: Path) -> None:
        import shutil

        try:
            with connect(self.target("postgres")) as conn:
                conn.execute(f'drop database if exists "{name}" with (force)')
        except Exception:  # noqa: BLE001 - a leftover database only costs disk
            pass
        shutil.rmtree(repo, ignore_errors=True)

    # -- one run --------------------------------------------------------------------------

    def run(self, kind: str, rng: random.Random) -> Outcome:
        started = time.monotonic()
        repo, name, fingerprint = self.prepare()
        try:
            outcome = self._fault(kind, rng, repo, name)
            self._converge(outcome, repo, name, fingerprint)
        finally:
            self.drop(name, repo)
        outcome.seconds = time.monotonic() - started
        return outcome

    def _popen(self, repo: Path, url: str, *args: str,
               env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "schemactl.cli", *args, "--json",
                                 "--database-url", url], cwd=repo, env=_env(env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @staticmethod
    def _finish(proc: subprocess.Popen[str], delay: float, action: str) -> int | None:
        """Let ``proc`` run ``delay`` seconds, then kill -9 it (None: it ended first)."""
        try:
            proc.wait(timeout=delay)
            return proc.returncode
        except subprocess.TimeoutExpired:
            pass
        if action == "kill":
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        return None

    def _fault(self, kind: str, rng: random.Random, repo: Path, name: str) -> Outcome:
        db = self.target(name)
        if kind == "kill-random":
            delay = rng.uniform(0.5, 8.0)
            code = self._finish(self._popen(repo, db.url, "apply"), delay, "kill")
            return Outcome(kind, f"kill -9 at {delay:.1f} s", code, None)
        if kind == "kill-step":
            step = rng.choice(PAUSE_STEPS)
            proc = self._popen(repo, db.url, "apply", env={
                "SCHEMACTL_TEST_PAUSE_AT": step, "SCHEMACTL_TEST_PAUSE_SECONDS": "3"})
            # The pause is 3 s: kill inside it when the step is reached, else after.
            code = self._wait_journal(repo, proc, step)
            return Outcome(kind, f"kill -9 at step {step}", code, None)
        if kind in ("proxy-cut", "proxy-freeze"):
            parts = urlsplit(db.url)
            with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
                userinfo = parts.netloc.rsplit("@", 1)[0]
                via = parts._replace(netloc=f"{userinfo}@127.0.0.1:{proxy.port}").geturl()
                proc = self._popen(repo, via, "apply")
                delay = rng.uniform(0.5, 8.0)
                try:
                    proc.wait(timeout=delay)
                    return Outcome(kind, f"ended before the fault at {delay:.1f} s",
                                   proc.returncode, None)
                except subprocess.TimeoutExpired:
                    pass
                if kind == "proxy-cut":
                    proxy.cut()
                    try:
                        proc.wait(timeout=120)
                    except subprocess.TimeoutExpired:
                        os.kill(proc.pid, signal.SIGKILL)
                        proc.wait()
                        return Outcome(kind, f"cut at {delay:.1f} s", None, None,
                                       problems=["the client hung after the cut"])
                    return Outcome(kind, f"cut at {delay:.1f} s", proc.returncode, None)
                proxy.freeze()
                # A frozen peer acknowledges at TCP level: only the supervisor's kill ends it.
                code = self._finish(proc, 3.0, "kill")
                proxy.cut()
                return Outcome(kind, f"froze at {delay:.1f} s, killed 3 s later", code, None)
        if kind == "server-stop":
            proc = self._popen(repo, db.url, "apply")
            delay = rng.uniform(0.5, 8.0)
            try:
                proc.wait(timeout=delay)
                code: int | None = proc.returncode
            except subprocess.TimeoutExpired:
                self.server.stop("immediate")
                self.server.start()
                proc.wait(timeout=120)
                code = proc.returncode
            return Outcome(kind, f"stop -m immediate at {delay:.1f} s", code, None)
        if kind == "kill-rollback":
            code0, out = cli(repo, "apply", "--database-url", db.url)
            if code0 != 0:
                return Outcome(kind, "apply before rollback failed", code0, None,
                               problems=[f"apply: {out.get('error')}"])
            delay = rng.uniform(0.5, 6.0)
            code = self._finish(self._popen(repo, db.url, "rollback"), delay, "kill")
            return Outcome(kind, f"rollback kill -9 at {delay:.1f} s", code, None)
        raise ValueError(kind)

    def _wait_journal(self, repo: Path, proc: subprocess.Popen[str], step: str) -> int | None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return proc.returncode
            for path in (repo / ".schemactl").glob("journal-*.json"):
                try:
                    now = json.loads(path.read_text())["step"]
                except (ValueError, KeyError, OSError):
                    continue
                if now == step or (step in ("dump", "migration") and now in
                                   ("backup", "upgrade")):
                    time.sleep(0.5)
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return None
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return None

    # -- after the fault ------------------------------------------------------------------

    def _converge(self, o: Outcome, repo: Path, name: str, fingerprint: tuple[int, str]) -> None:
        db = self.target(name)
        code, st = cli(repo, "status", "--database-url", db.url)
        if code != 0:
            o.problems.append(f"status exit {code}: {st.get('error')}")
        o.interrupted = st.get("interrupted")  # type: ignore[assignment]
        # A rollback that finished moved the database back: apply brings it to HEAD again.
        code, out = cli(repo, "apply", "--wait", "60", "--database-url", db.url)
        if code != 0:
            o.problems.append(f"next apply exit {code}: {out.get('error')}")
            with connect(db) as conn:
                rows = conn.execute("select pid, state, wait_event, left(query, 80), "
                                    "client_port from pg_stat_activity where "
                                    "application_name like 'schemactl%%'").fetchall()
            o.problems.append(f"sessions: {rows}")
            return
        if revision_of(db) != TARGET:
            o.problems.append(f"alembic_version {revision_of(db)}, expected {TARGET}")
        after = notes_fingerprint(db)
        o.rows_lost = max(0, fingerprint[0] - after[0])
        if after != fingerprint:
            o.problems.append(f"rows changed: {fingerprint} → {after}")
        with connect(db) as conn:
            invalid = conn.execute("select count(*) from pg_index where not indisvalid"
                                   ).fetchone()
            rows = conn.execute("select id::text, details from audit_log where status = "
                                "'success' and action = 'apply'").fetchall()
        if invalid and invalid[0]:
            o.problems.append(f"{invalid[0]} invalid index(es) left")
        covered: dict[str, int] = {}
        ids = set()
        for row_id, details in rows:
            revs = details.get("revisions") or [details.get("revision")]
            for r in revs:
                if r in PENDING:
                    covered[r] = covered.get(r, 0) + 1
                    ids.add(row_id)
        if o.kind != "kill-rollback" and covered != {r: 1 for r in PENDING}:
            o.problems.append(f"success audit rows per revision {covered}")
        log = git_run(repo, "log", "--format=%B%x00")
        commits = [m for m in log.split("\x00") if "Schemactl-Action: apply" in m
                   and "Schemactl-Status: success" in m and any(
                       f"Schemactl-Audit: {i}" in m for i in ids)]
        if len(commits) != len(ids):
            o.problems.append(f"{len(commits)} success commit(s) for {len(ids)} audit row(s)")
        for i in ids:
            if log.count(f"Schemactl-Audit: {i}\n") > 1:
                o.problems.append(f"audit {i} committed twice")
        if git_run(repo, "status", "--porcelain").strip():
            o.problems.append("git not clean: " + git_run(repo, "status", "--porcelain")[:200])
        code, st = cli(repo, "status", "--database-url", db.url)
        if code != 0 or st.get("interrupted") or st.get("drift"):
            o.problems.append(f"status after: interrupted={st.get('interrupted')} "
                              f"drift={st.get('drift')}")
