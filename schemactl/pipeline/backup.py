"""Backups: taking a pre-change dump scoped to what the run touches, and restoring from one.

``[backup] scope = "touched"`` (the default): one custom-format ``pg_dump`` holds the
schema of every table and the data of the tables the run's migrations alter or archive
(`schemactl.pipeline.scope`, `schemactl.pipeline.dump_plan`); every other table is
``--exclude-table-data``, and the touched tables' rows are counted in pg_dump's own
snapshot while it runs. A run whose operations are not all known, or ``scope = "full"``,
dumps everything (``format = "directory"`` with ``jobs = N`` in parallel). The dump
streams into a ``.partial`` name while it is hashed; only a complete one is renamed and
its manifest marked complete (`schemactl.pipeline.backup_store`). Retention runs after
each new backup (`schemactl.pipeline.retention`).

The tools themselves (which pg_dump, how it runs) are `schemactl.adapters.pgtools`.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schemactl.adapters import pgtools
from schemactl.adapters.database import Target
from schemactl.errors import BadInputError, EnvironmentError_
from schemactl.model.naming import DYNAMIC_SCHEMA
from schemactl.model.repo import SchemaRepo
from schemactl.pipeline.backup_store import (
    Backup,
    cleanup_incomplete,
    fsync_dir,
    get_backup,
    hash_path,
    list_backups,
    remove_path,
    verify_backup,
    write_json,
)
from schemactl.pipeline.dump_plan import Snapshot, plan_dump

if TYPE_CHECKING:

    from schemactl.pipeline.scope import Touches

# progress(step, done, total): bytes written so far; total is an estimate or None.
Progress = Callable[[str, int, int | None], None]

__all__ = ["Backup", "cleanup_incomplete", "create_backup", "get_backup", "list_backups",
           "missing_data", "restore", "restore_tables", "verify_backup"]


def _backup_folder(repo: SchemaRepo) -> Path:
    """The backup directory, made if needed and proven writable.

    Raises:
        EnvironmentError_: it cannot be made or written (exit 3, before anything changes).
    """
    folder = repo.backup_dir
    # Per thread too: a fleet run probes the folder from several threads at once.
    probe = folder / f".write-test-{os.getpid()}-{threading.get_ident()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise EnvironmentError_(
            f"the backup directory {folder} is not writable: {exc.strerror or exc}",
            hint="fix [backup] dir in schemactl.toml or the folder's permissions; nothing "
                 "was applied", code="backup_dir_unwritable") from exc
    return folder


def new_backup_id(revision_before: str | None) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    rev = re.sub(r"[^A-Za-z0-9_]", "_", revision_before or "base")[:40]
    return f"{stamp}-{rev}-{secrets.token_hex(3)}"


def create_backup(repo: SchemaRepo, target: Target, revision_before: str | None, *,
                  touches: Touches | None = None, progress: Progress | None = None,
                  backup_id: str | None = None, lock_wait_timeout_ms: int = 30_000,
                  prune: bool = True) -> Backup:
    """Dump the database before a run, scoped to what it touches, with its manifest.

    Args:
        repo: the schema repository (backup directory and ``[backup]`` settings).
        target: the database to dump.
        revision_before: the database's revision, recorded in the manifest.
        touches: what the run's migrations touch (None: unknown, so everything is dumped).
        progress: called with ("backup: N of M tables", bytes written, estimated total).
        backup_id: the id to use (default: time, revision and a random suffix).
        lock_wait_timeout_ms: how long pg_dump waits for its table locks before failing.
        prune: apply retention once the backup is complete.

    Raises:
        EnvironmentError_: the backup directory is not writable, no suitable pg_dump, or
            pg_dump failed (the partial files are removed).
    """
    config = repo.config
    folder = _backup_folder(repo)
    server_version, server_major, _db_size = pgtools.server_info(target)
    exe, dump_version = pgtools.find_tool("pg_dump", server_major)
    # A full backup's marks are taken before the dump's snapshot, a scoped one's in it
    # (_Snapshot): a write in between only makes a later restore more careful, never less.
    sc = plan_dump(repo, target, touches)
    scope, data, estimate = sc.scope, sc.data, sc.estimate
    directory = scope == "full" and config.backup_format == "directory"
    bid = backup_id or new_backup_id(revision_before)
    final = folder / (f"{bid}.dir" if directory else f"{bid}.dump")
    partial = final.with_name(final.name + ".partial")
    manifest = folder / f"{bid}.json"
    meta: dict[str, Any] = {
        "id": bid, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "database": target.display, "revision_before": revision_before,
        "revisions": list(touches.revisions) if touches else [],
        "scope": scope, "scope_reason": sc.reason,
        "tables": [{"table": t, "rows": None} for t in data] if scope == "touched" else [],
        "pg_dump": str(exe), "pg_dump_version": dump_version, "server_version": server_version,
        "format": "directory" if directory else "custom",
        "jobs": config.backup_jobs if directory else 1,
        "file": final.name, "size": 0, "sha256": "",
        "status": "in_progress", "pid": os.getpid(), "host": socket.gethostname(),
        "started": time.time(),
    }
    meta["marks"] = sc.marks
    write_json(manifest, meta)
    args = [f"--lock-wait-timeout={lock_wait_timeout_ms}ms"]
    args += [f"--exclude-table-data={pgtools.table_pattern(*t.split('.', 1))}"
             for t in sc.excluded]
    tables_total = len(data)
    state = {"size": 0, "tables": 0}

    def say() -> None:
        if progress is not None:
            progress(f"backup: {state['tables']} of {tables_total} tables", state["size"],
                     estimate or None)

    def on_table(n: int, _name: str) -> None:
        state["tables"] = min(n, tables_total)
        say()

    start = time.monotonic()
    digest = hashlib.sha256()
    snap: Snapshot | None = None
    try:
        if scope == "touched":
            snap = Snapshot(target, data)
            args.append(f"--snapshot={snap.id}")
        if directory:
            run = pgtools.run_pg_dump(exe, target, [*args, "--format=directory",
                                                    f"--jobs={config.backup_jobs}",
                                                    f"--file={partial}"], on_table=on_table)
        else:
            with open(partial, "wb") as fh:
                def on_chunk(chunk: bytes) -> None:
                    digest.update(chunk)  # hash while writing: no second pass
                    first = state["size"] == 0
                    state["size"] += len(chunk)
                    say()
                    if first:
                        from schemactl.pipeline.journal import pause_at

                        fh.flush()
                        pause_at("dump")  # test hook: a half-written dump on disk
                run = pgtools.run_pg_dump(exe, target, [*args, "--format=custom"], out=fh,
                                          on_chunk=on_chunk, on_table=on_table)
                fh.flush()
                os.fsync(fh.fileno())
        if run.returncode != 0:
            raise EnvironmentError_(
                f"pg_dump failed (exit {run.returncode}): {run.stderr_tail or 'no output'}",
                hint="the apply was stopped before changing the database", code="backup_failed")
        if snap is not None:
            meta["marks"] = snap.marks()
            meta["tables"] = [{"table": t, "rows": snap.counts.get(t)} for t in data]
        if directory:
            sha, size = hash_path(partial)
        else:
            sha, size = digest.hexdigest(), state["size"]
        os.replace(partial, final)
        fsync_dir(folder)
    except BaseException:
        remove_path(partial)
        manifest.unlink(missing_ok=True)
        raise
    finally:
        if snap is not None:
            snap.close()
    meta.update(size=size, sha256=sha, status="complete",
                duration_s=round(time.monotonic() - start, 3))
    write_json(manifest, meta)
    fsync_dir(folder)
    state.update(size=size, tables=tables_total)
    if progress is not None:
        progress(f"backup: {tables_total} of {tables_total} tables", size, size)
    if prune:
        from schemactl.pipeline import retention

        retention.prune(repo)
    return get_backup(repo, bid)


# -- restoring ------------------------------------------------------------------------------


def restore(repo: SchemaRepo, backup_id: str, target: Target, *, clean: bool = False) -> None:
    """Restore a backup into ``target`` (empty, or ``clean`` to replace): all or nothing.

    pg_restore writes the dump as a SQL script, which psql runs in one transaction; the
    script is adapted to the server's version on the way (see
    :func:`schemactl.adapters.pgtools.compatible_script`).

    Raises:
        BadInputError: no such complete backup.
        EnvironmentError_: pg_restore or psql failed (nothing was changed).
    """
    b = get_backup(repo, backup_id)
    _server_version, server_major, _ = pgtools.server_info(target)
    exe, _ = pgtools.find_tool("pg_restore", max(server_major, pgtools.major(b.pg_dump_version)))
    script = pgtools.restore_script(exe, b.path, clean=clean, target=target)
    pgtools.run_script(target, server_major, pgtools.compatible_script(script, server_major),
                       what=f"restore of backup {backup_id}")


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
        if kind in ("TABLE", "CONSTRAINT", "FK CONSTRAINT"):
            keep = len(words) >= 2 and words[0] == schema and words[1] in tables
        elif kind:
            keep = bool(deps & chosen)
        if keep:
            chosen.add(dump_id)
            out.append(line)
    return out


def missing_data(b: Backup, needed: set[str], schema: str) -> list[str]:
    """The tables of ``needed`` (names in ``schema``) whose data the backup does not hold."""
    return sorted(t for t in needed if not b.holds(f"{schema}.{t}"))


def restore_tables(repo: SchemaRepo, backup_id: str, target: Target, tables: set[str], *,
                   before_sql: str = "", after_sql: str = "") -> list[str]:
    """Recreate ``tables`` of the dynamic schema from a backup, in one transaction.

    The selected part of the dump (each table, its rows, indexes, constraints and comments)
    runs through psql with ``--single-transaction`` between ``before_sql`` (which must move
    the current tables out of the way) and ``after_sql``: all of it commits, or none does.

    Returns:
        The TOC lines restored.

    Raises:
        BadInputError: no such complete backup, or a scoped one without the data of one of
            ``tables`` (exit 2, nothing changed).
        EnvironmentError_: no pg_restore/psql new enough, or the restore failed (nothing
            changed).
    """
    b = get_backup(repo, backup_id)
    schema = DYNAMIC_SCHEMA
    lacking = missing_data(b, tables, schema)
    if lacking:
        raise BadInputError(f"backup {backup_id} holds no data of {', '.join(lacking)}",
                            code="backup_lacks_data",
                            hint="pick a backup that holds them (`schemactl backups list`)")
    _server_version, server_major, _ = pgtools.server_info(target)
    restore_exe, _ = pgtools.find_tool("pg_restore",
                                       max(server_major, pgtools.major(b.pg_dump_version)))
    proc = pgtools.restore_list(restore_exe, b.path, verbose=True)
    if proc.returncode != 0:
        raise pgtools.restore_failed("pg_restore --list", proc.stderr, target)
    chosen = _select_toc(proc.stdout, schema, tables)
    script = pgtools.restore_script(restore_exe, b.path, use_list=chosen, target=target)
    script = (before_sql.rstrip() + "\n" + pgtools.compatible_script(script, server_major)
              + "\n" + after_sql.rstrip() + "\n")
    pgtools.run_script(target, server_major, script,
                       what=f"restore of {', '.join(sorted(tables))}")
    return chosen
