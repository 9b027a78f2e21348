"""The engine API: one typed function per command.

The CLI (`schemactl.cli`) and the MCP server are thin layers over these
functions. They never print; they return frozen result objects (see
`schemactl.results`) and raise `SchemactlError` subclasses carrying an exit code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from schemactl.actor import resolve_actor
from schemactl.repo import SchemaRepo
from schemactl.results import Result

PathLike = str | Path


# -- init -----------------------------------------------------------------


@dataclass(frozen=True)
class InitResult(Result):
    path: str
    files: list[str]
    commit: str


def init(path: PathLike, actor: str | None = None) -> InitResult:
    """Scaffold a new schema repository at ``path`` (git init and a first commit)."""
    from schemactl.scaffold import init_repository

    made = init_repository(Path(path), resolve_actor(actor))
    return InitResult(command="init", path=made.path, files=made.files, commit=made.commit)


# -- embedded database -------------------------------------------------------


@dataclass(frozen=True)
class DbStatusResult(Result):
    running: bool
    url: str | None
    port: int | None
    data_dir: str
    version: str | None


def _db_result(command: str, repo: SchemaRepo, start: bool | None) -> DbStatusResult:
    from schemactl.embedded import EmbeddedServer

    server = EmbeddedServer(repo.state_dir)
    if start is True:
        st = server.start()
    elif start is False:
        st = server.stop()
    else:
        st = server.status()
    return DbStatusResult(command=command, running=st.running, url=st.url(), port=st.port,
                          data_dir=str(st.data_dir), version=st.version)


def db_start(repo: PathLike | None = None) -> DbStatusResult:
    """Start the repository's embedded PostgreSQL (initialising it on first use)."""
    return _db_result("db start", SchemaRepo.open(repo), True)


def db_stop(repo: PathLike | None = None) -> DbStatusResult:
    """Stop the repository's embedded PostgreSQL."""
    return _db_result("db stop", SchemaRepo.open(repo), False)


def db_status(repo: PathLike | None = None) -> DbStatusResult:
    """Whether the embedded PostgreSQL runs, and its URL (without the password)."""
    return _db_result("db status", SchemaRepo.open(repo), None)


# -- apply / status ------------------------------------------------------------


def apply(repo: PathLike | None = None, database_url: str | None = None,
          actor: str | None = None):  # type: ignore[no-untyped-def]
    """Apply pending migrations to the database (see `schemactl.applier`)."""
    from schemactl import applier
    from schemactl.database import resolve_target

    sr = SchemaRepo.open(repo)
    who = resolve_actor(actor, sr.root)
    return applier.apply(sr, resolve_target(sr, database_url), who)


@dataclass(frozen=True)
class StatusResult(Result):
    git_head: str | None
    head_revision: str | None
    db_revision: str | None
    pending: list[str]
    database: str
    database_ok: bool
    server_version: str | None = None
    drift: list[dict[str, str]] = field(default_factory=list)
    last_backup: dict[str, object] | None = None
    message: str = ""


def status(repo: PathLike | None = None, database_url: str | None = None) -> StatusResult:
    """Git head, database revision, pending migrations, and whether the database answers."""
    from schemactl import gitops, migrator
    from schemactl.database import connect, resolve_target
    from schemactl.errors import DatabaseError

    sr = SchemaRepo.open(repo)
    git_head = gitops.head_sha(sr.root)
    head_rev = migrator.head(sr)
    target = resolve_target(sr, database_url)
    try:
        with connect(target) as conn:
            version = str(conn.execute("show server_version").fetchone()[0])  # type: ignore[index]
            db_rev = migrator.current_revision(conn)
    except DatabaseError as exc:
        return StatusResult(command="status", ok=False, git_head=git_head, head_revision=head_rev,
                            db_revision=None, pending=[], database=target.display,
                            database_ok=False, message=exc.message,
                            exit_code=exc.exit_code, error=exc.to_json())
    todo = migrator.pending(sr, db_rev)
    msg = "up to date" if not todo else f"{len(todo)} migration(s) pending"
    return StatusResult(command="status", git_head=git_head, head_revision=head_rev,
                        db_revision=db_rev, pending=todo, database=target.display,
                        database_ok=True, server_version=version, message=msg)
