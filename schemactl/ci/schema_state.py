"""The schema model `check` compares: a table's state from its definition or from recorded ops.

A state is a flat mapping per table (``column:<name>`` → (type SQL, nullable, default),
``fk:<column>`` (with its actions), ``unique:<column>``, ``index:<name>``, ``check:<name>``,
``generated:<column>``, ``comment``, ``pk``): equal states
mean the migrations reach exactly what the definitions describe (SC602, SC604).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from schemactl.codegen.expressions import (
    check_map,
    fingerprint,
    generated_sql,
    index_keys_sql,
    predicate_sql,
)
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
            s[f"fk:{c.name}"] = _fk_value(c.references, c.on_delete, c.on_update)
        _put(s, f"unique:{c.name}", c.unique and not c.primary_key)
        if c.generated is not None:
            s[f"generated:{c.name}"] = fingerprint(generated_sql(c.generated))
    for ref in tdef.references:
        s[f"fk:{','.join(ref.columns)}"] = _fk_value(f"{ref.to}.{','.join(ref.to_columns)}",
                                                     ref.on_delete, ref.on_update)
    for name, sql in check_map(tdef).items():
        s[f"check:{name}"] = fingerprint(sql)
    for i in tdef.indexes:
        s[f"index:{i.index_name(tdef.table)}"] = (i.unique, tuple(index_keys_sql(i)),
                                                  i.using or "btree", i.opclass,
                                                  fingerprint(predicate_sql(i.where)),
                                                  tuple(i.include), tuple(i.storage))
    return {k: v for k, v in s.items() if v is not None}


def _fk_value(ref: str, on_delete: str | None, on_update: str | None) -> str:
    """A foreign key in the model: ``table.column``, its actions appended when it has any."""
    return ref + (f" on_delete={on_delete or 'no_action'} on_update={on_update or 'no_action'}"
                  if on_delete or on_update else "")


_ACTION_WORDS = {"CASCADE": "cascade", "SET NULL": "set_null", "RESTRICT": "restrict"}


def _fk_value_sa(ref: str, ondelete: str | None, onupdate: str | None) -> str:
    return _fk_value(ref, _ACTION_WORDS.get((ondelete or "").upper()),
                     _ACTION_WORDS.get((onupdate or "").upper()))


def states_of(defs: Mapping[str, TableDef], tables: Iterable[str]) -> State:
    return {t: table_state(defs[t]) for t in tables if t in defs}


def _default_text(default: Any) -> str | None:
    if default is None:
        return None
    arg = getattr(default, "arg", default)
    return str(getattr(arg, "text", arg))


def _column_into(s: dict[str, Any], col: Any, table: str | None) -> None:
    nullable = bool(col.nullable) and not col.primary_key
    computed = getattr(col, "computed", None)
    # A Computed column's server_default is the Computed itself, not a default.
    default = None if computed is not None else _default_text(col.server_default)
    s[f"column:{col.name}"] = (_type_sql(col.type), nullable, default)
    _put(s, f"column_comment:{col.name}", col.comment)
    for fk in col.foreign_keys:
        if fk.constraint is not None and len(fk.constraint.elements) > 1:
            continue  # a composite key is the table's (CreateTableOp below)
        s[f"fk:{col.name}"] = _fk_value_sa(fk.target_fullname, fk.ondelete, fk.onupdate)
    if col.unique:
        s[f"unique:{col.name}"] = True
    if computed is not None:
        s[f"generated:{col.name}"] = fingerprint(str(computed.sqltext))


def _index_value(op: Any) -> tuple[Any, ...]:
    kw = op.kw or {}
    opclasses = list((kw.get("postgresql_ops") or {}).values())
    cols = tuple(str(c) if isinstance(c, str) else getattr(c, "name", str(c)) for c in op.columns)
    where = kw.get("postgresql_where")
    return (bool(op.unique), cols, kw.get("postgresql_using") or "btree",
            opclasses[0] if opclasses else None,
            fingerprint(str(getattr(where, "text", where)) if where is not None else None),
            tuple(kw.get("postgresql_include") or ()),
            tuple(sorted((kw.get("postgresql_with") or {}).items())))


def _constraint_key(s: Mapping[str, Any], table: str | None, name: str) -> str | None:
    from schemactl.model.naming import fk_name, uq_name

    if f"index:{name}" in s:
        return f"index:{name}"
    if f"check:{name}" in s:
        return f"check:{name}"
    for key, value in s.items():
        kind, _, col = key.partition(":")
        if kind == "fk":
            ref, _, actions = str(value).partition(" ")
            parts = dict(a.split("=") for a in actions.split()) if actions else {}
            acts = [None if parts.get(k, "no_action") == "no_action" else parts[k]
                    for k in ("on_delete", "on_update")]
            if fk_name(table or "", col.replace(",", "_"), ref.split(".")[0], *acts) == name:
                return key
        if kind == "unique" and uq_name(table or "", col) == name:
            return key
    return None


def _rename_columns_into(s: dict[str, Any], spec: Mapping[str, Any]) -> None:
    """Columns renamed in the catalog (codegen.online_table): every key naming them follows,
    as do the renamed indexes and checks (their new SQL comes with the spec)."""
    import re

    cols = {str(o): str(n) for o, n in spec["columns"]}
    names = {str(o): str(n) for _k, o, n in spec["names"]}

    def sub(text: str) -> str:
        return re.sub(r"[a-z_][a-z0-9_]*", lambda m: cols.get(m.group(0), m.group(0)), text)

    for key in list(s):
        kind, _, rest = key.partition(":")
        value = s.pop(key)
        if kind in ("column", "column_comment", "fk", "unique", "generated"):
            s[f"{kind}:{','.join(cols.get(c, c) for c in rest.split(','))}"] = value
        elif kind == "index":
            unique, keys, using, opclass, where, include, storage = value
            new = names.get(rest, rest)
            if new in spec["where"]:
                where = fingerprint(spec["where"][new])
            s[f"index:{new}"] = (unique, tuple(sub(k) for k in keys), using, opclass, where,
                                 tuple(cols.get(c, c) for c in include), storage)
        elif kind == "check":
            new = names.get(rest, rest)
            s[f"check:{new}"] = fingerprint(spec["checks"][new]) if new in spec["checks"] \
                else value
        elif key == "pk" and value:
            s[key] = tuple(cols.get(c, c) for c in value)
        else:
            s[key] = value


def _retarget_keys(state: State, old: str, new: str) -> None:
    """Foreign keys to table ``old`` point at ``new`` once it is renamed (at the table, not
    at a name): its own and every other table's."""
    for s in state.values():
        for key, value in s.items():
            if key.startswith("fk:") and isinstance(value, str) and value.startswith(old + "."):
                s[key] = new + value[len(old):]


