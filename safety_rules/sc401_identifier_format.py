"""SC401 identifier-format."""

from __future__ import annotations

from collections.abc import Iterator

from schemactl.model.naming import identifier_problem

from .base import Rule, RuleContext
from .names import names_of, reference_parts
from .violation import Violation

# PostgreSQL's system columns: every table has them, so no column may take their names.
SYSTEM_COLUMNS = frozenset({"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"})


class IdentifierFormat(Rule):
    """A table, column, index or referenced name that is not a plain lower-case identifier.

    Names are used as identifiers in generated SQL and in application code.
    Only ``^[a-z_][a-z0-9_]*$`` up to 63 bytes is accepted: no quoting games,
    no upper case that PostgreSQL would fold, no silent truncation, and no
    room for injected SQL. A column may not take the name of a system column
    (``xmin``, ``xmax``, ``cmin``, ``cmax``, ``ctid``, ``tableoid``), and a comment may
    not hold a NUL character: PostgreSQL refuses both, at apply, after the backup.

    **Anti-pattern**

    ```yaml
    table: "notes; DROP TABLE audit_log; --"
    columns:
      - {name: Title, type: text}
    ```

    **Best practice**

    ```yaml
    table: notes
    columns:
      - {name: title, type: text}
    ```
    """

    code = "SC401"
    name = "identifier-format"
    hint = "use lower-case letters, digits and underscores, starting with a letter or underscore"

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        for ch in ctx.proposed_changes:
            tdef = ch.after
            assert tdef is not None
            seen: set[tuple[str, str]] = set()
            for kind, name, column in names_of(tdef):
                problem = identifier_problem(name)
                if problem and (kind, name) not in seen:
                    seen.add((kind, name))
                    yield self.violation(f"{kind} name {name!r} {problem}", table=ch.name,
                                         column=column, tdef=tdef)
            for column, part in reference_parts(tdef):
                problem = identifier_problem(part)
                if problem:
                    yield self.violation(f"reference part {part!r} of {ch.name}.{column} "
                                         f"{problem}", table=ch.name, column=column, tdef=tdef)
            for col in tdef.columns:
                if col.name in SYSTEM_COLUMNS:
                    yield self.violation(f"column name {col.name!r} is a PostgreSQL system "
                                         "column (every table has it)", table=ch.name,
                                         column=col.name, tdef=tdef,
                                         hint=f"name the column otherwise, e.g. {col.name}_value")
            comments: list[tuple[str, str | None, str | None]] = [
                (f"the comment of table {ch.name}", tdef.comment, None)]
            comments += [(f"the comment of {ch.name}.{c.name}", c.comment, c.name)
                         for c in tdef.columns]
            for what, text, column in comments:
                if text and "\x00" in text:
                    yield self.violation(f"{what} holds a NUL character, which PostgreSQL text "
                                         "cannot store", table=ch.name, column=column,
                                         tdef=tdef, hint="remove the NUL (\\0) from the comment")
            for idx in tdef.indexes:
                if idx.opclass is not None and identifier_problem(idx.opclass):
                    yield self.violation(f"operator class {idx.opclass!r} is not an identifier",
                                         table=ch.name, tdef=tdef)
