"""The fault campaign: apply and rollback killed, cut, frozen or left by their server.

Used by scripts/chaos.py (many runs, figures for docs/reliability.md) and by
tests/test_chaos.py (a handful in CI). Each run makes a repository with a 2-revision chain
pending, proposed by `schemactl propose` (a column, then a concurrently built index) over
a table with rows, injects one fault, then checks: ``status`` answers and says what
happened, the next ``apply`` converges, the rows and their checksum are equal,
``alembic_version`` is at git's head (the target, or where a finished rollback left git),
every revision is covered by exactly one success audit row and one commit, no invalid
index is left, and git is clean. The fleet kind does the same over two targets of
schemactl.toml with ``apply --all``.
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
    NOTES_BASE,
    add_notes,
    insert_notes,
    notes_fingerprint,
    revision_of,
)
from tests.apply_helpers import git as git_run
from tests.tcp_proxy import TcpProxy

PAUSE_STEPS = ["dump", "backup_done", "upgrade", "migration", "upgraded", "verified", "audited"]
KINDS = ["kill-random", "kill-step", "proxy-cut", "proxy-freeze", "server-stop",
         "kill-rollback", "kill-restore", "kill-fleet"]
# Kinds after which a finished undo may have moved git (and the database) back.
UNDO_KINDS = ("kill-rollback", "kill-restore")
TAGS = NOTES_BASE + "  - {name: tags, type: text}\n"
TAGS_INDEXED = TAGS + "indexes:\n  - {columns: [body]}\n"


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
    # What the first `status` after the fault said (interrupted run, pending, or clean).
    status_said: str = ""

    @property
    def wedged(self) -> bool:
        return bool(self.problems)


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "SCHEMACTL_DATABASE_URL", "SCHEMACTL_ACTOR")}
    env.update(extra or {})
    return env


def cli(repo: Path, *args: str, timeout: float = 180,
        env: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    proc = subprocess.run([sys.executable, "-m", "schemactl.cli", *args, "--json"], cwd=repo,
                          capture_output=True, text=True, env=_env(env), timeout=timeout)
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

    def prepare(self, kind: str = "") -> Run:
        """A repository at 0002 with rows and two proposals pending; a database of its own
        (two, targets of schemactl.toml, for the fleet kind)."""
        from schemactl import api

        self.n += 1
        name = f"chaos_{os.getpid()}_{self.n}"
        names = [f"{name}_a", f"{name}_b"] if kind == "kill-fleet" else [name]
        admin = self.target("postgres")
        with connect(admin) as conn:
            for n in names:
                conn.execute(f'create database "{n}"')
        repo = self.workdir / name
        api.init(repo, actor="user:chaos")
        run = Run(repo, names)
        if kind == "kill-fleet":
            with open(repo / "schemactl.toml", "a", encoding="utf-8") as fh:
                for i, n in enumerate(names):
                    fh.write(f'\n[targets.t{i}]\nurl_env = "CHAOS_URL_{i}"\n')
                    run.env[f"CHAOS_URL_{i}"] = self.target(n).url
            git_run(repo, "commit", "-q", "-am", "targets")
        add_notes(repo)
        for n in names:
            db = self.target(n)
            code, out = cli(repo, "apply", "--database-url", db.url)
            assert code == 0, out
            insert_notes(db, self.rows)
            run.fingerprints[n] = notes_fingerprint(db)
        for text in (TAGS, TAGS_INDEXED):
            res = api.propose(repo, stdin=text, actor="user:chaos")
            assert res.ok and res.migration, res
            run.pending.append(str(res.migration["revision"]))
        return run

    def drop(self, run: Run) -> None:
        import shutil

        for name in run.names:
            try:
                with connect(self.target("postgres")) as conn:
                    conn.execute(f'drop database if exists "{name}" with (force)')
            except Exception:  # noqa: BLE001 - a leftover database only costs disk
                pass
        shutil.rmtree(run.repo, ignore_errors=True)

    # -- one run --------------------------------------------------------------------------

    def run(self, kind: str, rng: random.Random) -> Outcome:
        started = time.monotonic()
        run = self.prepare(kind)
        try:
            outcome = self._fault(kind, rng, run)
            if kind == "kill-fleet":
                self._converge_fleet(outcome, run)
            else:
                self._converge(outcome, run)
        finally:
            self.drop(run)
        outcome.seconds = time.monotonic() - started
        return outcome

    def _popen(self, repo: Path, url: str | None, *args: str,
               env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        where = ["--database-url", url] if url else []
        return subprocess.Popen([sys.executable, "-m", "schemactl.cli", *args, "--json",
                                 *where], cwd=repo, env=_env(env),
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

    def _fault(self, kind: str, rng: random.Random, run: Run) -> Outcome:
        repo = run.repo
        db = self.target(run.names[0])
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
        if kind == "kill-restore":
            code0, out = cli(repo, "apply", "--database-url", db.url)
            backup = out.get("backup") if isinstance(out.get("backup"), dict) else None
            if code0 != 0 or not backup:
                return Outcome(kind, "apply before the restore failed", code0, None,
                               problems=[f"apply: {out.get('error')}"])
            delay = rng.uniform(0.5, 8.0)
            proc = self._popen(repo, db.url, "rollback", "--restore-backup", str(backup["id"]))
            code = self._finish(proc, delay, "kill")
            return Outcome(kind, f"restore-backup kill -9 at {delay:.1f} s", code, None)
        if kind == "kill-fleet":
            delay = rng.uniform(0.5, 10.0)
            proc = self._popen(repo, None, "apply", "--all", env=run.env)
            code = self._finish(proc, delay, "kill")
            return Outcome(kind, f"apply --all kill -9 at {delay:.1f} s", code, None)
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

    def _converge(self, o: Outcome, run: Run) -> None:
        repo, name = run.repo, run.names[0]
        db = self.target(name)
        code, st = cli(repo, "status", "--database-url", db.url)
        if code != 0:
            o.problems.append(f"status exit {code}: {st.get('error')}")
        o.interrupted = st.get("interrupted")  # type: ignore[assignment]
        o.status_said = _said(st)
        code, out = cli(repo, "apply", "--wait", "60", "--database-url", db.url)
        if code != 0:
            o.problems.append(f"next apply exit {code}: {out.get('error')}")
            o.problems.append(f"sessions: {self._sessions(db)}")
            return
        self._check_database(o, run, name, undo=o.kind in UNDO_KINDS)
        self._check_git(o, run)
        code, st = cli(repo, "status", "--database-url", db.url)
        if code != 0 or st.get("interrupted") or st.get("drift") or st.get("pending"):
            o.problems.append(f"status after: exit {code} interrupted={st.get('interrupted')} "
                              f"pending={st.get('pending')} drift={st.get('drift')} "
                              f"error={st.get('error')} {st.get('unparsable') or ''}"
                              f"{st.get('stderr') or ''}")

    def _converge_fleet(self, o: Outcome, run: Run) -> None:
        repo = run.repo
        code, st = cli(repo, "status", "--all", env=run.env)
        if code != 0:
            o.problems.append(f"status --all exit {code}: {st.get('error')}")
        rows = st.get("targets") if isinstance(st.get("targets"), list) else []
        o.status_said = "; ".join(
            f"{r.get('name')}: {_said(r)}" for r in rows if isinstance(r, dict))  # type: ignore[union-attr]
        code, out = cli(repo, "apply", "--all", "--wait", "60", env=run.env)
        if code != 0:
            targets = out.get("targets") or []
            o.problems.append(f"next apply --all exit {code}: {out.get('error')} " + str(
                [(t.get("name"), t.get("status"), t.get("error")) for t in targets]))  # type: ignore[union-attr]
            return
        for name in run.names:
            self._check_database(o, run, name, undo=False)
        self._check_git(o, run)
        code, st = cli(repo, "status", "--all", env=run.env)
        for r in st.get("targets") or []:  # type: ignore[union-attr]
            if r.get("pending") or r.get("drift") or not r.get("reachable"):
                o.problems.append(f"status after: {r}")

    def _sessions(self, db: Target) -> list[tuple[object, ...]]:
        with connect(db) as conn:
            return [tuple(r) for r in conn.execute(
                "select pid, state, wait_event, left(query, 80), client_port from "
                "pg_stat_activity where application_name like 'schemactl%%'").fetchall()]

    def _check_database(self, o: Outcome, run: Run, name: str, undo: bool) -> None:
        """The database at git's head, its rows whole, no invalid index, one success audit
        row per applied revision."""
        from schemactl.adapters import migrator
        from schemactl.model.repo import SchemaRepo

        db = self.target(name)
        head = migrator.head(SchemaRepo.open(run.repo))
        expected = run.pending[-1]
        if undo:
            # A finished undo moved git back: the database follows git's head.
            if head not in run.pending and head != "0002_notes":
                o.problems.append(f"git head {head} after the undo")
            expected = head or ""
        if revision_of(db) != expected:
            o.problems.append(f"{name}: alembic_version {revision_of(db)}, expected {expected}")
        after = notes_fingerprint(db)
        before = run.fingerprints[name]
        o.rows_lost += max(0, before[0] - after[0])
        if after != before:
            o.problems.append(f"{name}: rows changed: {before} → {after}")
        with connect(db) as conn:
            invalid = conn.execute("select count(*) from pg_index where not indisvalid"
                                   ).fetchone()
            rows = conn.execute("select id::text, details from audit_log where status = "
                                "'success' and action = 'apply'").fetchall()
        if invalid and invalid[0]:
            o.problems.append(f"{name}: {invalid[0]} invalid index(es) left")
        covered: dict[str, int] = {}
        for row_id, details in rows:
            revs = details.get("revisions") or [details.get("revision")]
            for r in revs:
                if r in run.pending:
                    covered[r] = covered.get(r, 0) + 1
                    run.audit_ids.add(row_id)
        if not undo and covered != {r: 1 for r in run.pending}:
            o.problems.append(f"{name}: success audit rows per revision {covered}")

    def _check_git(self, o: Outcome, run: Run) -> None:
        """Each success audit row in exactly one success commit; git clean."""
        repo = run.repo
        log = git_run(repo, "log", "--format=%B%x00")
        for i in run.audit_ids:
            n = log.count(f"Schemactl-Audit: {i}\n")
            if n != 1:
                o.problems.append(f"audit {i} in {n} commit(s)")
        if git_run(repo, "status", "--porcelain").strip():
            o.problems.append("git not clean: " + git_run(repo, "status", "--porcelain")[:200])


@dataclass
class Run:
    """One run's repository, databases and what they held before the fault."""

    repo: Path
    names: list[str]
    env: dict[str, str] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    fingerprints: dict[str, tuple[int, str]] = field(default_factory=dict)
    audit_ids: set[str] = field(default_factory=set)


def _said(st: dict[str, object]) -> str:
    """A short form of what `status` said after the fault."""
    if st.get("error"):
        err = st["error"]
        return f"error {err.get('code') if isinstance(err, dict) else err}"
    if st.get("interrupted"):
        return f"interrupted: {str(st['interrupted'])[:70]}"
    pending = st.get("pending") or []
    return f"{len(pending)} pending" if pending else "at head"  # type: ignore[arg-type]
