"""Rollback commits schemactl recorded on a branch, verified against their history.

A verified rollback moves the base of `check`: what it removed and restored is not the
pull request rewriting history (docs/ci.md, Rollbacks).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from schemactl.adapters import gitops


@dataclass(frozen=True)
class RollbackCommit:
    """A rollback commit written by schemactl on the branch, verified against its history."""

    sha: str
    removed: tuple[str, ...]
    definitions: Mapping[str, bytes | None]


def _verify_rollback(root: Path, sha: str, parent: str, body: str) -> RollbackCommit | None:
    """The rollback commit ``sha`` if it is exactly what `schemactl rollback` writes, else None.

    It must only remove the newest migrations of its parent's chain and restore each
    definition those migrations' proposals changed to its content before them (plus the
    audit file and the sum file): the same files `schemactl rollback` computes. Anything
    else (a hand-made commit with the trailer, an edited rollback) gets no exemption.
    """
    from schemactl.codegen import sumfile

    removed: list[str] = []
    definitions: dict[str, bytes | None] = {}
    raw = gitops.git_text(root, "diff-tree", "-r", "-z", "--no-renames", "--name-status",
                          parent, sha)
    fields = [f for f in raw.split("\0") if f]
    for status, path in zip(fields[::2], fields[1::2], strict=False):
        if path.startswith(f"{sumfile.VERSIONS}/") and path.endswith(".py"):
            if status != "D":
                return None
            removed.append(path.rsplit("/", 1)[-1])
        elif path.startswith("dynamic_schema/"):
            definitions[path] = gitops.read_at(root, sha, path)
        elif path not in (sumfile.SUM_PATH, "audit.jsonl"):
            return None
    migrations = sumfile.migrations_from(sumfile.files_at_rev(root, parent))
    chain = [m.name for m in migrations]
    if not removed or not set(removed) <= set(chain) \
            or chain[-len(removed):] != sorted(removed, key=chain.index):
        return None
    # The trailer names the revision the database was left at: the new head of the chain.
    left_at = migrations[-len(removed) - 1].revision if len(chain) > len(removed) else None
    if gitops.trailers_of(body).get("Schemactl-Revision") != f"{left_at}":
        return None
    # What rollback restores: each definition as it was before the oldest undone proposal.
    expected: dict[str, bytes | None] = {}
    for name in reversed(chain[-len(removed):]):
        added = gitops.git_text(root, "log", "--diff-filter=A", "--format=%H", parent, "--",
                          f"{sumfile.VERSIONS}/{name}").split()
        if not added:
            return None
        proposal = added[-1]
        changed = gitops.git_text(root, "diff-tree", "-r", "-z", "--no-renames", "--name-only",
                            "--root", proposal, "--", "dynamic_schema").split("\0")
        for path in (p for p in changed if p.startswith("dynamic_schema/")):
            expected[path] = gitops.read_at(root, f"{proposal}^", path)
    wanted = {p: d for p, d in expected.items() if d != gitops.read_at(root, parent, p)}
    if wanted != definitions:
        return None
    return RollbackCommit(sha, tuple(removed), definitions)


def branch_rollbacks(root: Path, merge_base: str) -> list[RollbackCommit]:
    """Verified rollback commits between ``merge_base`` and HEAD, oldest first."""
    raw = gitops.git_text(root, "log", "--reverse", "--first-parent", "--format=%H %P%n%B%x00",
                    f"{merge_base}..HEAD")
    found = []
    for entry in raw.split("\0"):
        head, _, body = entry.strip().partition("\n")
        shas = head.split()
        if len(shas) == 2 and gitops.trailers_of(body).get("Schemactl-Action") == "rollback":
            commit = _verify_rollback(root, shas[0], shas[1], body)
            if commit is not None:
                found.append(commit)
    return found
