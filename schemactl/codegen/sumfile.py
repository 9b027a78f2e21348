"""The migration sum file, ``migrations/schemactl.sum`` (like Atlas's ``atlas.sum``).

It records every migration file of ``migrations/versions/`` in chain order (oldest
first) with the SHA-256 of its bytes, under a first line holding the hash of all the
lines that follow::

    sha256:5e0c...  (hash of the lines below)
    0001_core_schema.py sha256:9a1f...
    0002_fdc722fb_add_table_projects.py sha256:03bd...

`propose` rewrites it with each migration it commits; `schemactl check` compares the
base branch's record with the pull request's files: a migration that was already on
the base and is edited, removed or reordered is SC601 migration-edited. A conflict on
this file when two branches each add a migration is wanted: it shows that the
migrations must be put back into one line (SC603).

Nothing here imports Alembic: the revision graph is read from the files' assignments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from schemactl.adapters.migrator import parse_header
from schemactl.errors import BadInputError

SUM_PATH = "migrations/schemactl.sum"
VERSIONS = "migrations/versions"
_PREFIX = "sha256:"


@dataclass(frozen=True)
class Migration:
    """One migration file: name, content hash and revision header."""

    name: str
    sha256: str
    revision: str | None
    down_revisions: tuple[str, ...]

    @property
    def path(self) -> str:
        return f"{VERSIONS}/{self.name}"


@dataclass(frozen=True)
class SumFile:
    """A parsed sum file: the recorded total and ``(file name, sha256)`` in chain order."""

    total: str
    entries: tuple[tuple[str, str], ...]

    @property
    def consistent(self) -> bool:
        """Whether the first line is the hash of the entries (the file was not hand-edited)."""
        return self.total == _total(self.entries)


def _total(entries: Iterable[tuple[str, str]]) -> str:
    body = "".join(f"{name} {_PREFIX}{sha}\n" for name, sha in entries)
    return hashlib.sha256(body.encode()).hexdigest()


def migrations_from(files: dict[str, bytes]) -> list[Migration]:
    """Migrations (file name → bytes) in chain order: oldest first.

    The chain follows ``down_revision`` from the root; files outside a single line
    (a second head, a broken or missing parent) follow in name order, so the order is
    always defined (those cases are SC603 and SC601 findings, not errors here).
    """
    items = []
    for name in sorted(files):
        rev, downs = parse_header(files[name])
        items.append(Migration(name, hashlib.sha256(files[name]).hexdigest(), rev, downs))
    by_parent: dict[str | None, list[Migration]] = {}
    for m in items:
        by_parent.setdefault(m.down_revisions[0] if m.down_revisions else None, []).append(m)
    ordered: list[Migration] = []
    seen: set[str] = set()
    parent: str | None = None
    while True:
        children = [c for c in by_parent.get(parent, []) if c.name not in seen]
        if len(children) != 1 or children[0].revision is None:
            break
        ordered.append(children[0])
        seen.add(children[0].name)
        parent = children[0].revision
    ordered += [m for m in items if m.name not in seen]
    return ordered


def heads_of(migrations: Iterable[Migration]) -> list[str]:
    """Revisions no other migration names as its parent."""
    found = [m for m in migrations if m.revision]
    parents = {d for m in found for d in m.down_revisions}
    return sorted(str(m.revision) for m in found if m.revision not in parents)


def render(migrations: Iterable[Migration]) -> str:
    """The sum file's text for these migrations (already in chain order)."""
    entries = [(m.name, m.sha256) for m in migrations]
    lines = [f"{_PREFIX}{_total(entries)}"] + [f"{n} {_PREFIX}{s}" for n, s in entries]
    return "\n".join(lines) + "\n"


