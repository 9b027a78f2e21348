"""SC502 concurrent-index."""

from __future__ import annotations

from collections.abc import Iterator

from .base import Rule, RuleContext
from .violation import Violation

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from .ops_context import OpsContext


class ConcurrentIndex(Rule):
    """An index on an existing table created without CONCURRENTLY.

    ``CREATE INDEX`` blocks every write to the table until the index is built.
    In a definition, adding an index is fine: the generated migration must
    build it with ``CREATE INDEX CONCURRENTLY`` outside the transaction, and
    this rule checks exactly that on the migration's operations.

    **Anti-pattern**

    ```yaml
    # a migration that runs op.create_index("ix_notes_title", "notes", ["title"])
    # for this definition change on the existing table notes
    table: notes
    columns:
      - {name: title, type: text}
    indexes:
      - {columns: [title]}
    ```

    **Best practice**

    ```yaml
    # the same definition; the migration runs, inside op.get_context().autocommit_block():
    #   op.create_index("ix_notes_title", "notes", ["title"], postgresql_concurrently=True)
    table: notes
    columns:
      - {name: title, type: text}
    indexes:
      - {columns: [title]}
    ```
    """

    code = "SC502"
    name = "concurrent-index"
    hint = ("create the index with postgresql_concurrently=True inside an autocommit block "
            "(CREATE INDEX CONCURRENTLY), as schemactl's generated migrations do")

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        # A definition only states that the index exists; how it is built is the
        # migration's business, checked by check_ops.
        return iter(())

    def check_ops(self, ctx: OpsContext) -> Iterator[Violation]:
        for item in ctx.of_kind("CreateIndexOp"):
            if ctx.is_existing(item.table) and not item.op.kw.get("postgresql_concurrently"):
                yield self.violation(f"the migration creates index {item.op.index_name} on the "
                                     f"existing table {item.table} without CONCURRENTLY",
                                     table=item.table)
        for item in ctx.of_kind("CreateUniqueConstraintOp"):
            if ctx.is_existing(item.table):
                yield self.violation(
                    f"the migration adds unique constraint {item.op.constraint_name} to the "
                    f"existing table {item.table}, building its index under a write lock",
                    table=item.table,
                    hint="create a unique index CONCURRENTLY, then ADD CONSTRAINT ... USING "
                         "INDEX")
