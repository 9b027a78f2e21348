"""SC602 migration-missing."""

from __future__ import annotations

from collections.abc import Iterator

from .base import Rule
from .violation import Violation

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from .repo_context import RepoContext


class MigrationMissing(Rule):
    """A definition changed but no migration on the branch makes that change.

    The definitions are the desired state; only migrations change a database. A
    definition edited by hand (or a migration deleted from the proposal) leaves every
    database behind git, and the next ``apply`` reports drift. ``schemactl check``
    applies the branch's migrations to a model of the base schema and compares the
    result with the definitions: each difference the definitions ask for and the
    migrations do not reach (or reach differently) is reported.

    **Anti-pattern**

    ```yaml
    # dynamic_schema/notes.yaml edited and committed by hand: no migration adds `pinned`
    table: notes
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: pinned, type: boolean}
    ```

    **Best practice**

    ```yaml
    # `schemactl propose dynamic_schema/notes.yaml` commits the definition with its migration
    table: notes
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: pinned, type: boolean}
    ```
    """

    code = "SC602"
    name = "migration-missing"
    hint = ("run `schemactl propose dynamic_schema/<table>.yaml` (after restoring the base's "
            "definition in the work tree if needed): it writes the migration with the definition")

    def check_repo(self, ctx: RepoContext) -> Iterator[Violation]:
        from .repo_context import describe_key

        for table in ctx.tables:
            head = ctx.head_state.get(table, {})
            if not head:
                continue  # a removed table is SC101's finding
            base = ctx.base_state.get(table, {})
            mig = ctx.migrated_state.get(table, {})
            tdef = ctx.head_defs.get(table)
            if not mig and not base:
                yield self.violation(f"no migration creates table {table}", table=table,
                                     tdef=tdef)
                continue
            seen: set[str | None] = set()
            for key in sorted(head):
                want = head[key]
                if want == base.get(key) or mig.get(key) == want:
                    continue
                what, column = describe_key(table, key)
                if column in seen and column is not None:
                    continue
                seen.add(column)
                how = "does not make" if mig.get(key) == base.get(key) else "makes differently"
                yield self.violation(f"the definition changes {what}, which the branch's "
                                     f"migrations {how}", table=table, column=column, tdef=tdef)
