"""SC101 no-drop-table."""

from __future__ import annotations

from collections.abc import Iterator

from .base import Rule, RuleContext
from .violation import Violation

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from .ops_context import OpsContext


class NoDropTable(Rule):
    """A dynamic table removed from the definitions loses every row it holds.

    The definitions hold the whole desired state, so deleting a table's file
    asks for a ``DROP TABLE``. schemactl never drops: retire the table instead.

    **Anti-pattern**

    ```yaml
    # dynamic_schema/ideas.yaml is deleted; before, it held:
    table: ideas
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: title, type: text}
    ```

    **Best practice**

    ```yaml
    # keep the file and mark the table deprecated: rows are kept
    table: ideas
    deprecated: true
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: title, type: text}
    ```
    """

    code = "SC101"
    name = "no-drop-table"
    hint = ("keep the definition and set `deprecated: true` on the table: it stays in the "
            "database with its rows; to rename it, write the new name with `renamed_from: "
            "<old>` at the top level (an online rename, docs/online.md)")

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        for ch in ctx.changes:
            if ch.is_removed and ch.before is not None:
                yield self.violation(f"table {ch.name} is removed from the definitions "
                                     "(DROP TABLE loses its rows)", table=ch.name, tdef=ch.before)

    def check_ops(self, ctx: OpsContext) -> Iterator[Violation]:
        for item in ctx.of_kind("DropTableOp"):
            yield self.violation(f"the migration drops table {item.table}", table=item.table)
