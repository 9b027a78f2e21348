"""SC503 fk-not-valid."""

from __future__ import annotations

from collections.abc import Iterator

from .base import Rule, RuleContext
from .violation import Violation

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from .ops_context import OpsContext


class FkNotValid(Rule):
    """A foreign key or CHECK added to an existing table without NOT VALID and a later VALIDATE.

    ``ADD FOREIGN KEY`` checks every existing row while holding locks on both
    tables. ``NOT VALID`` adds the constraint at once (new rows are checked);
    ``VALIDATE CONSTRAINT`` then checks old rows under a weaker lock. In a
    definition, a new ``references`` is fine: the generated migration must
    use this two-step form, which this rule checks on its operations. The
    same holds for a ``check`` or ``checks`` entry added to an existing table.

    **Anti-pattern**

    ```yaml
    # a migration that runs op.create_foreign_key(None, "notes", "projects",
    #   ["project_id"], ["id"]) for this change on the existing table notes
    table: notes
    columns:
      - {name: project_id, type: uuid, references: projects.id}
    ```

    **Best practice**

    ```yaml
    # the same definition; the migration passes postgresql_not_valid=True, then runs
    #   ALTER TABLE notes VALIDATE CONSTRAINT fk_notes_project_id_projects
    table: notes
    columns:
      - {name: project_id, type: uuid, references: projects.id}
    ```
    """

    code = "SC503"
    name = "fk-not-valid"
    hint = ("create the foreign key with postgresql_not_valid=True, then VALIDATE CONSTRAINT in "
            "a later statement, as schemactl's generated migrations do")

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        # The definition states the reference; the two-step form is the migration's job.
        return iter(())

    def check_ops(self, ctx: OpsContext) -> Iterator[Violation]:
        for item in ctx.of_kind("CreateForeignKeyOp"):
            if ctx.is_existing(item.table) and not item.op.kw.get("postgresql_not_valid"):
                yield self.violation(f"the migration adds foreign key {item.op.constraint_name} "
                                     f"to the existing table {item.table} without NOT VALID",
                                     table=item.table)
        for item in ctx.of_kind("CreateCheckConstraintOp"):
            if ctx.is_existing(item.table) and not item.op.kw.get("postgresql_not_valid"):
                yield self.violation(f"the migration adds check {item.op.constraint_name} "
                                     f"to the existing table {item.table} without NOT VALID",
                                     table=item.table,
                                     hint="add the check with postgresql_not_valid=True, then "
                                          "VALIDATE CONSTRAINT outside the transaction")
