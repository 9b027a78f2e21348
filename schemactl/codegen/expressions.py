"""SQL expressions written from a definition's structured parts: checks, index predicates,
generated columns and foreign-key actions (never free SQL).

Every identifier is double-quoted and every literal quoted or written as a plain number,
from values the rules have checked (SC405, SC407). The same text goes into the SQLAlchemy
metadata (`schemactl.codegen.metadata`) and the migration files, and
:func:`fingerprint` reduces both it and PostgreSQL's own rendering
(``pg_get_constraintdef``, ``pg_get_expr``) to one comparable form for drift and verify.
"""

from __future__ import annotations

import json
import math
import re

from schemactl.model.constraints import Generated, IndexPredicate, TableCheck
from schemactl.model.definitions import Column, Index, TableDef

# Definition action → the SQL words.
FK_ACTION_SQL = {"cascade": "CASCADE", "set_null": "SET NULL", "restrict": "RESTRICT",
                 "no_action": "NO ACTION"}
# pg_constraint.confdeltype / confupdtype → definition action (None: NO ACTION).
FK_ACTION_CODES = {"a": None, "c": "cascade", "n": "set_null", "r": "restrict", "d": "set_default"}


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str | int | float | bool | None) -> str:
    """A literal as SQL: booleans and finite numbers bare, anything else a quoted string."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) and not (isinstance(value, float)
                                                and not math.isfinite(value)):
        return json.dumps(value)
    return "'" + str(value).replace("'", "''") + "'"


def column_check_sql(col: Column) -> str | None:
    """The CHECK expression of a column's ``check`` (its parts joined by AND), or None."""
    chk = col.check
    if chk is None:
        return None
    c = ident(col.name)
    parts = []
    if chk.min is not None:
        parts.append(f"{c} >= {literal(chk.min)}")
    if chk.max is not None:
        parts.append(f"{c} <= {literal(chk.max)}")
    if chk.min_length is not None:
        parts.append(f"char_length({c}) >= {chk.min_length}")
    if chk.max_length is not None:
        parts.append(f"char_length({c}) <= {chk.max_length}")
    if chk.pattern is not None:
        parts.append(f"{c} ~ {literal(chk.pattern)}")
    if chk.allowed is not None:
        parts.append(f"{c} IN ({', '.join(literal(v) for v in chk.allowed)})")
    return " AND ".join(parts) or None


def table_check_sql(check: TableCheck) -> str:
    return f"{ident(check.left)} {check.op} {ident(check.right)}"


def check_map(tdef: TableDef) -> dict[str, str]:
    """Constraint name → CHECK expression of a table (column checks, then table checks)."""
    from schemactl.model.naming import ck_name

    out = {}
    for col in tdef.columns:
        sql = column_check_sql(col)
        if sql:
            out[ck_name(tdef.table, col.name)] = sql
    for chk in tdef.checks:
        out[chk.check_name(tdef.table)] = table_check_sql(chk)
    return out


def predicate_sql(preds: tuple[IndexPredicate, ...]) -> str | None:
    """A partial index's WHERE: the conjuncts joined by AND (None for a full index)."""
    parts = []
    for p in preds:
        if p.op == "is_null":
            parts.append(f"{ident(p.column)} IS NULL")
        elif p.op == "is_not_null":
            parts.append(f"{ident(p.column)} IS NOT NULL")
        else:
            parts.append(f"{ident(p.column)} = {literal(p.value)}")
    return " AND ".join(parts) or None


def index_key_sql(column: str, function: str | None) -> str:
    """One key of an index as SQL: the quoted column, or a whitelisted function of it."""
    return ident(column) if function is None else f"{function}({ident(column)})"


def index_keys_sql(idx: Index) -> list[str]:
    """An index's keys as the migration passes them: a plain column by name, an
    expression as its SQL (``lower("email")``)."""
    return [c if f is None else index_key_sql(c, f) for c, f in idx.keys]


def generated_sql(gen: Generated) -> str:
    """The expression of a stored generated column."""
    if gen.kind == "lower":
        return f"lower({ident(gen.columns[0])}::text)"
    config = gen.config or "simple"
    text = " || ' ' || ".join(f"coalesce({ident(c)}::text, '')" for c in gen.columns)
    return f"to_tsvector({literal(config)}::regconfig, {text})"


# -- comparing with what PostgreSQL shows -------------------------------------------------

_MULTIWORD_TYPES = ("character varying", "double precision", "timestamp with time zone",
                    "timestamp without time zone", "time with time zone",
                    "time without time zone")
_CAST = re.compile(r"::(?:" + "|".join(re.escape(t) for t in _MULTIWORD_TYPES)
                   + r"|[a-z_][a-z0-9_]*)(?:\(\d+(?:,\d+)?\))?(?:\[\])?")
_ANY_ARRAY = re.compile(r"= any \(*array\[([^\]]*)\]\)*")
_QUOTED_NUMBER = re.compile(r"'(-?\d+(?:\.\d+)?)'")


def fingerprint(sql: str | None) -> str:
    """An expression reduced for comparison: casts, parentheses, quotes and case removed.

    ``CHECK (((age >= 0) AND (age <= 150)))`` (PostgreSQL) and ``"age" >= 0 AND "age" <=
    150`` (schemactl) give the same fingerprint.
    """
    if not sql:
        return ""
    text = " ".join(sql.lower().split())
    text = text.removeprefix("check ").replace(" not valid", "")
    text = _CAST.sub("", text)
    text = _ANY_ARRAY.sub(lambda m: "in (" + m.group(1) + ")", text)
    text = _QUOTED_NUMBER.sub(r"\1", text)
    text = text.replace('"', "").replace("(", " ").replace(")", " ")
    return "".join(text.split())
