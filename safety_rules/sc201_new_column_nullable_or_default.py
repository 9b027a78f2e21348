"""SC201 new-column-nullable-or-default."""

from __future__ import annotations

from collections.abc import Iterator

from .base import Rule, RuleContext
from .typing_rules_ops import server_default_text
from .violation import Violation

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from .ops_context import OpsContext


class NewColumnNullableOrDefault(Rule):
    """A NOT NULL column without a default added to an existing table.

    The rows already in the table have no value for the new column, so
    ``ADD COLUMN ... NOT NULL`` fails (or, worse, succeeds only on an empty
    development table and fails in production). A table that is new in the
    proposal may have such columns.

    **Anti-pattern**

    ```yaml
    # notes exists already; status is new
    table: notes
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: status, type: text, nullable: false}
    ```

    **Best practice**

    ```yaml
    table: notes
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: status, type: text, nullable: false, default: draft}
    ```
    """

    code = "SC201"
    name = "new-column-nullable-or-default"
    hint = ("make the new column nullable, or give it a constant default "
            "(`nullable: false, default: ...`)")

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        for ch in ctx.changes:
            if ch.is_new:
                continue
            for col in ch.added_columns():
                if not col.nullable and not col.has_default:
                    yield self.violation(
                        f"new column {ch.name}.{col.name} is NOT NULL without a default, and "
                        "the table already has rows", table=ch.name, column=col.name,
                        tdef=ch.after)

    def check_ops(self, ctx: OpsContext) -> Iterator[Violation]:
        for item in ctx.of_kind("AddColumnOp"):
            col = item.op.column
            if (ctx.is_existing(item.table) and not col.nullable
                    and server_default_text(col.server_default) is None):
                yield self.violation(f"the migration adds {item.table}.{col.name} NOT NULL "
                                     "without a server default", table=item.table,
                                     column=col.name)
