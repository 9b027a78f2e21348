"""SC501 core-protected."""

from __future__ import annotations

from collections.abc import Iterator

from schemactl.model.definitions import TableDef
from schemactl.model.naming import DYNAMIC_SCHEMA

from .base import Rule, RuleContext
from .core_tables import PROTECTED_PREFIXES, PROTECTED_TABLES, SYSTEM_SCHEMAS
from .violation import Violation

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from schemactl.model.constraints import TableReference

    from .ops_context import OpsContext


class CoreProtected(Rule):
    """Creating, altering or shadowing a core table, or touching another schema.

    The core tables (conversations, langgraph_checkpoints, agents, tools,
    audit_log) belong to people and their own migrations; a dynamic definition
    may reference them but never redefine them. Names are never
    schema-qualified: ``public.x``, ``pg_catalog.x`` or a reference into the
    archive schema reach outside the dynamic schema. A reference to a core
    table may not use ``on_delete: cascade``: a core row's deletion would reach
    into the dynamic tables. The same holds for a table's composite ``references``.

    **Anti-pattern**

    ```yaml
    table: audit_log
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: agent_id, type: uuid, references: pg_catalog.pg_class.oid}
    ```

    **Best practice**

    ```yaml
    table: agent_notes
    columns:
      - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
      - {name: agent_id, type: uuid, references: agents.id}
    ```
    """

    code = "SC501"
    name = "core-protected"
    hint = ("pick a table name of your own, unqualified; reference core tables as "
            "table.column; core tables change only through reviewed core migrations")

    def _table_problem(self, name: str, core: object) -> str | None:
        if "." in name:
            return f"table name {name!r} is schema-qualified"
        if name in core or name in PROTECTED_TABLES:  # type: ignore[operator]
            return f"table {name} is a protected core table"
        if name.startswith(PROTECTED_PREFIXES):
            return f"table name {name} uses a reserved prefix ({', '.join(PROTECTED_PREFIXES)})"
        return None

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        for ch in ctx.changes:
            tdef = ch.after or ch.before
            assert tdef is not None
            problem = self._table_problem(ch.name, ctx.core)
            if problem:
                yield self.violation(f"{problem}: a dynamic definition may not create, alter or "
                                     "shadow it", table=ch.name, tdef=tdef)
            if ch.after is None:
                continue
            if ch.after.renamed_from and self._table_problem(ch.after.renamed_from, ctx.core):
                yield self.violation(f"table {ch.name} is renamed_from "
                                     f"{ch.after.renamed_from}: a core table is never renamed",
                                     table=ch.name, tdef=ch.after,
                                     hint="drop `renamed_from`; core tables belong to the "
                                          "application (core_schema/)")
            for ref in ch.after.references:
                yield from self._table_reference(ctx, ch.name, tdef, ref)
            for col in ch.after.columns:
                if not col.references:
                    continue
                parts = col.references.split(".")
                if len(parts) > 2:
                    yield self.violation(f"{ch.name}.{col.name} references {col.references!r}, "
                                         "a schema-qualified name", table=ch.name,
                                         column=col.name, tdef=tdef)
                elif parts[0] in SYSTEM_SCHEMAS or parts[0].startswith(PROTECTED_PREFIXES):
                    yield self.violation(f"{ch.name}.{col.name} references {col.references!r}, "
                                         "outside the dynamic tables", table=ch.name,
                                         column=col.name, tdef=tdef)
                elif parts[0] in ctx.core and col.on_delete == "cascade":
                    yield self.violation(
                        f"{ch.name}.{col.name} references the core table {parts[0]} with "
                        "on_delete: cascade: deleting a core row would delete dynamic rows",
                        table=ch.name, column=col.name, tdef=tdef,
                        hint="use on_delete: set_null or restrict (or leave the default) "
                             "towards a core table")

    def _table_reference(self, ctx: RuleContext, table: str, tdef: TableDef,
                         ref: TableReference) -> Iterator[Violation]:
        """A composite reference: into the dynamic tables, never cascading from a core one."""
        col = ref.columns[0]
        schema = ref.to.split(".")[0]
        if "." in ref.to or schema in SYSTEM_SCHEMAS or schema.startswith(PROTECTED_PREFIXES):
            yield self.violation(f"{table}({', '.join(ref.columns)}) references {ref.to!r}, "
                                 "outside the dynamic tables", table=table, column=col,
                                 tdef=tdef)
        elif ref.to in ctx.core and ref.on_delete == "cascade":
            yield self.violation(
                f"{table}({', '.join(ref.columns)}) references the core table {ref.to} with "
                "on_delete: cascade: deleting a core row would delete dynamic rows",
                table=table, column=col, tdef=tdef,
                hint="use on_delete: set_null or restrict (or leave the default) towards a "
                     "core table")

    def check_ops(self, ctx: OpsContext) -> Iterator[Violation]:
        allowed_schemas = {None, DYNAMIC_SCHEMA}
        for item in ctx.items:
            if item.schema not in allowed_schemas:
                yield self.violation(f"{item.kind} on {item.schema}.{item.table} touches a schema "
                                     "other than the dynamic one", table=item.table)
                continue
            if item.table is not None and self._table_problem(item.table, ctx.core):
                yield self.violation(f"{item.kind} touches the protected table {item.table}",
                                     table=item.table)
            renamed_to = getattr(item.op, "new_table_name", None)  # a table renamed
            if isinstance(renamed_to, str) and self._table_problem(renamed_to, ctx.core):
                yield self.violation(f"{item.kind} renames {item.table} to the protected "
                                     f"table {renamed_to}", table=renamed_to)
            referent_schema = getattr(item.op, "referent_schema", None)
            if item.kind == "CreateForeignKeyOp" and referent_schema not in allowed_schemas:
                yield self.violation(f"a foreign key of {item.table} points into schema "
                                     f"{referent_schema}", table=item.table)
