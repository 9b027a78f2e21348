"""SC102 no-drop-column."""

from __future__ import annotations

from collections.abc import Iterator

from .base import Rule, RuleContext
from .violation import Violation

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from .ops_context import OpsContext


class NoDropColumn(Rule):
    """A column removed from a definition loses its values.

    ``ALTER TABLE ... DROP COLUMN`` destroys data and breaks every reader
    that still selects the column. Deprecate the column instead: it stays in
    the database, marked as retired.

    **Anti-pattern**

    ```yaml
    # before: columns id, name, age — after: age is gone
    table: characters
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: name, type: varchar(200), nullable: false}
    ```

    **Best practice**

    ```yaml
    table: characters
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: name, type: varchar(200), nullable: false}
      - {name: age, type: integer, deprecated: true}
    ```
    """

    code = "SC102"
    name = "no-drop-column"
    hint = ("keep the column and set `deprecated: true` on it: the values stay in the database "
            "and readers are told it is retired")

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        for ch in ctx.changes:
            for col in ch.removed_columns():
                yield self.violation(f"column {ch.name}.{col.name} is removed (DROP COLUMN loses "
                                     "its values)", table=ch.name, column=col.name, tdef=ch.before)

    def check_ops(self, ctx: OpsContext) -> Iterator[Violation]:
        for item in ctx.of_kind("DropColumnOp"):
            col = item.op.column_name
            yield self.violation(f"the migration drops column {item.table}.{col}",
                                 table=item.table, column=col)
