"""SC603 multiple-heads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from schemactl.validation import Violation

from .base import Rule

if TYPE_CHECKING:
    from schemactl.check import RepoContext


class MultipleHeads(Rule):
    """The migrations have more than one Alembic head.

    Two branches each added a migration on the same parent: after the merge,
    ``alembic upgrade head`` has no single target and the order in which the two
    changes reach a database is undefined. Rebase the pull request and propose its
    definition again, so that its migration follows the other one.

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
    hint = ("rebase on the base branch, delete this branch's migration and run "
            "`schemactl propose` again: its migration then follows the base's head")

    def check_repo(self, ctx: RepoContext) -> Iterator[Violation]:
        if len(ctx.heads) > 1:
            yield Violation(rule=self.code, name=self.name, severity=self.severity,
                            message=f"the migrations have {len(ctx.heads)} heads: "
                                    f"{', '.join(ctx.heads)}",
                            hint=self.hint, source="migrations/versions", line=None)
