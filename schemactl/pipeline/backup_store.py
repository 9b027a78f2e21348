"""The backup directory: manifests, listing, verifying and cleaning up half-written backups.

A backup is a dump (``<id>.dump``, custom format, or the folder ``<id>.dir``, directory
format) plus its manifest ``<id>.json``. The manifest is written first with status
``in_progress`` (naming the writing process); the dump is written under a ``.partial``
name and only a complete one is renamed and its manifest marked ``complete``. Anything
else never counts as a backup and is removed by :func:`cleanup_incomplete` once its
writer is gone.

Manifest keys: ``id``, ``created_at``, ``database`` (redacted URL), ``revision_before``,
``revisions`` (the run it was taken for), ``scope`` ("touched" or "full"),
``scope_reason`` (why a run was dumped whole), ``tables`` (``[{table, rows}]``: the
tables whose data it holds, with their exact row counts; a full backup holds every
table's), ``format``, ``jobs``, ``file``, ``size`` (bytes), ``sha256``, ``marks``
(``txid`` and row counts, for `rollback --restore-backup`; see
`schemactl.pipeline.dump_plan`), ``pg_dump_version``,
``server_version``, ``duration_s``, ``status``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemactl.adapters import pgtools
from schemactl.errors import BadInputError
from schemactl.model.repo import SchemaRepo

CHUNK = 1 << 20


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
    scope: str = "full"
    tables: list[str] = field(default_factory=list)
    format: str = "custom"
    revisions: list[str] = field(default_factory=list)
    scope_reason: str | None = None

    def holds(self, table: str) -> bool:
        """Whether the backup holds the data of ``schema.table``."""
        return self.scope == "full" or table in self.tables

    def brief(self) -> dict[str, Any]:
        """The `backup` object of an apply or rollback result."""
        return {"id": self.id, "path": self.path, "sha256": self.sha256, "scope": self.scope,
                "tables": list(self.tables)}

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def from_manifest(data: dict[str, Any], folder: Path) -> Backup:
    bid = str(data.get("id"))
    fmt = str(data.get("format") or "custom")
    name = str(data.get("file") or (f"{bid}.dir" if fmt == "directory" else f"{bid}.dump"))
    tables = [str(t.get("table")) for t in data.get("tables") or [] if isinstance(t, dict)]
    return Backup(
        id=bid, path=str(folder / name), manifest_path=str(folder / f"{bid}.json"),
        created_at=str(data.get("created_at", "")), database=str(data.get("database", "")),
        revision_before=data.get("revision_before"),
        pg_dump_version=str(data.get("pg_dump_version", "")),
        server_version=str(data.get("server_version", "")), size=int(data.get("size") or 0),
        sha256=str(data.get("sha256", "")), status=str(data.get("status", "unknown")),
        duration_s=float(data.get("duration_s") or 0.0),
        scope=str(data.get("scope") or "full"), tables=tables, format=fmt,
        revisions=[str(r) for r in data.get("revisions") or []],
        scope_reason=data.get("scope_reason"))


def writer_alive(data: dict[str, Any]) -> bool:
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


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def hash_path(path: Path) -> tuple[str, int]:
    """sha256 and size in bytes of a dump file, or of a dump folder (directory format).

    A folder hashes as its files in name order, each as its name, a NUL byte and its bytes.
    """
    digest = hashlib.sha256()
    size = 0
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            digest.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
    return digest.hexdigest(), size


def remove_path(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def list_backups(repo: SchemaRepo, *, include_incomplete: bool = False) -> list[Backup]:
    """Backups newest first; only complete ones unless asked."""
    folder = repo.backup_dir
    if not folder.is_dir():
        return []
    out: list[tuple[Backup, float]] = []
    for path in folder.glob("*.json"):
        data = read_manifest(path)
        if data is None or "id" not in data:
            continue
        b = from_manifest(data, folder)
        if b.status != "complete" or not Path(b.path).exists():
            if not include_incomplete:
                continue
            if b.status == "complete":
                b = from_manifest({**data, "status": "missing"}, folder)
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
    data = read_manifest(repo.backup_dir / f"{backup_id}.json")
    if data is None:
        raise BadInputError(f"no backup {backup_id}", hint="see `schemactl backups list`")
    b = from_manifest(data, repo.backup_dir)
    if b.status != "complete":
        raise BadInputError(f"backup {backup_id} is not complete (status {b.status})",
                            hint="an interrupted backup never counts; take a new one")
    return b


_PARTIAL = (".dump.partial", ".dir.partial")


def _manifest_keeps(manifest: Path) -> bool:
    data = read_manifest(manifest)
    return data is not None and (data.get("status") == "complete" or writer_alive(data))


def cleanup_incomplete(repo: SchemaRepo) -> list[str]:
    """Remove half-written backups whose writer is gone; returns the removed file names."""
    folder = repo.backup_dir
    removed: list[str] = []
    if not folder.is_dir():
        return removed
    live: set[str] = set()
    for path in folder.glob("*.json"):
        data = read_manifest(path)
        if data is None:
            continue
        bid = str(data.get("id", path.stem))
        if data.get("status") == "complete" or writer_alive(data):
            live.add(bid)
            continue
        for p in (path, folder / f"{bid}.dump", folder / f"{bid}.dir",
                  *(folder / f"{bid}{s}" for s in _PARTIAL)):
            if p.exists():
                remove_path(p)
                removed.append(p.name)
    for suffix in _PARTIAL:
        for p in folder.glob(f"*{suffix}"):
            bid = p.name[: -len(suffix)]
            # A writer makes its manifest before its partial file, so a partial seen now
            # whose manifest was not in the listing above is another thread's backup that
            # began meanwhile (a fleet run): read its manifest again before judging it.
            if bid in live or _manifest_keeps(folder / f"{bid}.json"):
                continue
            remove_path(p)
            removed.append(p.name)
    for p in folder.glob("*.json.tmp"):
        try:
            # A fresh one may be another thread's manifest being written (a fleet run).
            if time.time() - p.stat().st_mtime > 60:
                p.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
    return removed


_TOC_DATA = re.compile(r"^\d+; \d+ \d+ TABLE DATA (\S+) (\S+) ")


def data_tables_in(listing: str) -> set[str]:
    """``schema.table`` of every TABLE DATA entry of a ``pg_restore --list``."""
    return {f"{m.group(1)}.{m.group(2)}" for m in map(_TOC_DATA.match, listing.splitlines())
            if m}


def verify_backup(repo: SchemaRepo, backup_id: str) -> dict[str, Any]:
    """Re-hash a backup, let pg_restore read its table of contents, and check its scope.

    A scoped backup must hold table data for exactly the tables its manifest names.

    Returns:
        ``{"id", "ok", "scope", "sha256_ok", "size_ok", "restore_list_ok", "scope_ok",
        "entries", "data_tables", "problems"}``.

    Raises:
        BadInputError: no such complete backup.
        EnvironmentError_: no pg_restore new enough for the dump.
    """
    b = get_backup(repo, backup_id)
    problems: list[str] = []
    path = Path(b.path)
    base = {"id": b.id, "scope": b.scope, "format": b.format}
    if not path.exists():
        return {**base, "ok": False, "sha256_ok": False, "size_ok": False,
                "restore_list_ok": False, "scope_ok": False, "entries": 0, "data_tables": 0,
                "problems": [f"{path.name} is missing"]}
    sha, size = hash_path(path)
    if sha != b.sha256:
        problems.append("sha256 does not match the manifest")
    if size != b.size:
        problems.append(f"size {size} differs from the manifest's {b.size}")
    exe, _ = pgtools.find_tool("pg_restore", pgtools.major(b.pg_dump_version))
    proc = pgtools.restore_list(exe, path)
    entries = sum(1 for ln in proc.stdout.splitlines() if ln and not ln.startswith(";"))
    if proc.returncode != 0:
        problems.append(f"pg_restore --list failed: {proc.stderr.strip()[:300]}")
    found = data_tables_in(proc.stdout)
    scope_ok = True
    if b.scope == "touched" and proc.returncode == 0 and found != set(b.tables):
        scope_ok = False
        extra, missing = sorted(found - set(b.tables)), sorted(set(b.tables) - found)
        problems.append("table data does not match the manifest's scope"
                        + (f": unexpected {', '.join(extra)}" if extra else "")
                        + (f"; missing {', '.join(missing)}" if missing else ""))
    return {**base, "ok": not problems, "sha256_ok": sha == b.sha256,
            "size_ok": size == b.size, "restore_list_ok": proc.returncode == 0,
            "scope_ok": scope_ok, "entries": entries, "data_tables": len(found),
            "problems": problems}
