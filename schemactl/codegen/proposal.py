"""The migration `schemactl propose` writes for one table's change: one home for its bytes.

propose, `propose --replace` and `check` (which accepts a replaced migration only when it is
byte for byte what propose would have written) all render through :func:`proposal_migration`,
so the three can never disagree about a revision id, a file name or a file's text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from schemactl.model.definitions import TableDef, definition_path

if TYPE_CHECKING:
    from schemactl.codegen.planner import Plan
    from schemactl.codegen.render import Rendered


@dataclass(frozen=True)
class ProposalMigration:
    """The plan of one table's change and the migration file rendered from it."""

    plan: Plan
    revision: str
    rendered: Rendered

    @property
    def path(self) -> str:
        return f"migrations/versions/{self.rendered.filename}"


def proposal_key(before: TableDef | None, after: TableDef) -> str:
    """What a proposal's revision id hashes besides its parent: the table before and after."""
    from schemactl.model.parsing import dump_definition

    return (dump_definition(before) if before else "") + "\n---\n" + dump_definition(after)


def plan_of(current: Mapping[str, TableDef], proposed: Mapping[str, TableDef],
            table: str) -> Plan:
    from schemactl.codegen.planner import build_plan

    return build_plan(current, proposed, [table])


def proposal_migration(current: Mapping[str, TableDef], proposed: Mapping[str, TableDef],
                       table: str, parent: str | None, sequence: int,
                       plan: Plan | None = None) -> ProposalMigration:
    """The migration propose writes for ``table`` going from ``current`` to ``proposed``.

    Args:
        parent: the revision it follows (the chain's head when it is proposed).
        sequence: its place in the chain (1 for the first migration).
        plan: the plan when the caller already built it (:func:`plan_of`).

    Raises:
        RenderError: the plan cannot be rendered (a destructive operation).
    """
    from schemactl.codegen.render import render_migration, revision_id

    plan = plan if plan is not None else plan_of(current, proposed, table)
    revision = revision_id(sequence, parent, proposal_key(current.get(table), proposed[table]))
    rendered = render_migration(plan, revision, parent, sources=[definition_path(table)])
    return ProposalMigration(plan, revision, rendered)


# -- the proposal that made the chain's head (what --replace/--revert undo) --------------

# The marker the migration template writes into every migration propose renders.
PROPOSE_MARK = "Made by `schemactl propose`"


@dataclass(frozen=True)
class HeadProposal:
    """The head migration of a commit's chain and the proposal commit that added it."""

    name: str               # file name in migrations/versions/
    revision: str
    parent: str
    source: bytes
    commit: str             # the proposal commit that added the file
    table: str
    definition: str         # dynamic_schema/<table>.yaml
    before: bytes | None    # that definition before the proposal (None: it made the table)
    sequence: int           # the migration's place in the chain (its replacement's too)
    # the other definitions an online table rename changed (the old name's file, removed,
    # and the referencing tables'), each with its bytes before the proposal
    others: tuple[tuple[str, bytes | None], ...] = ()

    @property
    def path(self) -> str:
        return f"migrations/versions/{self.name}"


