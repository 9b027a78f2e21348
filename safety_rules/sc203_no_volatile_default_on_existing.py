"""SC203 no-volatile-default-on-existing."""

from __future__ import annotations

import re
from collections.abc import Iterator

from .base import Rule, RuleContext
from .typing_rules import VOLATILE_DEFAULTS, default_function
from .typing_rules_ops import server_default_text
from .violation import Violation

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from .ops_context import OpsContext

# Compiled by `re` on first use: only a migration adding a column to an existing table
# needs it, never a cold validate.
_VOLATILE_SQL = (r"gen_random_uuid|uuid_generate|random\s*\(|clock_timestamp|timeofday|"
                 r"nextval|txid_current")


class NoVolatileDefaultOnExisting(Rule):
    """A column with a volatile default added to an existing table.

    PostgreSQL adds a column with a constant or stable default (``now()``, a
    literal) instantly, but a volatile default such as ``gen_random_uuid()``
    is computed for every existing row: the whole table is rewritten under an
    ACCESS EXCLUSIVE lock. New tables may use volatile defaults freely.

    **Anti-pattern**

    ```yaml
    # projects exists already; external_id is new
    table: projects
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: external_id, type: uuid, default: gen_random_uuid()}
    ```

    **Best practice**

    ```yaml
    # add it nullable without a default, backfill in batches
    table: projects
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: external_id, type: uuid}
    ```
    """

    code = "SC203"
    name = "no-volatile-default-on-existing"
    hint = ("add the column nullable without a default, backfill existing rows in batches, "
            "then set the default for new rows")

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        for ch in ctx.changes:
            if ch.is_new:
                continue
            for col in ch.added_columns():
                if default_function(col) in VOLATILE_DEFAULTS:
                    yield self.violation(
                        f"new column {ch.name}.{col.name} has the volatile default "
                        f"{col.default}: adding it rewrites the existing table",
                        table=ch.name, column=col.name, tdef=ch.after)

    def check_ops(self, ctx: OpsContext) -> Iterator[Violation]:
        for item in ctx.of_kind("AddColumnOp"):
            col = item.op.column
            text = server_default_text(col.server_default)
            if (ctx.is_existing(item.table) and text
                    and re.search(_VOLATILE_SQL, text, re.IGNORECASE)):
                yield self.violation(f"the migration adds {item.table}.{col.name} with the "
                                     f"volatile default {text}", table=item.table,
                                     column=col.name)
