"""SC204 no-primary-key-change."""

from __future__ import annotations

from collections.abc import Iterator

from .base import Rule, RuleContext
from .violation import Violation

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from .ops_context import OpsContext


class NoPrimaryKeyChange(Rule):
    """Changing the primary key of an existing table.

    A new primary key rebuilds its unique index under an ACCESS EXCLUSIVE
    lock, fails on duplicates, and breaks every foreign key and every client
    that addresses rows by the old key.

    **Anti-pattern**

    ```yaml
    # before: id was the primary key
    table: ideas
    columns:
      - {name: id, type: uuid, default: gen_random_uuid()}
      - {name: slug, type: text, primary_key: true}
    ```

    **Best practice**

    ```yaml
    # keep the key; make the other column unique instead
    table: ideas
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: slug, type: text, unique: true}
    ```
    """

    code = "SC204"
    name = "no-primary-key-change"
    hint = "keep the primary key as it is; add a unique constraint for another natural key"

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        for ch in ctx.changes:
            if ch.before is None or ch.after is None:
                continue
            if ch.before.primary_key != ch.after.primary_key:
                old = ", ".join(ch.before.primary_key) or "none"
                new = ", ".join(ch.after.primary_key) or "none"
                yield self.violation(f"the primary key of {ch.name} changes ({old} → {new})",
                                     table=ch.name, tdef=ch.after)

    def check_ops(self, ctx: OpsContext) -> Iterator[Violation]:
        for item in ctx.of_kind("DropConstraintOp", "CreatePrimaryKeyOp"):
            if item.kind == "DropConstraintOp" and item.op.constraint_type != "primary":
                continue
            if ctx.is_existing(item.table):
                yield self.violation(f"the migration changes the primary key of {item.table}",
                                     table=item.table)
