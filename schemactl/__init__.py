"""schemactl: GitOps schema evolution and migration manager for PostgreSQL.

The public Python API lives in `schemactl.api`; `load_metadata(repo)` gives the
application SQLAlchemy metadata of the core and dynamic tables.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy import MetaData


def load_metadata(repo: str | Path = ".", *, include_deprecated: bool = False) -> MetaData:
    """SQLAlchemy MetaData of the core tables and the dynamic tables defined in ``repo``.

    Deprecated dynamic tables and columns are left out unless ``include_deprecated``.
    """
    from schemactl.codegen.metadata import load_metadata as _load

    return _load(repo, include_deprecated=include_deprecated)


def __getattr__(name: str) -> Any:
    if name == "api":
        import importlib

        return importlib.import_module("schemactl.api")
    raise AttributeError(name)
