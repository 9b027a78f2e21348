"""SC504 rewriting-type-change."""

from __future__ import annotations

from collections.abc import Iterator

from .base import Rule, RuleContext
from .typing_rules import classify_change, refused_type_changes
from .typing_rules_ops import altered_types
from .violation import Violation

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from .ops_context import OpsContext


class RewritingTypeChange(Rule):
    """A type change that rewrites an existing table under an ACCESS EXCLUSIVE lock.

    ``integer`` → ``bigint``, ``timestamp`` → ``timestamptz`` or
    ``real`` → ``double precision`` keep every value but PostgreSQL rewrites
    the whole table and blocks reads and writes meanwhile. Binary-compatible
    changes (``varchar(n)`` → ``varchar(m > n)``, ``varchar`` → ``text``) do not.
    In a definition, a change along the online cast whitelist (smallint → integer →
    bigint → numeric, real → double precision, numeric widening) runs online instead:
    a shadow column kept in step by a trigger, backfilled in primary-key batches, then
    swapped in under a short lock. The old values go to the archive.

    **Anti-pattern**

    ```yaml
    # before: {name: views, type: integer}
    table: projects
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: views, type: bigint}
    ```

    **Best practice**

    ```yaml
    # the same definition change, made by `schemactl propose`: an online retype
    # (expand, backfill, contract); a migration with a direct ALTER TYPE stays refused
    table: projects
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: views, type: bigint}
    ```
    """

    code = "SC504"
    name = "rewriting-type-change"
    hint = ("let `schemactl propose` write the change: along the online cast whitelist "
            "(smallint→integer→bigint→numeric, real→double precision, numeric widening) it "
            "runs online (expand, backfill, contract); for another type add a new column, "
            "backfill it and deprecate the old one, or waive this rule for a small table")

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        return refused_type_changes(self, ctx, "rewrite", ": PostgreSQL rewrites the table "
                                                          "under an ACCESS EXCLUSIVE lock")

    def check_ops(self, ctx: OpsContext) -> Iterator[Violation]:
        for item, old, new in altered_types(ctx):
            if ctx.is_existing(item.table) and classify_change(old, new) == "rewrite":
                yield self.violation(f"the migration rewrites {item.table} to change "
                                     f"{item.op.column_name} from {old} to {new}",
                                     table=item.table, column=item.op.column_name)
