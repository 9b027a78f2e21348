"""SC302 base-field-shape."""

from __future__ import annotations

from collections.abc import Iterator

from schemactl.model.definitions import normalise_type

from .base import Rule, RuleContext
from .typing_rules import canonical_default
from .violation import Violation


class BaseFieldShape(Rule):
    """A base field with the wrong type, default, nullability or key.

    A base field is only useful when it is the same everywhere: ``id`` a
    ``uuid`` primary key defaulting to ``gen_random_uuid()``, ``is_deleted`` a
    NOT NULL ``boolean`` defaulting to false, and so on (``schemactl.toml``).
    The key is ``id`` alone: a second ``primary_key: true`` column is refused
    (it would silently turn the key into a composite one).

    **Anti-pattern**

    ```yaml
    table: ideas
    columns:
      - {name: id,         type: bigint,      primary_key: true}
      - {name: created_at, type: timestamptz, nullable: false,   default: now()}
      - {name: updated_at, type: timestamptz, nullable: false,   default: now()}
      - {name: is_deleted, type: boolean}
      - {name: created_by, type: bigint}
      - {name: slug,       type: text,        primary_key: true}
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
    ```
    """

    code = "SC302"
    name = "base-field-shape"
    hint = "declare the base field exactly as schemactl.toml [[base_fields]] describes it"

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        for ch in ctx.proposed_changes:
            tdef = ch.after
            if tdef is None or tdef.deprecated:
                continue
            # A column defined twice is SC405's; here it is one key column, not two.
            keys = list(dict.fromkeys(tdef.primary_key))
            if len(keys) > 1:
                key_field = next((bf.name for bf in ctx.config.base_fields if bf.primary_key),
                                 None)
                extra = [k for k in keys if k != key_field] if key_field in keys else keys[1:]
                yield self.violation(
                    f"{ch.name} has {len(keys)} primary_key columns ({', '.join(keys)}): a "
                    "second one would silently make a composite key", table=ch.name,
                    column=extra[0], tdef=tdef,
                    hint=(f"keep `primary_key: true` on {key_field or keys[0]} only; make "
                          f"{', '.join(extra)} `unique: true`, or add a unique index over "
                          "the columns together"))
            for bf in ctx.config.base_fields:
                col = tdef.column(bf.name)
                if col is None:
                    continue
                shape = bf.as_yaml()
                hint = f"declare it exactly as {shape}"
                problems = []
                types = {normalise_type(t) for t in (bf.type, *bf.accept_types)}
                if normalise_type(col.type) not in types:
                    problems.append(f"type {col.type} (expected {' or '.join(sorted(types))})")
                if bf.default is not None and canonical_default(col.default) != \
                        canonical_default(bf.default):
                    problems.append(f"default {col.default!r} (expected {bf.default})")
                if not bf.nullable and col.nullable:
                    problems.append("nullable (expected NOT NULL)")
                if bf.nullable and not bf.primary_key and not col.nullable:
                    problems.append("NOT NULL (expected nullable)")
                if bf.primary_key != col.primary_key:
                    problems.append("primary key" if col.primary_key else
                                    "not the primary key")
                if col.deprecated:
                    problems.append("deprecated (a base field stays)")
                for p in problems:
                    yield self.violation(f"base field {ch.name}.{bf.name}: {p}", table=ch.name,
                                         column=bf.name, tdef=tdef, hint=hint)
