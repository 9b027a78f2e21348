"""The migration source of constraint operations on an existing table: foreign keys (with
their actions), CHECK constraints and the lock-safe replacement of either.

- a foreign key or check is added NOT VALID in the transaction and validated outside it;
- a new check first has the existing rows checked (``_check_rows``, before any DDL takes a
  lock): violating rows stop the migration before anything is committed, named by key;
- a changed check replaces the old one in the same short transaction (the rows are checked
  first); a foreign key whose actions change gets a new constraint NOT VALID + VALIDATE and
  the old one is dropped afterwards in a short transaction (``_drop_replaced_constraint``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemactl.codegen.pysource import call_src, py
from schemactl.codegen.sqltext import quote_ident
from schemactl.model.constraints import TableReference
from schemactl.model.definitions import Column


@dataclass
class ConstraintSource:
    """Lines for each part of a migration, and the helpers they call."""

    pre: list[str] = field(default_factory=list)     # first in the transaction
    tx: list[str] = field(default_factory=list)      # in the transaction
    auto: list[str] = field(default_factory=list)    # in the autocommit block
    after: list[str] = field(default_factory=list)   # in a transaction after the block
    down: list[str] = field(default_factory=list)    # prepended to downgrade()
    helpers: set[str] = field(default_factory=set)


def _actions(col: Column | TableReference) -> list[str]:
    return [f"{k}={py(v)}" for k, v in (("on_delete", col.on_delete),
                                        ("on_update", col.on_update)) if v]


def _validate(table: str, name: str) -> str:
    sql = f"ALTER TABLE public.{quote_ident(table)} VALIDATE CONSTRAINT {quote_ident(name)}"
    return f"op.execute({py(sql)})"


def constraint_source(sub: Any, table: str) -> ConstraintSource | None:
    """The source of one constraint operation, or None when ``sub`` is not one."""
    from alembic.operations import ops

    out = ConstraintSource()
    if isinstance(sub, ops.CreateForeignKeyOp):
        name = str(sub.constraint_name)
        col: Column | TableReference = sub.info["column"]
        if isinstance(col, TableReference):  # over several columns
            out.tx += call_src("_add_composite_foreign_key_not_valid",
                               [py(name), py(table), py(list(col.columns)), py(col.to),
                                py(list(col.to_columns)), *_actions(col)])
            out.helpers |= {"lit", "fk_composite"}
        else:
            out.tx += call_src("_add_foreign_key_not_valid",
                               [py(name), py(table), py(sub.local_cols[0]),
                                py(sub.referent_table), py(sub.remote_cols[0]), *_actions(col)])
            out.helpers |= {"lit", "fk"}
        out.auto.append(_validate(table, name))
        out.down += call_src("op.drop_constraint", [py(name), py(table), "type_='foreignkey'",
                                                    "if_exists=True"])
    elif isinstance(sub, ops.CreateCheckConstraintOp):
        name, sql, old_sql = str(sub.constraint_name), sub.info["sql"], sub.info["old_sql"]
        if sub.info["precheck"]:
            out.pre += call_src("_check_rows", [py(name), py(table), py(sql),
                                                py(list(sub.info["key_columns"]))])
        out.tx += call_src("_add_check_not_valid", [py(name), py(table), py(sql)] + (
            ["replace=True"] if old_sql else []))
        out.auto.append(_validate(table, name))
        out.down += (call_src("_add_check_not_valid", [py(name), py(table), py(old_sql),
                                                       "replace=True"]) if old_sql else
                     call_src("op.drop_constraint", [py(name), py(table), "type_='check'",
                                                     "if_exists=True"]))
        out.helpers |= {"check"}
    elif isinstance(sub, ops.DropConstraintOp) and sub.constraint_type == "check":
        name = str(sub.constraint_name)
        out.tx += call_src("op.drop_constraint", [py(name), py(table), "type_='check'",
                                                  "if_exists=True"])
        out.down += call_src("_add_check_not_valid", [py(name), py(table),
                                                      py(sub.info["old_sql"])])
        out.helpers |= {"check"}
    elif isinstance(sub, ops.DropConstraintOp) and sub.info.get("replaced_by"):
        name = str(sub.constraint_name)
        old: Column | TableReference = sub.info["old_column"]
        out.after += call_src("_drop_replaced_constraint",
                              [py(name), py(table), py(sub.info["replaced_by"])])
        if isinstance(old, TableReference):
            out.down += call_src("_add_composite_foreign_key_not_valid",
                                 [py(name), py(table), py(list(old.columns)), py(old.to),
                                  py(list(old.to_columns)), *_actions(old)])
            out.helpers |= {"lit", "fk_composite", "replaced"}
        else:
            out.down += call_src("_add_foreign_key_not_valid",
                                 [py(name), py(table), py(old.name), py(old.ref_table),
                                  py(old.ref_column), *_actions(old)])
            out.helpers |= {"lit", "fk", "replaced"}
    else:
        return None
    return out
