"""Alembic environment of a schemactl schema repository.

Plain `alembic upgrade head` works here without schemactl (DATABASE_URL or
sqlalchemy.url names the database). schemactl passes its own connection and
metadata through `config.attributes`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from alembic import context
from sqlalchemy import MetaData, create_engine, pool
from sqlalchemy.engine import Engine

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

config = context.config


def _target_metadata() -> MetaData:
    given = config.attributes.get("target_metadata")
    if given is not None:
        return given
    try:  # core + dynamic tables, when schemactl is installed
        from schemactl import load_metadata

        # Deprecated tables and columns stay in the database: autogenerate must see them,
        # or `alembic revision --autogenerate` would drop them.
        return load_metadata(REPO_ROOT, include_deprecated=True)
    except ImportError:
        from core_schema import metadata

        return metadata


target_metadata = _target_metadata()


def _url() -> str:
    url = (config.get_main_option("sqlalchemy.url") or os.environ.get("SCHEMACTL_DATABASE_URL")
           or os.environ.get("DATABASE_URL"))
    if not url:
        raise SystemExit("set DATABASE_URL (or sqlalchemy.url in alembic.ini)")
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def include_name(name, type_, parent_names):  # type: ignore[no-untyped-def]
    # Autogenerate must never see tables it does not manage: it would propose dropping them.
    if type_ == "schema":
        return name in (None, "public")
    if type_ == "table":
        return name in target_metadata.tables
    return True


def _configure(**kwargs) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        target_metadata=target_metadata,
        include_name=include_name,
        compare_type=True,
        compare_server_default=True,
        # One transaction per migration, so a migration may leave it for CREATE INDEX CONCURRENTLY.
        transaction_per_migration=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Engine):  # an engine (pytest-alembic passes one): connect here
        with connection.connect() as conn:
            _configure(connection=conn)
            with context.begin_transaction():
                context.run_migrations()
        return
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as conn:
        _configure(connection=conn)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