def parse(text: bytes | str, source: str = SUM_PATH) -> SumFile:
    """Parse a sum file.

    Raises:
        BadInputError: a line is not ``<name> sha256:<hex>`` (exit 2).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith(_PREFIX):
        raise BadInputError(f"{source}: the first line must be sha256:<hex>",
                            hint="regenerate it: `schemactl propose` rewrites it, or call "
                                 "schemactl.codegen.sumfile.write_sum(repo)")
    entries = []
    for n, line in enumerate(lines[1:], start=2):
        name, _, digest = line.rpartition(" ")
        if not name or not digest.startswith(_PREFIX):
            raise BadInputError(f"{source}:{n}: expected `<file> sha256:<hex>`")
        entries.append((name, digest[len(_PREFIX):]))
    return SumFile(total=lines[0][len(_PREFIX):], entries=tuple(entries))


def _work_tree_files(root: Path) -> dict[str, bytes]:
    folder = root / VERSIONS
    if not folder.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.py")) if p.is_file()}


def files_at_rev(root: Path, rev: str) -> dict[str, bytes]:
    """The migration files (name → bytes) committed at ``rev``."""
    from schemactl.adapters import gitops

    return {Path(f.path).name: f.data for f in gitops.files_at(root, rev, VERSIONS)
            if f.path.endswith(".py")}


def sum_text(root: str | Path, extra: dict[str, bytes] | None = None,
             removed: Iterable[str] = ()) -> str:
    """The sum file text for the work tree's migrations/versions/ (plus ``extra`` files).

    Args:
        root: the repository root.
        extra: file name → bytes of migrations about to be written (what propose adds).
        removed: file names of migrations about to be removed (what rollback undoes).
    """
    files = _work_tree_files(Path(root))
    files.update(extra or {})
    for name in removed:
        files.pop(name, None)
    return render(migrations_from(files))


def _root(repo: str | Path | object) -> Path:
    # A SchemaRepo has .root; a Path has one too (the anchor "/"), so test for paths first.
    return Path(repo) if isinstance(repo, (str, Path)) else Path(repo.root)  # type: ignore[attr-defined]


def write_sum(repo: str | Path | object) -> Path:
    """(Re)write ``migrations/schemactl.sum`` from the work tree's migration files.

    Args:
        repo: the repository root, or a :class:`~schemactl.model.repo.SchemaRepo`.

    Returns:
        The path written.
    """
    root = _root(repo)
    path = root / SUM_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    text = sum_text(root)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path


def read_sum(repo: str | Path | object, rev: str | None = None) -> SumFile | None:
    """The sum file of the work tree (or of git revision ``rev``); None when there is none."""
    root = _root(repo)
    if rev is None:
        path = root / SUM_PATH
        return parse(path.read_bytes()) if path.exists() else None
    from schemactl.adapters import gitops

    data = gitops.read_at(root, rev, SUM_PATH)
    return parse(data) if data is not None else None


def verify(repo: str | Path | object) -> list[str]:
    """Problems of the work tree's sum file against its migration files (empty: all good).

    A missing sum file is a problem only when there are migrations beyond the scaffold's.
    """
    root = _root(repo)
    recorded = read_sum(root)
    actual = [(m.name, m.sha256) for m in migrations_from(_work_tree_files(root))]
    if recorded is None:
        return [f"{SUM_PATH} is missing"] if len(actual) > 1 else []
    problems = []
    if not recorded.consistent:
        problems.append(f"{SUM_PATH}: the first line does not match the entries "
                        "(the file was edited by hand)")
    rec = dict(recorded.entries)
    act = dict(actual)
    for name, sha in recorded.entries:
        if name not in act:
            problems.append(f"{name} is recorded but missing")
        elif act[name] != sha:
            problems.append(f"{name} was changed after it was recorded")
    for name in act:
        if name not in rec:
            problems.append(f"{name} is not recorded")
    if not problems and [n for n, _ in recorded.entries] != [n for n, _ in actual]:
        problems.append(f"{SUM_PATH}: the recorded order differs from the revision chain")
    return problems
