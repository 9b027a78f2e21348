"""SC202 no-set-not-null."""

from __future__ import annotations

from collections.abc import Iterator

from .base import OpsContext, Rule, RuleContext
from .violation import Violation


class NoSetNotNull(Rule):
    """Making an existing nullable column NOT NULL.

    ``SET NOT NULL`` scans the whole table under an ACCESS EXCLUSIVE lock and
    fails when any row holds a NULL, which the application was allowed to write.

    **Anti-pattern**

    ```yaml
    # before: {name: age, type: integer}
    table: characters
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: age, type: integer, nullable: false}
    ```

    **Best practice**

    ```yaml
    # keep it nullable; enforce the value in the application, or add a new column
    table: characters
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: age, type: integer}
    ```
    """

    code = "SC202"
    name = "no-set-not-null"
    hint = ("keep the column nullable; backfill the NULLs first and have a person add a "
            "CHECK (col IS NOT NULL) NOT VALID constraint, then validate it")

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        for ch in ctx.changes:
            for old, new in ch.kept_columns():
                if old.nullable and not new.nullable:
                    yield self.violation(f"column {ch.name}.{new.name} becomes NOT NULL; existing "
                                         "rows may hold NULLs", table=ch.name, column=new.name,
                                         tdef=ch.after)

    def check_ops(self, ctx: OpsContext) -> Iterator[Violation]:
        for item in ctx.of_kind("AlterColumnOp"):
            op = item.op
            if op.modify_nullable is False and op.existing_nullable is not False \
                    and ctx.is_existing(item.table):
                yield self.violation(f"the migration sets {item.table}.{op.column_name} NOT NULL",
                                     table=item.table, column=op.column_name)
