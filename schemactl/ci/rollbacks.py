"""Rollback commits schemactl recorded on a branch, verified against their history.

A verified rollback moves the base of `check`: what it removed and restored is not the
pull request rewriting history (docs/ci.md, Rollbacks).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from schemactl.adapters import gitops

if TYPE_CHECKING:
    from schemactl.codegen.proposal import HeadProposal


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
    from schemactl.codegen.proposal import proposal_origin

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
        proposal = proposal_origin(root, parent, name)
        if proposal is None:
            return None
        changed = gitops.git_text(root, "diff-tree", "-r", "-z", "--no-renames", "--name-only",
                            "--root", proposal, "--", "dynamic_schema").split("\0")
        for path in (p for p in changed if p.startswith("dynamic_schema/")):
            expected[path] = gitops.read_at(root, f"{proposal}^", path)
    wanted = {p: d for p, d in expected.items() if d != gitops.read_at(root, parent, p)}
    if wanted != definitions:
        return None
    return RollbackCommit(sha, tuple(removed), definitions)


def _diff(root: Path, parent: str, sha: str) -> list[tuple[str, str]]:
    raw = gitops.git_text(root, "diff-tree", "-r", "-z", "--no-renames", "--name-status",
                          parent, sha)
    fields = [f for f in raw.split("\0") if f]
    return list(zip(fields[::2], fields[1::2], strict=False))


def _applied_reasons(root: Path, revision: str, revs: tuple[str, ...]) -> list[str]:
    """What the audit files at ``revs`` say about ``revision`` being applied somewhere."""
    from schemactl.model.applied import AUDIT_PATH, parse_lines, recorded_applied

    lines: dict[str, dict[str, object]] = {}
    for rev in revs:
        for obj in parse_lines(gitops.read_at(root, rev, AUDIT_PATH)):
            lines.setdefault(str(obj.get("id")), obj)
    return recorded_applied(lines.values(), revision)


def _verify_unapplied_undo(root: Path, sha: str, parent: str, body: str, action: str,
                           audit_revs: tuple[str, ...]) -> RollbackCommit | None:
    """The revert or replace commit ``sha`` if it is exactly what `propose --revert` /
    `propose --replace` writes, else None.

    Both take out the head migration of the parent's chain, made by propose for one table,
    that no audit line records as applied. A revert puts that table's definition back as
    it was before the proposal; a replace adds the one migration propose would write from
    that state to the commit's definition, byte for byte (so a hand-edited file never
    passes). The base of `check` then moves as for a rollback: the head migration gone,
    its table back; a replacement is checked like any new proposal.
    """
    from schemactl.codegen import sumfile
    from schemactl.codegen.proposal import head_proposal
    from schemactl.errors import SchemactlError

    try:
        head = head_proposal(root, parent)
    except SchemactlError:
        return None
    trailers = gitops.trailers_of(body)
    removed: list[str] = []
    added: list[str] = []
    defs: list[str] = []
    for status, path in _diff(root, parent, sha):
        if path.startswith(f"{sumfile.VERSIONS}/") and path.endswith(".py"):
            (removed if status == "D" else added if status == "A" else defs).append(path)
        elif path.startswith("dynamic_schema/"):
            defs.append(path)
        elif path != sumfile.SUM_PATH:
            return None
    restored = {head.definition: head.before, **dict(head.others)}
    if removed != [head.path] or not set(defs) <= set(restored):
        return None
    if _applied_reasons(root, head.revision, (sha, *audit_revs)):
        return None
    if action == "revert":
        if added or trailers.get("Schemactl-Reverts") != head.revision \
                or trailers.get("Schemactl-Revision") != head.parent \
                or any(gitops.read_at(root, sha, p) != b for p, b in restored.items()):
            return None
        return RollbackCommit(sha, (head.name,), restored)
    if len(added) != 1 or head.others or trailers.get("Schemactl-Replaces") != head.revision:
        return None
    if not _is_replacement(root, sha, head, added[0], trailers.get("Schemactl-Revision")):
        return None
    return RollbackCommit(sha, (head.name,), restored)


def _is_replacement(root: Path, sha: str, head: HeadProposal, added: str,
                    revision: str | None) -> bool:
    """Whether ``added`` at ``sha`` is byte for byte the migration propose writes for the
    commit's definition of the head's table, on the head's parent."""
    from schemactl.codegen.proposal import proposal_migration
    from schemactl.errors import SchemactlError
    from schemactl.model.loading import tables_at_rev
    from schemactl.model.parsing import parse_definition
    from schemactl.model.tableset import Overlay

    data = gitops.read_at(root, sha, head.definition)
    if data is None:
        return False
    try:
        before = parse_definition(head.before, head.definition) if head.before else None
        after = parse_definition(data, head.definition)
        current = Overlay(tables_at_rev(root, sha), {head.table: before})
        pm = proposal_migration(current, Overlay(current, {head.table: after}), head.table,
                                head.parent, head.sequence)
    except (SchemactlError, KeyError, ValueError):
        return False
    return (pm.path == added and pm.revision == revision
            and gitops.read_at(root, sha, added) == pm.rendered.source.encode())


def branch_rollbacks(root: Path, merge_base: str,
                     base: str | None = None) -> list[RollbackCommit]:
    """Verified rollback, revert and replace commits between ``merge_base`` and HEAD,
    oldest first (``base``: the target branch, whose audit file is read too)."""
    raw = gitops.git_text(root, "log", "--reverse", "--first-parent", "--format=%H %P%n%B%x00",
                    f"{merge_base}..HEAD")
    audit_revs = ("HEAD",) + ((base,) if base else ())
    found = []
    for entry in raw.split("\0"):
        head, _, body = entry.strip().partition("\n")
        shas = head.split()
        action = gitops.trailers_of(body).get("Schemactl-Action")
        if len(shas) != 2:
            continue
        commit = None
        if action == "rollback":
            commit = _verify_rollback(root, shas[0], shas[1], body)
        elif action in ("revert", "replace"):
            commit = _verify_unapplied_undo(root, shas[0], shas[1], body, action, audit_revs)
        if commit is not None:
            found.append(commit)
    return found
