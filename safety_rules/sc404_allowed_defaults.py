"""SC404 allowed-defaults."""

from __future__ import annotations

from collections.abc import Iterator

from .base import Rule, RuleContext
from .typing_rules import default_problem
from .violation import Violation


class AllowedDefaults(Rule):
    """A default outside the whitelist: free SQL, another function, or a literal of the wrong type.

    Defaults are data, never SQL. Allowed: literals (string, number, boolean,
    null; JSON text for jsonb, which must parse) that fit the column type, and
    the functions ``now()``, ``current_timestamp`` (timestamps, dates) and
    ``gen_random_uuid()`` (uuid).

    **Anti-pattern**

    ```yaml
    table: notes
    columns:
      - {name: body, type: text, default: "(select secret from agents limit 1)"}
      - {name: rank, type: integer, default: abc}
      - {name: tags, type: jsonb, default: "[unclosed"}
    ```

    **Best practice**

    ```yaml
    table: notes
    columns:
      - {name: body, type: text, default: ""}
      - {name: rank, type: integer, default: 0}
      - {name: tags, type: jsonb, default: "[]"}
    ```
    """

    code = "SC404"
    name = "allowed-defaults"
    hint = ("use a literal of the column's type, JSON text for jsonb, or one of now(), "
            "current_timestamp, gen_random_uuid(); compute anything else in the application")

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        for ch in ctx.proposed_changes:
            tdef = ch.after
            assert tdef is not None
            for col in tdef.columns:
                problem = default_problem(col)
                if problem:
                    yield self.violation(f"column {ch.name}.{col.name}: {problem}", table=ch.name,
                                         column=col.name, tdef=tdef)
