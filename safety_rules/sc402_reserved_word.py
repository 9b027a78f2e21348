"""SC402 reserved-word."""

from __future__ import annotations

from collections.abc import Iterator

from .base import Rule, RuleContext
from .names import names_of
from .violation import Violation

# PostgreSQL's reserved key words, including those that may only be function or type names
# (PostgreSQL documentation, appendix "SQL Key Words").
RESERVED = frozenset("""
all analyse analyze and any array as asc asymmetric both case cast check collate column
constraint create current_catalog current_date current_role current_time current_timestamp
current_user default deferrable desc distinct do else end except false fetch for foreign from
grant group having in initially intersect into lateral leading limit localtime localtimestamp
not null offset on only or order placing primary references returning select session_user
some symmetric system_user table then to trailing true union unique user using variadic when
where window with
authorization binary collation concurrently cross current_schema freeze full ilike inner is
isnull join left like natural notnull outer overlaps right similar tablesample verbose
""".split())


class ReservedWord(Rule):
    """A PostgreSQL reserved word used as a table, column or index name.

    ``user``, ``order`` or ``group`` only work quoted, everywhere, forever:
    every hand-written query and every tool that forgets the quotes breaks.

    **Anti-pattern**

    ```yaml
    table: order
    columns:
      - {name: user, type: bigint}
    ```

    **Best practice**

    ```yaml
    table: orders
    columns:
      - {name: user_id, type: bigint}
    ```
    """

    code = "SC402"
    name = "reserved-word"
    hint = "pick another name: add a noun or a suffix (user → user_id, order → orders)"

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        for ch in ctx.proposed_changes:
            tdef = ch.after
            assert tdef is not None
            for kind, name, column in names_of(tdef):
                if kind != "indexed column" and name in RESERVED:
                    yield self.violation(f"{kind} name {name!r} is a PostgreSQL reserved word",
                                         table=ch.name, column=column, tdef=tdef)
