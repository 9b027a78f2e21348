"""The Python source of Alembic operations, as `schemactl propose` writes them into a migration."""

from __future__ import annotations

import re
from typing import Any

from schemactl.codegen.expressions import check_map, generated_sql, predicate_sql
from schemactl.codegen.metadata import default_sql, effective_comment, type_source
from schemactl.codegen.table_parts import fk_action_kwargs, fk_kwargs
from schemactl.model.definitions import Column, Index, TableDef
from schemactl.model.naming import fk_name, pk_name, uq_name

INDENT = "    "


def py(value: Any) -> str:
    """Python literal (repr is deterministic and escapes everything)."""
    return repr(value)


def text_src(sql: str) -> str:
    """``sa.text(...)`` of schemactl's own SQL; a lone colon is escaped (not a bind)."""
    return f"sa.text({py(re.sub(r'(?<!:):(?!:)', lambda m: chr(92) + ':', sql))})"


def column_src(col: Column) -> str:
    args = [py(col.name), type_source(col.type)]
    if col.generated is not None:
        # STORED: on PostgreSQL 18 a Computed column without persisted=True is VIRTUAL.
        args.append(f"sa.Computed({py(generated_sql(col.generated))}, persisted=True)")
    default = default_sql(col)
    if default is not None:
        args.append(f"server_default=sa.text({py(default)})")
    args.append(f"nullable={col.nullable and not col.primary_key}")
    comment = effective_comment(col.comment, col.deprecated)
    if comment:
        args.append(f"comment={py(comment)}")
    return f"sa.Column({', '.join(args)})"


def index_columns_src(idx: Index) -> str:
    """The keys of an index as Python source: names, and ``sa.text(...)`` for expressions."""
    from schemactl.codegen.expressions import index_key_sql

    if not idx.functions:
        return py(list(idx.columns))
    return "[" + ", ".join(py(c) if f is None else text_src(index_key_sql(c, f))
                           for c, f in idx.keys) + "]"


def index_kw_src(idx: Index) -> list[str]:
    out = []
    if idx.unique:
        out.append("unique=True")
    if idx.using and idx.using != "btree":
        out.append(f"postgresql_using={py(idx.using)}")
    if idx.opclass:
        out.append(f"postgresql_ops={py({c: idx.opclass for c in idx.columns})}")
    where = predicate_sql(idx.where)
    if where:
        out.append(f"postgresql_where={text_src(where)}")
    if idx.include:
        out.append(f"postgresql_include={py(list(idx.include))}")
    if idx.storage:
        out.append(f"postgresql_with={py(dict(idx.storage))}")
    return out


def create_table_src(tdef: TableDef) -> list[str]:
    lines = ["op.create_table(", f"{INDENT}{py(tdef.table)},"]
    lines += [f"{INDENT}{column_src(c)}," for c in tdef.columns]
    if tdef.primary_key:
        cols = ", ".join(py(c) for c in tdef.primary_key)
        lines.append(f"{INDENT}sa.PrimaryKeyConstraint({cols}, name={py(pk_name(tdef.table))}),")
    for c in tdef.columns:
        if c.references and c.ref_table and c.ref_column:
            actions = "".join(f", {k}={py(v)}" for k, v in fk_kwargs(c).items())
            name = fk_name(tdef.table, c.name, c.ref_table, c.on_delete, c.on_update)
            lines.append(f"{INDENT}sa.ForeignKeyConstraint([{py(c.name)}], "
                         f"[{py(f'{c.ref_table}.{c.ref_column}')}], "
                         f"name={py(name)}{actions}),")
    for ref in tdef.references:
        actions = "".join(f", {k}={py(v)}" for k, v in
                          fk_action_kwargs(ref.on_delete, ref.on_update).items())
        lines.append(f"{INDENT}sa.ForeignKeyConstraint({py(list(ref.columns))}, "
                     f"{py([f'{ref.to}.{c}' for c in ref.to_columns])}, "
                     f"name={py(ref.constraint_name(tdef.table))}{actions}),")
    for name, sql in check_map(tdef).items():
        lines.append(f"{INDENT}sa.CheckConstraint({text_src(sql)}, name={py(name)}),")
    for c in tdef.columns:
        if c.unique and not c.primary_key:
            lines.append(f"{INDENT}sa.UniqueConstraint({py(c.name)}, "
                         f"name={py(uq_name(tdef.table, c.name))}),")
    comment = effective_comment(tdef.comment, tdef.deprecated)
    if comment:
        lines.append(f"{INDENT}comment={py(comment)},")
    lines.append(")")
    return lines


def _type_of(col: Column | None) -> str:
    return type_source(col.type) if col else "None"


def alter_src(op: Any, reverse: bool = False) -> list[str]:
    old: Column = op.info["old"]
    new: Column = op.info["new"]
    before, after = (new, old) if reverse else (old, new)
    args = [py(op.table_name), py(op.column_name)]
    args.append(f"existing_type={_type_of(before)}")
    if before.type != after.type:
        args.append(f"type_={_type_of(after)}")
    b_null = before.nullable and not before.primary_key
    a_null = after.nullable and not after.primary_key
    if b_null != a_null:
        args.append(f"nullable={a_null}")
    else:
        args.append(f"existing_nullable={b_null}")
    b_def, a_def = default_sql(before), default_sql(after)
    if b_def != a_def:
        args.append(f"server_default={'sa.text(' + py(a_def) + ')' if a_def else 'None'}")
    elif b_def is not None:
        args.append(f"existing_server_default=sa.text({py(b_def)})")
    b_com = effective_comment(before.comment, before.deprecated)
    a_com = effective_comment(after.comment, after.deprecated)
    if b_com != a_com:
        args.append(f"comment={py(a_com)}")
        if b_com:
            args.append(f"existing_comment={py(b_com)}")
    elif b_com:
        args.append(f"existing_comment={py(b_com)}")
    return call_src("op.alter_column", args)


def call_src(fn: str, args: list[str], width: int = 92) -> list[str]:
    one = f"{fn}({', '.join(args)})"
    if len(one) + 4 <= width:
        return [one]
    return [f"{fn}(", *[f"{INDENT}{a}," for a in args], ")"]
