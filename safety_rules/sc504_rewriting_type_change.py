"""SC504 rewriting-type-change."""

from __future__ import annotations

from collections.abc import Iterator

from .base import OpsContext, Rule, RuleContext
from .typing_rules import classify_change
from .typing_rules_ops import altered_types
from .violation import Violation


class RewritingTypeChange(Rule):
    """A type change that rewrites an existing table under an ACCESS EXCLUSIVE lock.

    ``integer`` → ``bigint``, ``timestamp`` → ``timestamptz`` or
    ``real`` → ``double precision`` keep every value but PostgreSQL rewrites
    the whole table and blocks reads and writes meanwhile. Binary-compatible
    changes (``varchar(n)`` → ``varchar(m > n)``, ``varchar`` → ``text``) do not.

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
    # add the wider column, backfill it in batches, switch readers, deprecate the old one
    table: projects
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: views, type: integer, deprecated: true}
      - {name: view_count, type: bigint}
    ```
    """

    code = "SC504"
    name = "rewriting-type-change"
    hint = ("add a new column of the new type, backfill it in batches, move readers, then "
            "deprecate the old column; or waive this rule for a small table with a reason")

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        for ch in ctx.changes:
            for old, new in ch.kept_columns():
                if classify_change(old.type, new.type) == "rewrite":
                    yield self.violation(
                        f"column {ch.name}.{new.name} changes type {old.type} → {new.type}: "
                        "PostgreSQL rewrites the table under an ACCESS EXCLUSIVE lock",
                        table=ch.name, column=new.name, tdef=ch.after)

    def check_ops(self, ctx: OpsContext) -> Iterator[Violation]:
        for item, old, new in altered_types(ctx):
            if ctx.is_existing(item.table) and classify_change(old, new) == "rewrite":
                yield self.violation(f"the migration rewrites {item.table} to change "
                                     f"{item.op.column_name} from {old} to {new}",
                                     table=item.table, column=item.op.column_name)
