"""Issue 12: faults and odd input end in one line with the right exit code, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from schemactl.adapters.database import Target
from tests.apply_helpers import (
    add_column,
    add_notes,
    audit_rows,
    idle_in_transaction,
    revision_of,
)
from tests.tcp_proxy import TcpProxy, proxied


def _clean_failure(res, code: int) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert res.code == code, res
    assert "Traceback" not in res.stderr, res.stderr
    out = res.json
    assert out["ok"] is False and out["error"]["message"], out
    assert "\n" not in out["error"]["message"]
    return out  # type: ignore[no-any-return]


def test_numeric_default_beyond_any_range_is_a_rule_violation(repo: Path, cli) -> None:  # type: ignore[no-untyped-def]
    text = ("table: prices\ncolumns:\n"
            "  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}\n"
            "  - {name: amount, type: 'numeric(10,2)', default: 1e308}\n")
    res = cli("validate", "--json", "-", cwd=repo, input=text)
    out = _clean_failure(res, 1)
    assert any(v["rule"] == "SC404" for v in out["violations"]), out


def test_deeply_nested_json_is_bad_input(repo: Path, cli) -> None:  # type: ignore[no-untyped-def]
    text = '{"table": "x", "columns": ' + "[" * 20000 + "]" * 20000 + "}"
    res = cli("validate", "--json", "-", cwd=repo, input=text)
    _clean_failure(res, 2)


@pytest.mark.parametrize("password", ["p@ss:w/rd%", "secret#frag", "sec@ret:99/xyz"])
def test_unencoded_password_in_url_is_refused_unechoed(repo: Path, cli, password: str) -> None:  # type: ignore[no-untyped-def]
    url = f"postgresql://app:{password}@127.0.0.1:1/appdb"
    started = time.monotonic()
    res = cli("status", "--json", "--database-url", url, cwd=repo)
    out = _clean_failure(res, 2)
    assert out["error"]["code"] == "bad_url" and "percent-encode" in out["error"]["hint"]
    everything = res.stdout + res.stderr
    for part in {password, *password.replace("@", " ").replace(":", " ").replace("/", " ")
                 .replace("#", " ").replace("%", " ").split()} - {"app", "appdb"}:
        if len(part) >= 3:
            assert part not in everything, (part, everything)
    assert time.monotonic() - started < 20  # no DNS lookup of a fragment taken for a host


def test_scrub_removes_encoded_and_decoded_password() -> None:
    t = Target("postgresql://app:p%40ss%3Aword@127.0.0.1:5432/db")
    text = "pg_dump: error: password p%40ss%3Aword or p@ss:word rejected"
    assert "p@ss:word" not in t.scrub(text) and "p%40ss%3Aword" not in t.scrub(text)


def test_pg_restore_errors_are_scrubbed_like_pg_dumps(tmp_path: Path) -> None:
    """A real pg_restore whose error quotes the password (here: through the archive path)."""
    from schemactl.adapters import pgtools
    from schemactl.errors import EnvironmentError_

    t = Target("postgresql://app:p%40ss%3Aword@127.0.0.1:5432/db")
    exe, _ = pgtools.find_tool("pg_restore", 15)
    for archive in (tmp_path / "p@ss:word" / "x.dump", tmp_path / "p%40ss%3Aword.dump"):
        with pytest.raises(EnvironmentError_) as err:
            pgtools.restore_script(exe, archive, target=t)
        message = err.value.message
        assert message.startswith("pg_restore failed:") and ".dump" in message, message
        for secret in ("p@ss:word", "p%40ss%3Aword"):
            assert secret not in message, message



@pytest.mark.slow
def test_connection_cut_mid_upgrade_is_one_line_and_audited(repo: Path, db: Target) -> None:
    """The TCP connection dies while the migration's transaction is open: exit 3, a JSON
    object, a failed audit row (the database still answers), and the next apply converges."""
    from tests.conftest import run_cli

    add_notes(repo)
    assert run_cli("apply", "--json", "--database-url", db.url, cwd=repo).code == 0
    add_column(repo, "0003_tags", "0002_notes", "tags")
    parts = urlsplit(db.url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        via = proxied(db, proxy.port)
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
        env.update({"SCHEMACTL_TEST_PAUSE_AT": "migration", "SCHEMACTL_TEST_PAUSE_SECONDS": "3"})
        proc = subprocess.Popen([sys.executable, "-m", "schemactl.cli", "apply", "--json",
                                 "--database-url", via.url], cwd=repo, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not idle_in_transaction(db):
                time.sleep(0.1)
            proxy.cut()
            out, err = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
    import json

    assert proc.returncode == 3, (out, err)
    assert "Traceback" not in err, err
    data = json.loads(out)
    assert data["ok"] is False and "\n" not in data["error"]["message"], data
    assert revision_of(db) == "0002_notes"
    failed = [r for r in audit_rows(db) if r["status"] == "failed"]
    assert failed, audit_rows(db)
    # The cut sessions' backends may take a moment to go (and their advisory lock with them).
    res = run_cli("apply", "--json", "--wait", "30", "--database-url", db.url, cwd=repo)
    assert res.code == 0 and res.json["applied"] == ["0003_tags"], (res.stdout, out)
    assert revision_of(db) == "0003_tags"



def test_status_answers_when_its_later_connections_fail(repo: Path, db: Target, cli) -> None:  # type: ignore[no-untyped-def]
    """Seen in the fault campaign: status printed no status object when a connection after
    its first one failed (a loaded machine, a flapping network). It still answers, saying
    what it could not check."""
    from tests.apply_helpers import add_notes

    add_notes(repo)
    assert cli("apply", "--json", "--database-url", db.url, cwd=repo).code == 0
    parts = urlsplit(db.url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        proxy.allow = 1
        st = cli("status", "--json", "--database-url", proxied(db, proxy.port).url, cwd=repo)
    assert "Traceback" not in st.stderr
    js = st.json
    assert st.code == 0 and js["command"] == "status", st
    assert js["db_revision"] == "0002_notes" and js["pending"] == []
    assert any(d.get("kind") == "unchecked" for d in js["drift"]), js
