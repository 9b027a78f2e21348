"""SC601 migration-edited."""

from __future__ import annotations

from collections.abc import Iterator

from .base import Rule
from .violation import Violation

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from .repo_context import RepoContext

VERSIONS = "migrations/versions"


class MigrationEdited(Rule):
    """A migration already on the base branch was edited, removed or reordered.

    Databases that ran a migration will never run it again: editing it makes them
    differ from a database migrated later, with no error anywhere. The base branch's
    migrations are compared byte for byte and by position in the revision chain with
    the pull request's, and ``migrations/schemactl.sum`` (written by ``propose``) must
    still match the files it records. Change the definition instead: ``propose`` adds a
    new migration on top.

    **Anti-pattern**

    ```yaml
    # migrations/versions/0003_a5dc7c84_add_table_characters.py (merged) is edited
    # to add `age`, and dynamic_schema/characters.yaml gains:
    table: characters
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: age, type: integer}
    ```

    **Best practice**

    ```yaml
    # the old migration is untouched; `schemactl propose dynamic_schema/characters.yaml`
    # writes 0007_..._alter_table_characters_add_column_age.py on top of the chain
    table: characters
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: age, type: integer}
    ```
    """

    code = "SC601"
    name = "migration-edited"
    hint = ("restore the migration as the base branch has it (git checkout <base> -- <file>) "
            "and make the change in a new migration with `schemactl propose`")

    def check_repo(self, ctx: RepoContext) -> Iterator[Violation]:
        head = {name: (i, sha) for i, (name, sha) in enumerate(ctx.head_migrations)}
        for i, (name, sha) in enumerate(ctx.base_migrations):
            path = f"{VERSIONS}/{name}"
            if name not in head:
                yield self._at(f"migration {name} exists on the base branch and was removed",
                               path)
            elif head[name][1] != sha:
                yield self._at(f"migration {name} exists on the base branch and was edited",
                               path)
            elif head[name][0] != i:
                yield self._at(f"migration {name} moved from position {i + 1} to "
                               f"{head[name][0] + 1} of the revision chain", path)
        for problem in ctx.head_sum_problems:
            yield self._at(problem, "migrations/schemactl.sum",
                           hint="do not edit a recorded migration: propose a new one; if the "
                                "change is intended, rewrite the sum file "
                                "(schemactl.codegen.sumfile.write_sum)")

    def _at(self, message: str, source: str, hint: str | None = None) -> Violation:
        return Violation(rule=self.code, name=self.name, severity=self.severity,
                         message=message, hint=hint or self.hint, source=source, line=1)
