"""What the adapters need to know of a schema repository: where its files are.

`schemactl.model.repo.SchemaRepo` has these attributes; the adapters name this protocol
instead, so that they stay below the model (tests/test_architecture.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class RepoPaths(Protocol):
    @property
    def root(self) -> Path: ...

    @property
    def migrations_dir(self) -> Path: ...

    @property
    def versions_dir(self) -> Path: ...

    @property
    def state_dir(self) -> Path: ...
