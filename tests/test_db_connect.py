"""How an application or a person connects: `db url`, `db env`, `db psql`.

On the repository's real embedded server (and on the test server through
--database-url): the printed URL connects with psycopg, psql runs with the password in
its environment and never in its arguments, and `db status` never shows the password.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from schemactl.adapters.database import Target
from tests.conftest import run_cli


def _password(repo: Path) -> str:
    return (repo / ".schemactl" / "password").read_text().strip()


def test_db_url_with_password_connects_and_without_it_hides_it(repo: Path) -> None:
    shown = run_cli("db", "url", "--show-password", "--repo", str(repo))
    assert shown.code == 0, shown
    url = shown.stdout.strip()
    password = _password(repo)
    assert password in url
    with psycopg.connect(url, connect_timeout=10) as conn:
        assert conn.execute("select 1").fetchone() == (1,)

    hidden = run_cli("db", "url", "--repo", str(repo), "--json")
    assert hidden.code == 0, hidden
    data = hidden.json
    assert data["ok"] and data["embedded"] and not data["password_shown"]
    assert password not in hidden.stdout and data["url"] == url.replace(f":{password}", "")

    for args in (("db", "status"), ("db", "status", "--json"), ("status",)):
        st = run_cli(*args, "--repo", str(repo))
        assert st.code == 0, st
        assert password not in st.stdout + st.stderr, args
        assert "127.0.0.1" in st.stdout


def test_db_env_exports_database_url_for_eval(repo: Path) -> None:
    res = run_cli("db", "env", "--repo", str(repo))
    assert res.code == 0, res
    (line,) = res.stdout.strip().splitlines()
    words = shlex.split(line)
    assert words[0] == "export" and words[1].startswith("DATABASE_URL=")
    # What `eval "$(schemactl db env)"` gives the application's process.
    shell = subprocess.run(["bash", "-c", f'eval "$({shlex.quote(sys.executable)} -m '
                                          f'schemactl.cli db env --repo {shlex.quote(str(repo))})"'
                                          ' && printf %s "$DATABASE_URL"'],
                           capture_output=True, text=True, timeout=60)
    assert shell.returncode == 0, shell.stderr
    with psycopg.connect(shell.stdout, connect_timeout=10) as conn:
        assert conn.execute("select current_user").fetchone() == ("postgres",)
    as_json = run_cli("db", "env", "--repo", str(repo), "--json").json
    assert as_json["variables"]["DATABASE_URL"] == shell.stdout


def test_db_psql_runs_a_command(repo: Path) -> None:
    res = run_cli("db", "psql", "--repo", str(repo), "-c", "select 40 + 2 as answer")
    assert res.code == 0, res
    assert "answer" in res.stdout and "42" in res.stdout

    as_json = run_cli("db", "psql", "--repo", str(repo), "-At", "-c", "select 7", "--json")
    assert as_json.code == 0, as_json
    data = as_json.json
    assert data["ok"] and data["returncode"] == 0 and data["stdout"] == "7\n"
    assert _password(repo) not in as_json.stdout

    bad = run_cli("db", "psql", "--repo", str(repo), "--json", "-c", "select nope")
    assert bad.code == 1, bad
    assert bad.json["error"]["code"] == "psql" and "nope" in bad.json["stderr"]


def test_db_psql_passes_the_password_in_the_environment_never_argv(repo: Path) -> None:
    run_cli("db", "start", "--repo", str(repo))
    password = _password(repo)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",
                                                             "SCHEMACTL_DATABASE_URL")}
    proc = subprocess.Popen([sys.executable, "-m", "schemactl.cli", "db", "psql", "--repo",
                             str(repo), "-c", "select pg_sleep(3)"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seen = None
        deadline = time.monotonic() + 20
        while seen is None and time.monotonic() < deadline:
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                    # This test's psql (another checkout may run the same test meanwhile).
                    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                    if argv and argv[0].endswith(b"/psql") and b"select pg_sleep(3)" in argv \
                            and proc.pid in (int(pid), ppid):
                        seen = (argv, Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"))
                except OSError:
                    continue
            time.sleep(0.05)
        assert seen is not None, "psql never ran"
        argv, environ = seen
        assert not any(password.encode() in a for a in argv), argv
        assert f"PGPASSWORD={password}".encode() in environ
    finally:
        assert proc.wait(timeout=30) == 0


def test_db_psql_and_url_on_another_server(repo: Path, db: Target) -> None:
    res = run_cli("db", "psql", "--repo", str(repo), "--database-url", db.url, "-At", "-c",
                  "select current_database()")
    assert res.code == 0, res
    assert res.stdout.strip() == db.database
    url = run_cli("db", "url", "--repo", str(repo), "--database-url", db.url, "--json").json
    assert url["url"] == db.display and not url["embedded"]
    # Nothing started an embedded server for these.
    assert not (repo / ".schemactl" / "pgdata").exists()


def test_db_url_outside_a_repository_is_bad_input(tmp_path: Path) -> None:
    res = run_cli("db", "url", "--repo", str(tmp_path), "--json")
    assert res.code == 2, res
    assert res.json["command"] == "db url" and res.json["error"]["code"] == "bad_input"
    assert "Traceback" not in res.stderr
