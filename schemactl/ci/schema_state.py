"""The schema model `check` compares: a table's state from its definition or from recorded ops.

A state is a flat mapping per table (``column:<name>`` → (type SQL, nullable, default),
``fk:<column>``, ``unique:<column>``, ``index:<name>``, ``comment``, ``pk``): equal states
mean the migrations reach exactly what the definitions describe (SC602, SC604).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from schemactl.model.definitions import TableDef

State = dict[str, dict[str, Any]]


def _type_sql(type_: Any) -> str:
    from sqlalchemy.dialects import postgresql

    try:
        return str(type_.compile(dialect=postgresql.dialect())).upper()  # type: ignore[no-untyped-call]
    except Exception:  # noqa: BLE001 - an uncompilable type is compared by its name
        return str(type_).upper()


def _def_type_sql(text: str) -> str:
    from schemactl.codegen.metadata import sa_type
    from schemactl.errors import SchemactlError

    try:
        return _type_sql(sa_type(text))
    except SchemactlError:  # outside the whitelist: SC403 reports it
        return text.upper()


def _put(state: dict[str, Any], key: str, value: Any) -> None:
    if value is None or value is False:
        state.pop(key, None)
    else:
        state[key] = value


def table_state(tdef: TableDef) -> dict[str, Any]:
    """The model of a table as its definition describes it (what a migration must reach)."""
    from schemactl.codegen.metadata import default_sql, effective_comment

    s: dict[str, Any] = {"table": True, "pk": tdef.primary_key or None}
    _put(s, "comment", effective_comment(tdef.comment, tdef.deprecated))
    for c in tdef.columns:
        s[f"column:{c.name}"] = (_def_type_sql(c.type), c.nullable and not c.primary_key,
                                 default_sql(c))
        _put(s, f"column_comment:{c.name}", effective_comment(c.comment, c.deprecated))
        if c.references and c.ref_column:
            s[f"fk:{c.name}"] = c.references
        _put(s, f"unique:{c.name}", c.unique and not c.primary_key)
    for i in tdef.indexes:
        s[f"index:{i.index_name(tdef.table)}"] = (i.unique, tuple(i.columns),
                                                  i.using or "btree", i.opclass)
    return {k: v for k, v in s.items() if v is not None}


def states_of(defs: Mapping[str, TableDef], tables: Iterable[str]) -> State:
    return {t: table_state(defs[t]) for t in tables if t in defs}


def _default_text(default: Any) -> str | None:
    if default is None:
        return None
    arg = getattr(default, "arg", default)
    return str(getattr(arg, "text", arg))


def _column_into(s: dict[str, Any], col: Any, table: str | None) -> None:
    nullable = bool(col.nullable) and not col.primary_key
    s[f"column:{col.name}"] = (_type_sql(col.type), nullable, _default_text(col.server_default))
    _put(s, f"column_comment:{col.name}", col.comment)
    for fk in col.foreign_keys:
        s[f"fk:{col.name}"] = fk.target_fullname
    if col.unique:
        s[f"unique:{col.name}"] = True


def _index_value(op: Any) -> tuple[Any, ...]:
    kw = op.kw or {}
    opclasses = list((kw.get("postgresql_ops") or {}).values())
    cols = tuple(str(c) if isinstance(c, str) else getattr(c, "name", str(c)) for c in op.columns)
    return (bool(op.unique), cols, kw.get("postgresql_using") or "btree",
            opclasses[0] if opclasses else None)


def _constraint_key(s: Mapping[str, Any], table: str | None, name: str) -> str | None:
    from schemactl.model.naming import fk_name, uq_name

    if f"index:{name}" in s:
        return f"index:{name}"
    for key, value in s.items():
        kind, _, col = key.partition(":")
        if kind == "fk" and fk_name(table or "", col, str(value).split(".")[0]) == name:
            return key
        if kind == "unique" and uq_name(table or "", col) == name:
            return key
    return None


def apply_ops(state: State, ops: Iterable[Any], migration: str,
              opaque: list[tuple[str, str]], touched: dict[str, str]) -> None:
    """Apply recorded Alembic operations to a schema model, in place.

    Operations the model cannot follow (raw SQL, renames, ...) are added to ``opaque``.
    """
    for op in ops:
        kind = type(op).__name__
        table = getattr(op, "table_name", None)
        if table is not None:
            touched.setdefault(table, migration)
        s = state.setdefault(table, {}) if table is not None else {}
        if kind == "CreateTableOp":
            t = op.to_table()
            s.clear()
            s["table"] = True
            _put(s, "comment", t.comment)
            for col in t.columns:
                _column_into(s, col, table)
            pk = tuple(c.name for c in t.primary_key.columns)
            _put(s, "pk", pk or None)
            for fkc in t.foreign_key_constraints:
                for elem in fkc.elements:
                    s[f"fk:{elem.parent.name}"] = elem.target_fullname
            for con in t.constraints:
                if type(con).__name__ == "UniqueConstraint" and len(con.columns) == 1:
                    s[f"unique:{next(iter(con.columns)).name}"] = True
        elif kind == "DropTableOp":
            s.clear()
        elif kind == "AddColumnOp":
            _column_into(s, op.column, table)
        elif kind == "DropColumnOp":
            for key in [k for k in s if k.partition(":")[2] == op.column_name
                        and k.partition(":")[0] in ("column", "column_comment", "fk", "unique")]:
                del s[key]
        elif kind == "AlterColumnOp":
            key = f"column:{op.column_name}"
            type_sql, nullable, default = s.get(key, (None, True, None))
            if op.modify_type is not None:
                type_sql = _type_sql(op.modify_type)
            if op.modify_nullable is not None:
                nullable = bool(op.modify_nullable)
            if op.modify_server_default is not False:
                default = _default_text(op.modify_server_default)
            s[key] = (type_sql, nullable, default)
            if op.modify_comment is not False:
                _put(s, f"column_comment:{op.column_name}", op.modify_comment)
        elif kind == "CreateIndexOp":
            s[f"index:{op.index_name}"] = _index_value(op)
            if op.info.get("attach_constraint") and len(op.columns) == 1:
                s.pop(f"index:{op.index_name}", None)
                s[f"unique:{_index_value(op)[1][0]}"] = True
        elif kind == "DropIndexOp":
            s.pop(f"index:{op.index_name}", None)
        elif kind == "CreateForeignKeyOp":
            s[f"fk:{op.local_cols[0]}"] = f"{op.referent_table}.{op.remote_cols[0]}"
        elif kind == "CreateUniqueConstraintOp" and len(op.columns) == 1:
            s[f"unique:{op.columns[0]}"] = True
        elif kind == "DropConstraintOp":
            found = _constraint_key(s, table, str(op.constraint_name))
            if found:
                del s[found]
        elif kind == "CreateTableCommentOp":
            _put(s, "comment", op.comment)
        elif kind == "DropTableCommentOp":
            s.pop("comment", None)
        elif kind == "OnlineColumnSpec":  # expand, backfill, contract (codegen.online)
            spec = op.spec
            for key in [k for k in s if k.partition(":")[2] == spec["old"]
                        and k.partition(":")[0] in ("column", "column_comment")]:
                del s[key]
            s[f"column:{spec['new']}"] = (_def_type_sql(spec["new_type"]),
                                          not spec["not_null"], spec["default"])
            _put(s, f"column_comment:{spec['new']}", spec["comment"])
        elif kind == "ExecuteSQLOp":
            opaque.append((migration, f"runs SQL: {' '.join(str(op.sqltext).split())[:120]}"))
        else:
            opaque.append((migration, f"{kind} on {table or '?'}"))
        if table is not None and not s:
            state.pop(table, None)
