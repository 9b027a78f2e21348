"""Alembic, driven programmatically over a schema repository's migrations/.

The one place that runs Alembic commands: revision graph, current revision,
upgrade and downgrade. Heavy imports stay inside functions so that fast
commands (validate) never pay for them.
"""

from __future__ import annotations

import ast
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemactl.errors import BadInputError, ConflictError, DatabaseError, RejectedError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import Connection

    from schemactl.adapters.paths import RepoPaths

VERSION_TABLE = "alembic_version"

# Alembic installs `alembic.context` and `alembic.op` as module-wide proxies while a command
# (or an offline recording of a migration) runs, so two in threads of one process would run
# on each other's connection or find `op` gone: a fleet run (several targets in threads)
# serialises whatever installs them, not the rest of the pipeline.
ALEMBIC_LOCK = threading.RLock()


def _running_metadata() -> Any:
    """The env.py's target metadata when migrations run: empty. Only autogenerate compares
    it, and env.py would otherwise build every definition of the repository (10,000
    tables in a large one) on each run."""
    from sqlalchemy import MetaData

    return MetaData()


def alembic_config(repo: RepoPaths, connection: Connection | None = None,
                   target_metadata: Any = None) -> AlembicConfig:
    from alembic.config import Config

    ini = repo.root / "alembic.ini"
    cfg = Config(str(ini) if ini.exists() else None)
    cfg.set_main_option("script_location", str(repo.migrations_dir))
    cfg.set_main_option("prepend_sys_path", str(repo.root))
    if connection is not None:
        cfg.attributes["connection"] = connection
    if target_metadata is not None:
        cfg.attributes["target_metadata"] = target_metadata
    return cfg


def script_directory(repo: RepoPaths) -> ScriptDirectory:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config(repo))
    except CommandError as exc:
        raise BadInputError(f"migrations/: {exc}") from exc


@dataclass(frozen=True)
class RevisionFile:
    """One migration file as its header says (read without importing Alembic)."""

    revision: str
    down_revisions: tuple[str, ...]
    path: str


_ASSIGN = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+)$", re.MULTILINE)
# CPython 3.11's ast keeps its node-conversion depth per interpreter, not per thread: two
# threads in ast.literal_eval at once (a fleet's targets reading migration headers) can
# fail with "SystemError: AST constructor recursion depth mismatch". One at a time.
_AST_LOCK = threading.Lock()


def parse_header(source: bytes | str) -> tuple[str | None, tuple[str, ...]]:
    """``(revision, down_revisions)`` read from a migration's assignments, without importing it."""
    text = source.decode("utf-8", errors="replace") if isinstance(source, bytes) else source
    values: dict[str, object] = {}
    for m in _ASSIGN.finditer(text):
        if m.group(1) in values:
            continue
        try:
            with _AST_LOCK:
                values[m.group(1)] = ast.literal_eval(m.group(2).strip())
        except (ValueError, SyntaxError):
            values[m.group(1)] = None
    rev = values.get("revision")
    down = values.get("down_revision")
    downs = (down,) if isinstance(down, str) else tuple(
        str(d) for d in down) if isinstance(down, (list, tuple)) else ()
    return (rev if isinstance(rev, str) else None), downs


def read_revisions(repo: RepoPaths) -> dict[str, RevisionFile]:
    """Every revision in migrations/versions/, parsed from the files' assignments.

    Alembic would import every migration module (0.3 s of imports before the first one);
    status and check only need the graph.

    Raises:
        BadInputError: a migration file without a readable revision, or a duplicate id.
    """
    found: dict[str, RevisionFile] = {}
    if not repo.versions_dir.is_dir():
        return found
    for path in sorted(repo.versions_dir.glob("*.py")):
        rev, downs = parse_header(path.read_bytes())
        if rev is None:
            raise BadInputError(f"{path.name}: no `revision = '...'` line",
                                hint="every migration file names its revision")
        if rev in found:
            raise BadInputError(f"revision {rev} is defined twice ({found[rev].path}, {path.name})")
        found[rev] = RevisionFile(rev, tuple(str(d) for d in downs), str(path))
    return found


def heads(repo: RepoPaths) -> list[str]:
    revs = read_revisions(repo)
    parents = {d for r in revs.values() for d in r.down_revisions}
    return sorted(r for r in revs if r not in parents)


