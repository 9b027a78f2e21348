"""Sets of definitions: a folder of the work tree, or a git revision; one table per file."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from schemactl.model.definitions import DefinitionError, TableDef, is_definition_file
from schemactl.model.parsing import parse_definition


@dataclass(frozen=True)
class SourceFile:
    """A definition file's location and bytes (from the work tree, git or stdin)."""

    path: str
    data: bytes


def parse_files(files: Iterable[SourceFile]) -> dict[str, TableDef]:
    """Parse many definition files into a table-name → definition map.

    Raises:
        DefinitionError: a file cannot be parsed, or two files define the same table.
    """
    tables: dict[str, TableDef] = {}
    for f in files:
        tdef = parse_definition(f.data, f.path)
        if tdef.table in tables:
            raise DefinitionError(f"{f.path}: table {tdef.table!r} is also defined in "
                                  f"{tables[tdef.table].source}")
        tables[tdef.table] = tdef
    return tables


def files_in_dir(folder: Path, rel_to: Path | None = None) -> list[SourceFile]:
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and is_definition_file(path.name):
            shown = str(path.relative_to(rel_to)) if rel_to else str(path)
            out.append(SourceFile(shown, path.read_bytes()))
    return out


def files_at_rev(repo_root: Path, rev: str) -> list[SourceFile]:
    from schemactl.adapters import gitops

    return [SourceFile(f.path, f.data) for f in gitops.files_at(repo_root, rev, "dynamic_schema")
            if is_definition_file(Path(f.path).name)]


def load_dir(folder: Path, rel_to: Path | None = None) -> dict[str, TableDef]:
    """The definitions in a folder (the work tree's dynamic_schema/)."""
    return parse_files(files_in_dir(folder, rel_to))


def load_at_rev(repo_root: Path, rev: str = "HEAD") -> dict[str, TableDef]:
    """The definitions committed at a git revision (empty before the first commit)."""
    return parse_files(files_at_rev(repo_root, rev))
