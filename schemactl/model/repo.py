"""Where things live in a schema repository (the layout `schemactl init` makes)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from schemactl.errors import BadInputError
from schemactl.model.config import CACHE_DIR, CONFIG_FILE, Config, load_config

# The parse cache's file (schemactl.model.cache), relative to the repository root.
CACHE_PATH = CACHE_DIR / "definitions.sqlite3"


@dataclass(frozen=True)
class SchemaRepo:
    """A schema repository: core_schema/, dynamic_schema/, migrations/ and schemactl.toml."""

    root: Path

    @classmethod
    def open(cls, path: str | Path | None = None) -> SchemaRepo:
        """Open the schema repository at ``path`` (default: the current directory).

        Raises:
            BadInputError: ``path`` is not a schema repository.
        """
        root = Path(path or ".").resolve()
        if not (root / "migrations").is_dir() or not (root / CONFIG_FILE).is_file():
            raise BadInputError(
                f"{root} is not a schema repository (no migrations/ or {CONFIG_FILE})",
                hint="run `schemactl init DIR` or pass --repo DIR",
            )
        return cls(root)

    @cached_property
    def config(self) -> Config:
        return load_config(self.root)

    @property
    def dynamic_dir(self) -> Path:
        return self.root / "dynamic_schema"

    @property
    def migrations_dir(self) -> Path:
        return self.root / "migrations"

    @property
    def versions_dir(self) -> Path:
        return self.root / "migrations" / "versions"

    @property
    def state_dir(self) -> Path:
        """Local, git-ignored state: the embedded server's data, locks, journals."""
        return self.root / ".schemactl"

    @property
    def backup_dir(self) -> Path:
        path = Path(self.config.backup_dir)
        return path if path.is_absolute() else self.root / path

    @property
    def audit_file(self) -> Path:
        return self.root / "audit.jsonl"
