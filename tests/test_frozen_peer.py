"""A peer that acknowledges at TCP level but never answers: the watchdog ends the wait (exit 3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from schemactl.adapters import watchdog
from schemactl.adapters.database import Target, connect
from tests.apply_helpers import add_column, add_notes, idle_in_transaction, revision_of
from tests.tcp_proxy import TcpProxy, proxied


@pytest.fixture
def quick_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watchdog, "STALL_AFTER_S", 1.0)
    monkeypatch.setattr(watchdog, "PROBE_CONNECT_TIMEOUT_S", 2)


def test_a_frozen_peer_ends_the_wait_with_a_connection_error(db: Target,
                                                             quick_watchdog: None) -> None:
    parts = urlsplit(db.url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        conn = connect(proxied(db, proxy.port))
        assert conn.execute("select 1").fetchone() == (1,)
        proxy.freeze()
        rescue = threading.Timer(30, proxy.cut)  # without the watchdog: fail, do not hang
        rescue.start()
        started = time.monotonic()
        try:
            with pytest.raises(psycopg.OperationalError):
                conn.execute("select 2")
        finally:
            rescue.cancel()
        waited = time.monotonic() - started
        conn.close()
    # One window, one probe that cannot connect, one poll: never the 10 minutes of
    # statement_timeout, never forever.
    assert waited < 15, waited


def test_a_long_statement_on_a_live_server_is_left_alone(db: Target,
                                                         quick_watchdog: None) -> None:
    parts = urlsplit(db.url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        with connect(proxied(db, proxy.port)) as conn:
            started = time.monotonic()
            assert conn.execute("select pg_sleep(4), 7").fetchone() == ("", 7)
            assert time.monotonic() - started >= 4


@pytest.mark.slow
@pytest.mark.parametrize("where", ["migration", "dump"])
def test_apply_through_a_peer_frozen_mid_run_exits_3_and_the_next_apply_converges(
        repo: Path, db: Target, where: str) -> None:
    """Frozen with the migration's transaction open, or while pg_dump streams the backup."""
    from tests.conftest import run_cli

    add_notes(repo)
    assert run_cli("apply", "--json", "--database-url", db.url, cwd=repo).code == 0
    add_column(repo, "0003_tags", "0002_notes", "tags")
    parts = urlsplit(db.url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        via = proxied(db, proxy.port)
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
        env.update({"SCHEMACTL_TEST_PAUSE_AT": where, "SCHEMACTL_TEST_PAUSE_SECONDS": "3",
                    "SCHEMACTL_STALL_AFTER_S": "2", "SCHEMACTL_STALL_PROBE_TIMEOUT_S": "3"})
        proc = subprocess.Popen([sys.executable, "-m", "schemactl.cli", "apply", "--json",
                                 "--database-url", via.url], cwd=repo, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not idle_in_transaction(
                    db, "pg_dump" if where == "dump" else "schemactl apply%"):
                time.sleep(0.1)
            proxy.freeze()
            out, err = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 3, (out, err)
    assert "Traceback" not in err, err
    data = json.loads(out)
    assert data["ok"] is False and "\n" not in data["error"]["message"], data
    assert revision_of(db) == "0002_notes"
    st = run_cli("status", "--json", "--database-url", db.url, cwd=repo)
    assert st.code == 0 and st.json["pending"] == ["0003_tags"], st
    # The proxy is gone, so the frozen session's backend ends and its lock with it.
    res = run_cli("apply", "--json", "--wait", "30", "--database-url", db.url, cwd=repo)
    assert res.code == 0 and res.json["applied"] == ["0003_tags"], res
    assert revision_of(db) == "0003_tags"


@pytest.mark.parametrize("value", ["abc", "-5", "0", "inf", "nan"])
def test_a_mistyped_bound_is_the_default(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SCHEMACTL_STALL_AFTER_S", value)
    assert watchdog._seconds("SCHEMACTL_STALL_AFTER_S", 30.0) == 30.0
    monkeypatch.setenv("SCHEMACTL_STALL_AFTER_S", "2.5")
    assert watchdog._seconds("SCHEMACTL_STALL_AFTER_S", 30.0) == 2.5
