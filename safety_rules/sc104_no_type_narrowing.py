"""SC104 no-type-narrowing."""

from __future__ import annotations

from collections.abc import Iterator

from .base import Rule, RuleContext
from .typing_rules import classify_change, refused_type_changes
from .typing_rules_ops import altered_types
from .violation import Violation

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from .ops_context import OpsContext


class NoTypeNarrowing(Rule):
    """A column type change that can lose data or fail on existing rows.

    ``varchar(200)`` → ``varchar(100)``, ``bigint`` → ``integer`` or
    ``text`` → ``integer`` truncate, overflow or fail half-way on the rows
    already stored. Widening is fine: ``varchar(n)`` → ``varchar(m > n)``,
    ``varchar`` → ``text``. ``varchar(n)`` → ``varchar(m < n)`` and ``text`` →
    ``varchar(n)`` run online (shadow column, batched backfill, short contract) and
    stop before the contract, naming the rows, when a stored value does not fit.

    **Anti-pattern**

    ```yaml
    # before: {name: name, type: varchar(200)}
    table: characters
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: name, type: varchar(100)}
    ```

    **Best practice**

    ```yaml
    # widen, never narrow; for a different type add a new column and copy
    table: characters
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: name, type: varchar(400)}
    # bigint → integer or text → integer: add a new column, copy, deprecate the old one
    ```
    """

    code = "SC104"
    name = "no-type-narrowing"
    hint = ("keep the type (or widen it: varchar(n)→varchar(m>n), varchar→text); these run "
            "online: smallint→integer→bigint→numeric, real→double precision, numeric "
            "widening, varchar(n)→varchar(m<n) and text→varchar(n) when every value fits; for "
            "another kind of data add a new column, copy the values and deprecate the old one")

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        return refused_type_changes(self, ctx, "narrowing",
                                    ", which can lose data or fail on existing rows")

    def check_ops(self, ctx: OpsContext) -> Iterator[Violation]:
        for item, old, new in altered_types(ctx):
            if classify_change(old, new) == "narrowing":
                yield self.violation(f"the migration changes {item.table}.{item.op.column_name} "
                                     f"from {old} to {new}", table=item.table,
                                     column=item.op.column_name)