def head(repo: RepoPaths) -> str | None:
    """The single head revision of migrations/ (None when there are no migrations).

    Raises:
        ConflictError: more than one head (two branches each added a migration).
    """
    found = heads(repo)
    if len(found) > 1:
        raise ConflictError(f"migrations/ has {len(found)} heads: {', '.join(sorted(found))}",
                            hint="merge the branches' migrations into one line (SC603)")
    return found[0] if found else None


def revisions_upto(repo: RepoPaths, rev: str | None = None) -> list[str]:
    """Revisions from base to ``rev`` (default: the head), oldest first."""
    revs = read_revisions(repo)
    top = rev or head(repo)
    chain: list[str] = []
    seen: set[str] = set()
    while top is not None:
        if top in seen or top not in revs:
            raise BadInputError(f"migrations/: revision {top} is missing or in a cycle")
        seen.add(top)
        chain.append(top)
        downs = revs[top].down_revisions
        top = downs[0] if downs else None
    return list(reversed(chain))


def pending(repo: RepoPaths, current: str | None) -> list[str]:
    """Revisions after ``current`` up to head, oldest first.

    Raises:
        ConflictError: ``current`` is not a revision of this repository (database ahead of git).
    """
    chain = revisions_upto(repo)
    if current is None:
        return chain
    if current not in chain:
        raise ConflictError(
            f"the database is at revision {current}, which migrations/ does not have",
            hint="the database is ahead of git or on another branch: check out the branch "
                 "that made it",
        )
    return chain[chain.index(current) + 1:]


def current_revision(conn: Any) -> str | None:
    """The database's Alembic revision via a psycopg connection (None: never migrated)."""
    row = conn.execute("select to_regclass('public.alembic_version') is not null").fetchone()
    if not row or not row[0]:
        return None
    rows = conn.execute(f"select version_num from {VERSION_TABLE}").fetchall()
    if len(rows) > 1:
        raise ConflictError("the database records more than one Alembic revision",
                            hint="resolve the branches with alembic merge")
    return str(rows[0][0]) if rows else None


@contextmanager
def _alembic_errors() -> Iterator[None]:
    from alembic.util import CommandError
    from sqlalchemy.exc import DBAPIError

    try:
        yield
    except CommandError as exc:
        raise BadInputError(f"alembic: {exc}") from exc
    except DBAPIError as exc:
        orig = getattr(exc, "orig", None) or exc
        first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        raise DatabaseError(f"migration failed: {first}",
                            hint="the failed migration was rolled back; see `schemactl plan`",
                            details={"sql": str(getattr(exc, "statement", "") or "")[:2000],
                                     "sqlstate": getattr(orig, "sqlstate", None)}) from exc
    except Exception as exc:
        if type(exc).__name__ != "OnlineChangeStopped":
            raise
        # An online change whose values do not fit: stopped before its contract, undone.
        raise RejectedError(str(exc), code="online_stopped",
                            hint="fix or remove the rows named, then apply again") from exc


def upgrade(repo: RepoPaths, connection: Connection, target: str = "head",
            attributes: dict[str, Any] | None = None) -> None:
    """Run `alembic upgrade` on ``connection`` (one transaction per migration).

    ``attributes`` go into the Alembic config's attributes (``schemactl_online``: the
    online-change settings and progress callback a migration reads).
    """
    from alembic import command

    cfg = alembic_config(repo, connection, target_metadata=_running_metadata())
    cfg.attributes.update(attributes or {})
    with ALEMBIC_LOCK, _alembic_errors():
        command.upgrade(cfg, target)


def downgrade(repo: RepoPaths, connection: Connection, target: str,
              attributes: dict[str, Any] | None = None) -> None:
    from alembic import command

    cfg = alembic_config(repo, connection, target_metadata=_running_metadata())
    cfg.attributes.update(attributes or {})
    with ALEMBIC_LOCK, _alembic_errors():
        command.downgrade(cfg, target)


def upgrade_sql(repo: RepoPaths, start: str | None, end: str = "head") -> str:
    """The SQL an upgrade from ``start`` to ``end`` runs, rendered offline (Alembic --sql)."""
    import io

    from alembic import command

    buf = io.StringIO()
    cfg = alembic_config(repo, target_metadata=_running_metadata())
    cfg.output_buffer = buf
    cfg.set_main_option("sqlalchemy.url", "postgresql+psycopg://offline/offline")
    rng = f"{start}:{end}" if start else end
    with ALEMBIC_LOCK, _alembic_errors():
        command.upgrade(cfg, rng, sql=True)
    return buf.getvalue()
