"""SQLAlchemy metadata of a schema repository: core models plus dynamic definitions."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import MetaData

    from schemactl.definitions import TableDef


def build_metadata(definitions: Mapping[str, TableDef], *,
                   include_deprecated: bool = True) -> MetaData:
    """MetaData holding the core tables and one Table per dynamic definition.

    (Placeholder until the definition → SQLAlchemy mapping lands: core tables only.)
    """
    from core_schema import metadata as core

    return core


def load_metadata(repo: str | Path = ".", *, include_deprecated: bool = False) -> MetaData:
    """Core tables plus the dynamic tables of the repository's work tree."""
    from schemactl.definitions import load_dir

    root = Path(repo).resolve()
    return build_metadata(load_dir(root / "dynamic_schema", root),
                          include_deprecated=include_deprecated)
