"""The SQLAlchemy options of a table's parts: foreign-key actions, CHECK constraints and
index keys and dialect options (method, opclass, WHERE, INCLUDE, WITH, expressions).

`schemactl.codegen.metadata` builds tables with them; the planner builds operations with
them, so a migration and the models an application loads say the same thing.
"""

from __future__ import annotations

from typing import Any

from schemactl.model.definitions import Column, Index, TableDef


def fk_kwargs(col: Column) -> dict[str, Any]:
    """``ondelete``/``onupdate`` of a column's foreign key (nothing for NO ACTION)."""
    return fk_action_kwargs(col.on_delete, col.on_update)


def fk_action_kwargs(on_delete: str | None, on_update: str | None) -> dict[str, Any]:
    """``ondelete``/``onupdate`` of a foreign key's actions (nothing for NO ACTION)."""
    from schemactl.codegen.expressions import FK_ACTION_SQL

    out: dict[str, Any] = {}
    if on_delete:
        out["ondelete"] = FK_ACTION_SQL[on_delete]
    if on_update:
        out["onupdate"] = FK_ACTION_SQL[on_update]
    return out


def check_constraints(tdef: TableDef, names: set[str] | None = None) -> list[Any]:
    """The CheckConstraints of a table: each column's ``check`` and the table's ``checks``."""
    import sqlalchemy as sa

    from schemactl.codegen.expressions import column_check_sql, table_check_sql
    from schemactl.model.naming import ck_name

    out = []
    for col in tdef.columns:
        sql = column_check_sql(col)
        if sql and (names is None or col.name in names):
            out.append(sa.CheckConstraint(sql, name=ck_name(tdef.table, col.name)))
    for chk in tdef.checks:
        if names is None or {chk.left, chk.right} <= names:
            out.append(sa.CheckConstraint(table_check_sql(chk), name=chk.check_name(tdef.table)))
    return out


def index_elements(idx: Index) -> list[Any]:
    """An index's keys for SQLAlchemy: column names, and ``sa.text`` for an expression."""
    import sqlalchemy as sa

    from schemactl.codegen.expressions import index_key_sql

    return [c if f is None else sa.text(index_key_sql(c, f)) for c, f in idx.keys]


def index_kwargs(idx: Index) -> dict[str, Any]:
    """The PostgreSQL dialect options of an index: method, opclass, WHERE, INCLUDE, WITH."""
    import sqlalchemy as sa

    from schemactl.codegen.expressions import predicate_sql

    kw: dict[str, Any] = {}
    if idx.using and idx.using != "btree":
        kw["postgresql_using"] = idx.using
    if idx.opclass:
        kw["postgresql_ops"] = {c: idx.opclass for c in idx.columns}
    where = predicate_sql(idx.where)
    if where:
        kw["postgresql_where"] = sa.text(where)
    if idx.include:
        kw["postgresql_include"] = list(idx.include)
    if idx.storage:
        kw["postgresql_with"] = dict(idx.storage)
    return kw
