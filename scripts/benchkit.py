"""What the benchmark scripts share: a server with scratch databases, git commits in a
schema repository, pgbench and the ACCESS EXCLUSIVE watcher.

Used by bench_apply.py, bench_backup.py and bench_online.py (``sys.path`` holds scripts/
when a script runs). Benchmarks, not tests: nothing here asserts.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from schemactl.adapters.database import Target, connect  # noqa: E402

# The base fields every table of a new repository has (schemactl.toml [[base_fields]]).
BASE_COLUMNS = """  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
"""


@contextmanager
def scratch_databases(database_url: str | None, tmp: Path,
                      *names: str) -> Iterator[tuple[Target, list[Target], str]]:
    """(admin, one fresh database per name, server version); all dropped afterwards.

    Without ``database_url`` an embedded PostgreSQL (durable, as a user's) runs in ``tmp``.
    """
    server = None
    admin: Target | None = None
    try:
        if database_url:
            admin = Target(database_url)
        else:
            from schemactl.adapters.embedded import EmbeddedServer

            server = EmbeddedServer(tmp / "pg" / ".schemactl")
            server.start()
            admin = Target(server.secret_url())
        with connect(admin) as conn:
            for name in names:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                conn.execute(f"CREATE DATABASE {name}")
            version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        yield admin, [admin.with_database(n) for n in names], version
    finally:
        if admin is not None:
            try:
                with connect(admin) as conn:
                    for name in names:
                        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            except Exception:  # noqa: BLE001 - the server may be gone; stop it anyway
                pass
        if server is not None:
            server.stop()


def git_commit(repo: Path, message: str) -> None:
    """Everything in ``repo`` committed (as propose commits a migration with its definition)."""
    for args in (("add", "-A"), ("commit", "-q", "-m", message)):
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=bench", "-c",
                        "user.email=bench@localhost", *args], check=True, capture_output=True)


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min {five:.1f}), {os.cpu_count()} CPUs"


def find_pgbench() -> Path:
    candidates = []
    try:
        from schemactl.adapters.embedded import wheel_bin_dir

        candidates.append(wheel_bin_dir() / "pgbench")
    except Exception:  # noqa: BLE001 - fall back to the distribution's
        pass
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"),
                                           reverse=True)]
    found = shutil.which("pgbench")
    if found:
        candidates.append(Path(found))
    for c in candidates:
        if c.is_file():
            return c
    raise SystemExit("no pgbench found")


def start_pgbench(target: Target, script: Path, clients: int, seconds: int,
                  log_prefix: Path) -> subprocess.Popen[str]:
    """pgbench running ``script`` for ``seconds``, logging every transaction."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(target.url)
    env = {"PGPASSWORD": unquote(parts.password or ""), "PATH": "/usr/bin:/bin"}
    return subprocess.Popen(
        [str(find_pgbench()), "-n", "-c", str(clients), "-j", str(min(clients, 2)), "-T",
         str(seconds), "-f", str(script), "-l", f"--log-prefix={log_prefix}",
         "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432),
         "-U", parts.username or "postgres", parts.path.lstrip("/")],
        env=env, cwd=script.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class LockWatcher(threading.Thread):
    """Polls pg_locks for ACCESS EXCLUSIVE on one table; records each contiguous hold."""

    def __init__(self, target: Target, table: str) -> None:
        super().__init__(daemon=True)
        self.target = target
        self.table = table
        self.stop = threading.Event()
        self.holds: list[float] = []
        self.polls = 0

    def run(self) -> None:
        with connect(self.target) as conn:
            start: float | None = None
            while not self.stop.is_set():
                row = conn.execute(
                    "select count(*) from pg_locks where locktype = 'relation' and granted "
                    "and mode = 'AccessExclusiveLock' and relation = to_regclass(%s)",
                    (self.table,)).fetchone()
                self.polls += 1
                now = time.perf_counter()
                held = bool(row and row[0])
                if held and start is None:
                    start = now
                elif not held and start is not None:
                    self.holds.append(now - start)
                    start = None
                time.sleep(0.0005)