def apply_ops(state: State, ops: Iterable[Any], migration: str,
              opaque: list[tuple[str, str]], touched: dict[str, str]) -> None:
    """Apply recorded Alembic operations to a schema model, in place.

    Operations the model cannot follow (raw SQL, renames, ...) are added to ``opaque``.
    """
    for op in ops:
        kind = type(op).__name__
        # Most operations name their table ``table_name``; a foreign key, ``source_table``.
        table = getattr(op, "table_name", None) or getattr(op, "source_table", None)
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
                elems = list(fkc.elements)
                s[f"fk:{','.join(e.parent.name for e in elems)}"] = _fk_value_sa(
                    elems[0].target_fullname.rsplit(".", 1)[0] + "."
                    + ",".join(e.target_fullname.rsplit(".", 1)[1] for e in elems),
                    fkc.ondelete, fkc.onupdate)
            for con in t.constraints:
                if type(con).__name__ == "UniqueConstraint" and len(con.columns) == 1:
                    s[f"unique:{next(iter(con.columns)).name}"] = True
                if type(con).__name__ == "CheckConstraint" and con.name:
                    s[f"check:{con.name}"] = fingerprint(str(con.sqltext))
        elif kind == "DropTableOp":
            s.clear()
        elif kind == "AddColumnOp":
            _column_into(s, op.column, table)
        elif kind == "DropColumnOp":
            for key in [k for k in s if op.column_name in k.partition(":")[2].split(",")
                        and k.partition(":")[0] in ("column", "column_comment", "fk", "unique",
                                                    "generated")]:
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
            s[f"fk:{','.join(op.local_cols)}"] = _fk_value_sa(
                f"{op.referent_table}.{','.join(op.remote_cols)}", op.kw.get("ondelete"),
                op.kw.get("onupdate"))
        elif kind == "CreateCheckConstraintOp":
            cond = op.condition
            s[f"check:{op.constraint_name}"] = fingerprint(str(getattr(cond, "text", cond)))
        elif kind == "DropConstraintOp" and op.info.get("replaced_by"):
            pass  # its replacement (added above, same column) is what the model holds
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
            if spec["old"] != spec["new"] and spec.get("indexes"):  # they follow the column
                _rename_columns_into(s, {"columns": [[spec["old"], spec["new"]]], "checks": {},
                                         "where": {}, "names": [
                                             ["index", ix["old_name"], ix["name"]]
                                             for ix in spec["indexes"]]})
            for key in [k for k in s if k.partition(":")[2] == spec["old"]
                        and k.partition(":")[0] in ("column", "column_comment")]:
                del s[key]
            s[f"column:{spec['new']}"] = (_def_type_sql(spec["new_type"]),
                                          not spec["not_null"], spec["default"])
            _put(s, f"column_comment:{spec['new']}", spec["comment"])
        elif kind == "OnlineTableSpec":  # a table rename or its contract (codegen.online_table)
            if op.kind == "rename":
                renamed = {f"index:{old}": f"index:{new}" for _k, old, new in op.spec["names"]}
                renamed |= {f"check:{old}": f"check:{new}" for _k, old, new in op.spec["names"]}
                moved = {renamed.get(k, k): v for k, v in state.pop(str(table), {}).items()}
                state[str(op.spec["new"])] = moved
                _retarget_keys(state, str(table), str(op.spec["new"]))
                touched.setdefault(str(op.spec["new"]), migration)
                continue
            if op.kind == "rename_columns":
                _rename_columns_into(s, op.spec)
        elif kind == "ExecuteSQLOp":
            opaque.append((migration, f"runs SQL: {' '.join(str(op.sqltext).split())[:120]}"))
        else:
            opaque.append((migration, f"{kind} on {table or '?'}"))
        if table is not None and not s:
            state.pop(table, None)