def head_proposal(root: Path, rev: str = "HEAD") -> HeadProposal:
    """The head migration at ``rev``, when propose made it for one table, with what it changed.

    Raises:
        RejectedError: the head is the core schema's migration or was not made by propose
            (exit 1: schemactl only undoes its own proposals).
        ConflictError: several heads, or the proposal commit cannot be told apart (exit 4).
    """
    from schemactl.adapters import gitops
    from schemactl.codegen import sumfile
    from schemactl.errors import ConflictError, RejectedError

    files = sumfile.files_at_rev(root, rev)
    chain = sumfile.migrations_from(files)
    heads = sumfile.heads_of(chain)
    if len(heads) != 1:
        raise ConflictError(f"migrations/ has {len(heads)} heads at {rev}",
                            hint="put the migrations back into one line first (SC603)",
                            code="multiple_heads")
    top = next(m for m in chain if m.revision == heads[0])
    source = files[top.name]
    if not top.down_revisions:
        raise RejectedError(f"{top.revision} is the core schema's migration: schemactl never "
                            "replaces or reverts it", code="core_protected",
                            hint="the core schema is owned by humans")
    if PROPOSE_MARK.encode() not in source:
        raise RejectedError(f"{top.revision} was not made by `schemactl propose`: only its own "
                            "proposals can be replaced or reverted", code="not_proposed",
                            hint="change a hand-written migration with a reviewed commit")
    commit = proposal_origin(root, rev, top.name)
    if commit is None:
        raise ConflictError(f"{top.path} was never committed", code="uncommitted",
                            hint="commit the proposal first (schemactl propose does)")
    changed = [p for p in gitops.git_text(root, "diff-tree", "-r", "-z", "--no-renames",
                                          "--name-only", "--root", commit, "--",
                                          "dynamic_schema").split("\0")
               if p.startswith("dynamic_schema/")]
    has_parent = bool(gitops.git_text(root, "rev-list", "--parents", "-n", "1",
                                      commit).split()[1:])

    def before_of(path: str) -> bytes | None:
        return gitops.read_at(root, f"{commit}^", path) if has_parent else None

    main = changed[0] if len(changed) == 1 else _renamed_table_file(root, commit, changed,
                                                                    before_of)
    if main is None:
        raise ConflictError(f"the commit that added {top.name} changed {len(changed)} "
                            "definitions, not one: cannot tell what it proposed",
                            code="unknown_proposal",
                            hint="change it with a reviewed commit instead")
    parent_rev = top.down_revisions[0]
    sequence = 1 + next(i for i, m in enumerate(chain) if m.revision == top.revision)
    return HeadProposal(name=top.name, revision=str(top.revision), parent=parent_rev,
                        source=source, commit=commit, table=Path(main).stem,
                        definition=main, before=before_of(main), sequence=sequence,
                        others=tuple((p, before_of(p)) for p in changed if p != main))


def _renamed_table_file(root: Path, commit: str, changed: list[str],
                        before_of: Callable[[str], bytes | None]) -> str | None:
    """The definition an online table rename's proposal made (its other changes: the old
    name's file removed, the referencing tables' pointed at the new name), else None."""
    from schemactl.adapters import gitops
    from schemactl.errors import SchemactlError
    from schemactl.model.parsing import parse_definition

    made = [p for p in changed if before_of(p) is None]
    gone = [p for p in changed if gitops.read_at(root, commit, p) is None]
    if len(made) != 1 or len(gone) != 1:
        return None
    try:
        tdef = parse_definition(gitops.read_at(root, commit, made[0]) or b"", made[0])
        old = parse_definition(before_of(gone[0]) or b"", gone[0])
    except SchemactlError:
        return None
    return made[0] if tdef.renamed_from and tdef.renamed_from == old.table else None


def proposal_origin(root: Path, rev: str, name: str) -> str | None:
    """The proposal commit whose parent holds the definitions before migration ``name``.

    That is the commit that added the file, unless `propose --replace` added it: then the
    replaced migration's origin, followed back (a replacement stands for its original
    proposal, so a revert or rollback puts back what was there before both).
    """
    from schemactl.adapters import gitops
    from schemactl.codegen import sumfile

    path = f"{sumfile.VERSIONS}/{name}"
    for _hop in range(100):
        added = gitops.git_text(root, "log", "--diff-filter=A", "--format=%H", rev, "--",
                                path).split()
        if not added:
            return None
        commit = added[0]
        body = gitops.git_text(root, "log", "-1", "--format=%B", commit)
        trailers = gitops.trailers_of(body)
        replaced = trailers.get("Schemactl-Replaces")
        if trailers.get("Schemactl-Action") != "replace" or not replaced:
            return commit
        older = [m for m in sumfile.migrations_from(sumfile.files_at_rev(root, f"{commit}^"))
                 if m.revision == replaced]
        if not older:
            return commit
        rev, path = f"{commit}^", older[0].path
    return None
