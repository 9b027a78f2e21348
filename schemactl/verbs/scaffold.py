"""`schemactl init`: scaffold a schema repository (DESIGN.md, Layout)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from schemactl.errors import BadInputError, SchemactlError
from schemactl.resources import TEMPLATES_DIR

TEMPLATES = TEMPLATES_DIR


def core_schema_source() -> Path:
    """The folder holding the core schema models shipped with schemactl."""
    import core_schema

    return Path(core_schema.__file__).parent


def scaffold_files() -> dict[str, bytes]:
    """Every file `init` writes, by path relative to the new repository's root."""
    core = core_schema_source()
    files = {
        "alembic.ini": (TEMPLATES / "alembic.ini").read_bytes(),
        "schemactl.toml": (TEMPLATES / "schemactl.toml").read_bytes(),
        ".gitignore": (TEMPLATES / "gitignore").read_bytes(),
        "core_schema/__init__.py": (core / "__init__.py").read_bytes(),
        "core_schema/models.py": (core / "models.py").read_bytes(),
        "dynamic_schema/.gitkeep": b"",
        "migrations/env.py": (TEMPLATES / "env.py").read_bytes(),
        "migrations/script.py.mako": (TEMPLATES / "script.py.mako").read_bytes(),
        "migrations/versions/0001_core_schema.py": (TEMPLATES / "0001_core_schema.py").read_bytes(),
    }
    from schemactl.codegen import sumfile

    # The migration sum file (integrity of merged migrations; see schemactl.codegen.sumfile).
    first = {"0001_core_schema.py": files["migrations/versions/0001_core_schema.py"]}
    files[sumfile.SUM_PATH] = sumfile.render(sumfile.migrations_from(first)).encode()
    return files


@dataclass(frozen=True)
class InitResult:
    path: str
    files: list[str]
    commit: str


def init_repository(target: Path, actor: str) -> InitResult:
    """Create a schema repository in ``target`` (new or empty), with git and a first commit.

    Raises:
        BadInputError: ``target`` exists and is not an empty directory.
    """
    from schemactl.adapters import gitops

    target = target.expanduser()
    created = not target.exists()
    if not created and (not target.is_dir() or any(target.iterdir())):
        raise BadInputError(f"{target} is not empty",
                            hint="init makes a new schema repository: pick a new or empty folder")
    files = scaffold_files()
    try:
        target.mkdir(parents=True, exist_ok=True)
        for rel, data in files.items():
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        gitops.init(target)
        sha = gitops.commit(
            target, list(files), "schemactl init: new schema repository",
            {"Schemactl-Action": "init", "Schemactl-Revision": "0001_core",
             "Schemactl-Actor": actor},
        )
    except (OSError, SchemactlError):
        # Leave nothing half-made behind.
        if created:
            shutil.rmtree(target, ignore_errors=True)
        else:
            for child in target.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    return InitResult(path=str(target.resolve()), files=sorted(files), commit=sha)
