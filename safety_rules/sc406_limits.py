"""SC406 limits."""

from __future__ import annotations

from collections.abc import Iterator

from .base import Rule, RuleContext
from .violation import Violation


class Limits(Rule):
    """A definition with too many columns or indexes, or too large a file.

    Bounded sizes keep hostile or runaway input cheap to refuse and keep
    tables reviewable. Defaults: 100 columns, 20 indexes and 64 KiB per
    definition (``[limits]`` in ``schemactl.toml``). An oversized file is
    refused before it is parsed.

    **Anti-pattern**

    ```yaml
    # 150 columns, one per attribute ever seen
    table: characters
    columns:
      - {name: attr_001, type: text}
      - {name: attr_002, type: text}
      # ... up to attr_150
    ```

    **Best practice**

    ```yaml
    # a jsonb column for the long tail, or a second table
    table: characters
    columns:
      - {name: name, type: text}
      - {name: attributes, type: jsonb, nullable: false, default: "{}"}
    ```
    """

    code = "SC406"
    name = "limits"
    hint = ("split the table, keep rare attributes in a jsonb column, or raise [limits] in "
            "schemactl.toml deliberately")

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        lim = ctx.config.limits
        for ch in ctx.proposed_changes:
            tdef = ch.after
            assert tdef is not None
            if len(tdef.columns) > lim.max_columns:
                yield self.violation(f"table {ch.name} has {len(tdef.columns)} columns (limit "
                                     f"{lim.max_columns})", table=ch.name, tdef=tdef)
            if len(tdef.indexes) > lim.max_indexes:
                yield self.violation(f"table {ch.name} has {len(tdef.indexes)} indexes (limit "
                                     f"{lim.max_indexes})", table=ch.name, tdef=tdef)
            if tdef.size > lim.max_definition_bytes:
                yield self.violation(oversized_message(tdef.source, tdef.size,
                                                       lim.max_definition_bytes),
                                     table=ch.name, tdef=tdef)

    def oversized(self, source: str, size: int, limit: int, table: str | None = None
                  ) -> Violation:
        """The violation for a file refused before parsing because of its size."""
        v = self.violation(oversized_message(source, size, limit), table=table)
        return Violation(**{**v.__dict__, "source": source, "line": None})


def oversized_message(source: str, size: int, limit: int) -> str:
    return f"{source} is {size} bytes, over the {limit}-byte limit per definition"
