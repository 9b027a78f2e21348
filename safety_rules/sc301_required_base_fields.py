"""SC301 required-base-fields."""

from __future__ import annotations

from collections.abc import Iterator

from .base import Rule, RuleContext
from .violation import Violation


class RequiredBaseFields(Rule):
    """A dynamic table without every base field of the application's data design.

    Every dynamic table carries ``id``, ``created_at``, ``updated_at``,
    ``is_deleted`` and ``created_by`` (the set is configured in
    ``schemactl.toml``): soft deletes, auditing and generic tooling rely on them.

    **Anti-pattern**

    ```yaml
    table: ideas
    columns:
      - {name: title, type: text}
    ```

    **Best practice**

    ```yaml
    table: ideas
    columns:
      - {name: id,         type: uuid,        primary_key: true, default: gen_random_uuid()}
      - {name: created_at, type: timestamptz, nullable: false,   default: now()}
      - {name: updated_at, type: timestamptz, nullable: false,   default: now()}
      - {name: is_deleted, type: boolean,     nullable: false,   default: false}
      - {name: created_by, type: bigint}
      - {name: title, type: text}
    ```
    """

    code = "SC301"
    name = "required-base-fields"
    hint = "add the missing base fields exactly as schemactl.toml [[base_fields]] describes them"

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        for ch in ctx.proposed_changes:
            tdef = ch.after
            if tdef is None or tdef.deprecated:
                continue
            names = set(tdef.column_names)
            missing = [f for f in ctx.config.base_fields if f.name not in names]
            for bf in missing:
                shape = bf.as_yaml()
                yield self.violation(f"table {ch.name} lacks the base field {bf.name}",
                                     table=ch.name, column=bf.name, tdef=tdef,
                                     hint=f"add the column {shape}")
