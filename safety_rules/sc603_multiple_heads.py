"""SC603 multiple-heads."""

from __future__ import annotations

from collections.abc import Iterator

from .base import Rule
from .violation import Violation

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from .repo_context import RepoContext


class MultipleHeads(Rule):
    """The migrations have more than one Alembic head.

    Two branches each added a migration on the same parent: after the merge,
    ``alembic upgrade head`` has no single target and the order in which the two
    changes reach a database is undefined. The same happens when the base rolled back
    the migration this branch's migration follows. Take the branch's migration out,
    restore the base's definition and sum file, and propose the definition again, so that
    its migration follows the base's head.

    **Anti-pattern**

    ```yaml
    # main added 0007_aaaa (parent 0006); this branch also adds 0007_bbbb (parent 0006)
    table: notes
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: pinned, type: boolean}
    ```

    **Best practice**

    ```yaml
    # rebased on main, the branch's migration is proposed again: 0008_cccc (parent 0007_aaaa)
    table: notes
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: pinned, type: boolean}
    ```
    """

    code = "SC603"
    name = "multiple-heads"
    hint = ("put this branch's migration back on top of the base: keep a copy of your "
            "definition, `git rm` the branch's migration, `git checkout <base> -- "
            "migrations/schemactl.sum` and the definition (`git rm` it when the base has none), "
            "commit, then `schemactl propose <your copy>`: the new migration follows the "
            "base's head")

    def check_repo(self, ctx: RepoContext) -> Iterator[Violation]:
        base = {name for name, _ in ctx.base_migrations}
        missing = {name: parent for name, parent in ctx.missing_parents}
        for name, parent in ctx.missing_parents:
            if name in base:
                continue  # the base's own chain: SC601 reports what was removed from it
            yield self._at(f"migration {name} follows revision {parent}, which no migration "
                           "has any more (removed or rolled back on the base)", name, ctx)
        if len(ctx.heads) < 2:
            return
        names = [ctx.head_revisions.get(h, h) for h in ctx.heads]
        ours = [n for n in names if n not in base and n not in missing]
        theirs = [n for n in names if n in base]
        if not ours and theirs == names:
            ours = names[1:]  # the base itself has two heads: point at one of them
        shown = ", ".join(f"{n} (on the base)" if n in base else n for n in names)
        for name in ours:
            yield self._at(f"the migrations have {len(names)} heads: {shown}; {name} does not "
                           "follow the base's head", name, ctx)

    def _at(self, message: str, name: str, ctx: RepoContext) -> Violation:
        path = f"migrations/versions/{name}"
        made = sorted(t for t, src in ctx.touched_by.items() if src == path)
        hint = self.hint
        if made:
            defs = " ".join(f"dynamic_schema/{t}.yaml" for t in made)
            hint = (f"put {name} back on top of the base: copy {defs} aside, `git rm {path}`, "
                    f"`git checkout <base> -- migrations/schemactl.sum {defs}` (`git rm` a "
                    "definition the base does not have), commit, then `schemactl propose` "
                    "your copy: the new migration follows the base's head")
        return Violation(rule=self.code, name=self.name, severity=self.severity,
                         message=message, hint=hint, table=made[0] if len(made) == 1 else None,
                         source=path, line=1)
