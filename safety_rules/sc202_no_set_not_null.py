"""SC202 no-set-not-null."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from schemactl.model.online import ColumnChange, online_problem

from .base import Rule, RuleContext
from .typing_rules import default_problem
from .violation import Violation

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any

    from .ops_context import OpsContext


class NoSetNotNull(Rule):
    """Making an existing nullable column NOT NULL.

    ``SET NOT NULL`` scans the whole table under an ACCESS EXCLUSIVE lock and
    fails when any row holds a NULL, which the application was allowed to write.
    With ``backfill: <literal>`` it runs online: existing NULLs become the literal in
    primary-key batches (a trigger does the same for writers meanwhile), then NOT NULL
    is set through ``CHECK (...) NOT VALID``, ``VALIDATE`` and ``SET NOT NULL`` under a
    short lock. ``backfill: null`` says there is no NULL; the run checks it first.

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
    # tighten online: existing NULLs become 0 first
    table: characters
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: age, type: integer, nullable: false, backfill: 0}
    ```
    """

    code = "SC202"
    name = "no-set-not-null"
    hint = ("to tighten online add the value existing NULLs become: "
            "`{name: age, type: integer, nullable: false, backfill: 0}` (`backfill: null` "
            "when there is no NULL: checked before the contract); or keep it nullable")

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        for ch in ctx.changes:
            for old, new in ch.kept_columns():
                if not (old.nullable and not new.nullable):
                    continue
                if new.has_backfill and ch.before is not None:
                    yield from self._online(ch.name, ch.before, ch.after, old, new)
                else:
                    yield self.violation(f"column {ch.name}.{new.name} becomes NOT NULL; existing "
                                         "rows may hold NULLs", table=ch.name, column=new.name,
                                         tdef=ch.after)

    def _online(self, table: str, before: Any, after: Any, old: Any, new: Any
                ) -> Iterator[Violation]:
        problem = online_problem(before, ColumnChange(table, old, new))
        if problem:
            yield self.violation(f"column {table}.{new.name} cannot become NOT NULL online: "
                                 f"{problem}", table=table, column=new.name, tdef=after)
        if new.backfill is not None:
            bad = default_problem(replace(new, default=new.backfill, has_default=True))
            if bad:
                yield self.violation(f"column {table}.{new.name}: backfill {bad.split(' ', 1)[1]}",
                                     table=table, column=new.name, tdef=after,
                                     hint=f"backfill is a literal of type {new.type}")

    def check_ops(self, ctx: OpsContext) -> Iterator[Violation]:
        for item in ctx.of_kind("AlterColumnOp"):
            op = item.op
            if op.modify_nullable is False and op.existing_nullable is not False \
                    and ctx.is_existing(item.table):
                yield self.violation(f"the migration sets {item.table}.{op.column_name} NOT NULL",
                                     table=item.table, column=op.column_name)
