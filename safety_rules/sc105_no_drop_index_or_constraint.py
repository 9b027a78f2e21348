"""SC105 no-drop-index-or-constraint."""

from __future__ import annotations

import json
from collections.abc import Iterator

from schemactl.model.definitions import Index, TableDef
from schemactl.model.online import rename_columns, retarget

from .base import Rule, RuleContext
from .violation import Violation

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from .ops_context import OpsContext


class NoDropIndexOrConstraint(Rule):
    """Removing an index, a unique constraint or a foreign key from an existing table.

    Dropping an index can turn fast queries into full scans in production;
    dropping a unique or foreign key constraint lets bad rows in that cannot be
    taken back out. Keep them; add new ones beside them.

    **Anti-pattern**

    ```yaml
    # before: indexes: [{columns: [name], unique: true}] and project_id references projects.id
    table: characters
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: name, type: varchar(200)}
      - {name: project_id, type: uuid}
    ```

    **Best practice**

    ```yaml
    table: characters
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: name, type: varchar(200)}
      - {name: project_id, type: uuid, references: projects.id}
    indexes:
      - {columns: [name], unique: true}
    ```
    """

    code = "SC105"
    name = "no-drop-index-or-constraint"
    hint = ("keep the index or constraint in the definition; if it must go, have a person "
            "drop it in a reviewed migration (waive with a reason)")

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        for ch in ctx.changes:
            if ch.before is None or ch.after is None:
                continue
            # Keys to a table renamed online follow it (a key points at the table, not a name).
            before = retarget(ch.before, ctx.renamed_tables)
            after = {_key(ch.name, i) for i in ch.after.indexes}
            # A marked column rename carries its indexes along (renamed with the column).
            renames = {o.name: n.name for o, n in ch.kept_columns() if o.name != n.name}
            for idx in rename_columns(before, renames).indexes:
                key = _key(ch.name, idx)
                if key not in after:
                    yield self.violation(f"index {key[0]} on {ch.name}({', '.join(idx.columns)}) "
                                         "is removed or changed", table=ch.name, tdef=ch.after)
            kept = {r.identity for r in ch.after.references}
            for ref in before.references:
                # Changed actions are a lock-safe replacement; other changes are a removal.
                if ref.identity not in kept:
                    yield self.violation(f"the foreign key {ch.name}({', '.join(ref.columns)}) "
                                         f"→ {ref.to}({', '.join(ref.to_columns)}) is removed "
                                         "or changed", table=ch.name, column=ref.columns[0],
                                         tdef=ch.after)
            for old, new in ch.kept_columns():
                if old.unique and not new.unique and not new.primary_key:
                    yield self.violation(f"the unique constraint on {ch.name}.{old.name} is "
                                         "removed", table=ch.name, column=old.name, tdef=ch.after)
                target = _before_ref(before, old.name)
                if target and target != new.references:
                    yield self.violation(f"the foreign key {ch.name}.{old.name} → "
                                         f"{target} is removed or changed",
                                         table=ch.name, column=old.name, tdef=ch.after)

    def check_ops(self, ctx: OpsContext) -> Iterator[Violation]:
        for item in ctx.of_kind("DropIndexOp"):
            yield self.violation(f"the migration drops index {item.op.index_name}",
                                 table=item.table)
        for item in ctx.of_kind("DropConstraintOp"):
            # A replaced constraint (a foreign key whose actions change, a changed check) or
            # a removed check (loosening loses nothing) is not a removal.
            if item.op.info.get("replaced_by") or item.op.constraint_type == "check":
                continue
            if item.op.constraint_type != "primary":
                yield self.violation(f"the migration drops constraint {item.op.constraint_name} "
                                     f"on {item.table}", table=item.table)


def _key(table: str, idx: Index) -> tuple[str, str]:
    return idx.index_name(table), json.dumps(idx.to_dict(), sort_keys=True)


def _before_ref(before: TableDef, column: str) -> str | None:
    """What ``column`` of ``before`` references (None: nothing)."""
    col = before.column(column)
    return col.references if col is not None else None
