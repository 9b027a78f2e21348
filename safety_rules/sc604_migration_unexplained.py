"""SC604 migration-unexplained."""

from __future__ import annotations

from collections.abc import Iterator

from .base import Rule
from .violation import Violation

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from .repo_context import RepoContext


class MigrationUnexplained(Rule):
    """A migration changes the schema where no definition changed.

    The definitions are the record of what the dynamic schema should be; a migration
    that adds an index, alters a column or runs SQL behind their back makes every
    database differ from git, and the next ``apply`` reports drift. Operations
    ``schemactl check`` cannot follow (raw SQL, renames) are reported too: say in the
    definition what the migration does, or waive the finding with a reason.

    **Anti-pattern**

    ```yaml
    # definition unchanged, but a hand-written migration runs
    # op.add_column("notes", sa.Column("pinned", sa.Boolean()))
    table: notes
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
    ```

    **Best practice**

    ```yaml
    # the column is added to the definition and proposed: definition and migration agree
    table: notes
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: pinned, type: boolean}
    ```
    """

    code = "SC604"
    name = "migration-unexplained"
    hint = ("add the change to the definition and let `schemactl propose` write the migration, "
            "or remove the operation from the migration")

    def check_repo(self, ctx: RepoContext) -> Iterator[Violation]:
        from .repo_context import describe_key

        for table in ctx.tables:
            head = ctx.head_state.get(table, {})
            base = ctx.base_state.get(table, {})
            mig = ctx.migrated_state.get(table, {})
            source = ctx.touched_by.get(table)
            if mig and not base and not head:
                yield self._at(f"a migration creates table {table}, which no definition "
                               "describes", table, None, source)
                continue
            seen: set[str | None] = set()
            for key in sorted(set(mig) | set(base)):
                if head.get(key) != base.get(key) or mig.get(key) == base.get(key):
                    continue
                what, column = describe_key(table, key)
                if column in seen and column is not None:
                    continue
                seen.add(column)
                yield self._at(f"a migration changes {what}, which no definition change "
                               "explains", table, column, source)
        for source, what in ctx.opaque:
            yield self._at(f"{source.rsplit('/', 1)[-1]} {what}", None, None, source)

    def _at(self, message: str, table: str | None, column: str | None,
            source: str | None) -> Violation:
        return Violation(rule=self.code, name=self.name, severity=self.severity,
                         message=message, hint=self.hint, table=table, column=column,
                         source=source, line=None)
