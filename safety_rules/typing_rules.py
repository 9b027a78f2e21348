"""Type and default knowledge shared by the rules: the whitelists and change classes."""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Iterator
from datetime import date, datetime

from schemactl.model.definitions import Column, TypeSpec, parse_type
from schemactl.model.literals import (
    FUNCTION_DEFAULT_TYPES,
    NUMERIC_BASES,
    PLAIN_NUMBER,
    TIME_BASES,
    TYPE_BASES,
)
from schemactl.model.online import (
    WIDENING,
    ColumnChange,
    numeric_scale_kept,
    online_cast,
    online_problem,
)

from .base import Rule, RuleContext
from .violation import Violation

# Types PostgreSQL has but schemactl refuses, with what to write instead.
REFUSED_TYPES = {
    "char": "char(n) pads values with spaces and is no faster (PostgreSQL's own advice: "
            "don't use char(n)); use varchar(n) or text",
    "json": "json keeps the text as written and cannot be indexed; use jsonb",
}
# Types whose parameter is a fractional-seconds precision, 0 to 6.
PRECISION_TYPES = frozenset({"timestamp", "timestamptz", "time", "timetz", "interval"})
# pgvector's dimension limits (halfvec and sparsevec need pgvector 0.7 or later).
VECTOR_LIMITS = {"vector": 16_000, "halfvec": 16_000, "sparsevec": 1_000_000_000}
INDEX_METHODS = frozenset({"btree", "hash", "gin", "gist", "brin", "hnsw", "ivfflat"})
# Base types (``array`` for any ``T[]``) that have a default operator class for each index
# method, as PostgreSQL 15-18 and pgvector 0.7+ ship them (pg_opclass.opcdefault; varchar,
# cidr and citext use text's, inet's and their own). An index whose column type is not
# listed needs an ``opclass`` or cannot be built.
_SCALAR_BTREE = frozenset({
    "uuid", "text", "varchar", "smallint", "integer", "bigint", "numeric", "real",
    "double precision", "boolean", "date", "timestamptz", "timestamp", "interval", "jsonb",
    "bytea", "vector", "halfvec", "sparsevec", "time", "timetz", "inet", "cidr", "macaddr",
    "citext", "tsvector", "array",
})
DEFAULT_OPCLASS_TYPES: dict[str, frozenset[str]] = {
    "btree": _SCALAR_BTREE,
    "hash": _SCALAR_BTREE - {"vector", "halfvec", "sparsevec", "tsvector"},
    "gin": frozenset({"jsonb", "tsvector", "array"}),
    "gist": frozenset({"tsvector"}),
    "brin": frozenset({"uuid", "text", "varchar", "smallint", "integer", "bigint", "numeric",
                       "real", "double precision", "date", "timestamptz", "timestamp",
                       "interval", "bytea", "time", "timetz", "inet", "cidr", "macaddr"}),
    "hnsw": frozenset(),
    "ivfflat": frozenset({"vector"}),
}
# Operator class → the (method, base type) pairs it serves.
_VEC = ("vector", "halfvec", "sparsevec")
OPCLASS_FITS: dict[str, frozenset[tuple[str, str]]] = {
    **{f"{v}_{d}_ops": frozenset({("hnsw", v)} | ({("ivfflat", v)} if v != "sparsevec" and
                                                  d != "l1" else set()))
       for v in _VEC for d in ("cosine", "l2", "ip", "l1")},
    "jsonb_ops": frozenset({("gin", "jsonb"), ("btree", "jsonb"), ("hash", "jsonb")}),
    "jsonb_path_ops": frozenset({("gin", "jsonb")}),
    "text_pattern_ops": frozenset({("btree", "text"), ("btree", "varchar")}),
    "varchar_pattern_ops": frozenset({("btree", "text"), ("btree", "varchar")}),
    "citext_pattern_ops": frozenset({("btree", "citext")}),
    "array_ops": frozenset({("gin", "array"), ("btree", "array"), ("hash", "array")}),
    "tsvector_ops": frozenset({("gin", "tsvector"), ("gist", "tsvector"),
                               ("btree", "tsvector")}),
    "inet_ops": frozenset({("gist", "inet"), ("gist", "cidr"), ("btree", "inet"),
                           ("btree", "cidr"), ("hash", "inet"), ("hash", "cidr")}),
}


OPCLASSES = frozenset(OPCLASS_FITS)


def index_type_key(spec: TypeSpec) -> str:
    """The key of :data:`DEFAULT_OPCLASS_TYPES` for a column type (``array`` for ``T[]``)."""
    return "array" if spec.array else spec.base


MAX_VARCHAR = 10_485_760
INTEGER_RANGES = {"smallint": (-(2**15), 2**15 - 1), "integer": (-(2**31), 2**31 - 1),
                  "bigint": (-(2**63), 2**63 - 1)}
STRING_TYPES = frozenset({"text", "varchar"})
CLOCK_TYPES = frozenset({"time", "timetz"})
REAL_MAX = 3.4028234663852886e38

# Volatile: evaluated per row, so adding such a column rewrites the whole table.
VOLATILE_DEFAULTS = frozenset({"gen_random_uuid()"})


def type_problem(text: str) -> str | None:
    """Why a type is not allowed, or None when it is on the whitelist and well-formed."""
    spec = parse_type(text)
    if spec is None:
        return f"type {text!r} is malformed"
    base, args = spec.base, spec.args
    if base in REFUSED_TYPES:
        return f"type {text!r} is refused: {REFUSED_TYPES[base]}"
    if base not in TYPE_BASES:
        return f"type {text!r} is not on the whitelist"
    if base == "varchar":
        if len(args) > 1 or (args and not 1 <= args[0] <= MAX_VARCHAR):
            return f"type {text!r}: varchar(n) needs 1 <= n <= {MAX_VARCHAR}"
    elif base == "numeric":
        if len(args) > 2 or (args and not 1 <= args[0] <= 1000) or (
                len(args) == 2 and not 0 <= args[1] <= args[0]):
            return f"type {text!r}: numeric(p,s) needs 1 <= p <= 1000 and 0 <= s <= p"
    elif base in VECTOR_LIMITS:
        limit = VECTOR_LIMITS[base]
        if len(args) != 1 or not 1 <= args[0] <= limit:
            return f"type {text!r}: {base}(n) needs 1 <= n <= {limit:,}"
    elif base in PRECISION_TYPES:
        if len(args) > 1 or (args and not 0 <= args[0] <= 6):
            return f"type {text!r}: {base}(p) takes a precision 0 <= p <= 6"
    elif args:
        return f"type {text!r}: {base} takes no parameters"
    return None


def _num_same_scale(old: TypeSpec, new: TypeSpec) -> bool:
    """numeric(p,s) → numeric(p2,s2) keeps every value and needs no rewrite (same scale)."""
    if not new.args:
        return True
    if not old.args:
        return False
    s, s2 = (old.args[1] if len(old.args) > 1 else 0), (new.args[1] if len(new.args) > 1 else 0)
    return s2 == s and new.args[0] >= old.args[0]


# Lossless conversions that PostgreSQL performs by rewriting the table: the online cast
# whitelist's widenings (schemactl.model.online, their one home) and those it has no
# shadow-column form for.
_REWRITE_WIDENINGS = {
    base: set(WIDENING.get(base, ())) | extra for base, extra in {
        "smallint": {"real", "double precision"},
        "integer": {"double precision"},
        "bigint": set(),
        "real": set(),
        "date": {"timestamp", "timestamptz"},
        "timestamp": {"timestamptz"},
    }.items()
}


def classify_change(old_text: str, new_text: str) -> str:
    """How a column type change behaves.

    Returns:
        "same", "safe" (no rewrite, no loss: varchar(n)→varchar(m>n), varchar→text),
        "rewrite" (lossless but rewrites the table: integer→bigint) or "narrowing"
        (can lose data or fail: bigint→integer, text→integer, varchar(200)→varchar(100)).
    """
    old, new = parse_type(old_text), parse_type(new_text)
    if old is None or new is None:
        return "same" if old_text.strip() == new_text.strip() else "narrowing"
    if str(old) == str(new):
        return "same"
    if old.array != new.array:
        return "narrowing"
    if old.base == new.base and old.base in PRECISION_TYPES:
        # More fractional digits (or none fixed) keeps every value without a rewrite.
        if not new.args or (old.args and new.args[0] >= old.args[0]):
            return "safe"
        return "narrowing"
    if old.base == "varchar" and new.base == "varchar":
        if not new.args or (old.args and new.args[0] >= old.args[0]):
            return "safe"
        return "narrowing"
    if old.base == "varchar" and new.base == "text":
        return "safe"
    if old.base == "text" and new.base == "varchar" and not new.args:
        return "safe"
    if old.base == "numeric" and new.base == "numeric":
        if _num_same_scale(old, new):
            return "safe"
        return "rewrite" if old.args and numeric_scale_kept(old, new) else "narrowing"
    if new.base in _REWRITE_WIDENINGS.get(old.base, ()):
        if new.base == "numeric" and new.args:
            return "narrowing"
        return "rewrite"
    if new.base == "text" and old.base != "bytea":
        return "rewrite"  # every value has a text form; the table is rewritten
    return "narrowing"


def refused_type_changes(rule: Rule, ctx: RuleContext, kind: str, why: str
                         ) -> Iterator[Violation]:
    """The violations of the type changes of class ``kind`` (:func:`classify_change`) that
    ``rule`` refuses as direct DDL (SC104 "narrowing", SC504 "rewrite").

    A change along the online cast whitelist passes, unless it cannot run online
    (:func:`schemactl.model.online.online_problem` says why); any other is refused with
    ``why``, the rule's reason.
    """
    for ch in ctx.changes:
        for old, new in ch.kept_columns():
            if classify_change(old.type, new.type) != kind:
                continue
            where = f"column {ch.name}.{new.name}"
            if online_cast(old.type, new.type) is not None and ch.before is not None:
                problem = online_problem(ch.before, ColumnChange(ch.name, old, new))
                if problem:
                    yield rule.violation(f"{where} cannot change type online ({old.type} → "
                                         f"{new.type}): {problem}", table=ch.name,
                                         column=new.name, tdef=ch.after)
            else:
                yield rule.violation(f"{where} changes type {old.type} → {new.type}{why}",
                                     table=ch.name, column=new.name, tdef=ch.after)


# -- defaults ------------------------------------------------------------------------

_FUNC_CALL = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_.$]*\s*\(")
_SQL_WORDS = frozenset({"current_date", "current_time", "current_user", "session_user",
                        "localtime", "localtimestamp", "current_role", "current_catalog",
                        "current_schema", "user", "default", "null", "current_timestamp"})
# Literal shapes of rarer types: pattern text, compiled by `re` on first use (and cached
# there), so that a cold validate of tables without such defaults never compiles them.
_CLOCK = (r"^\s*([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?"
          r"([+-]\d{2}(:?\d{2})?|Z)?\s*$")
_MACADDR = r"^\s*[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}\s*$"
_INTERVAL = (r"^\s*(\d+\s+(microsecond|millisecond|second|minute|hour|day|week|month|"
             r"year)s?\s*)+$")


def looks_like_sql(text: str) -> bool:
    """True for text that reads as an SQL expression rather than a literal value."""
    low = text.strip().lower()
    return (bool(_FUNC_CALL.match(low)) or ";" in low or "--" in low or "/*" in low
            or "::" in low or low in _SQL_WORDS or low.startswith("select ")
            or low.startswith("("))


def default_function(col: Column) -> str | None:
    """The whitelisted function a default names (normalised), if it names one."""
    if isinstance(col.default, str):
        low = " ".join(col.default.lower().split()).replace("( )", "()").replace(" (", "(")
        if low in FUNCTION_DEFAULT_TYPES:
            return low
    return None


def canonical_default(value: object) -> str | None:
    """A default as comparable text: booleans lowercased, now() == current_timestamp."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = " ".join(str(value).strip().lower().split())
    return "now()" if text == "current_timestamp" else text


def default_problem(col: Column) -> str | None:
    """Why a column's default is not allowed, or None."""
    if not col.has_default or col.default is None:
        return None
    spec = parse_type(col.type)
    if spec is None:
        return None  # the type rule reports it
    base = "array" if spec.array else spec.base
    value = col.default
    func = default_function(col)
    if func is not None:
        fits = FUNCTION_DEFAULT_TYPES[func]
        if base not in fits:
            return f"default {func} does not fit type {col.type}"
        return None
    if base == "jsonb":
        if isinstance(value, float) and not math.isfinite(value):
            return f"default {value!r} is not valid JSON for a jsonb column"
        if isinstance(value, str):
            try:
                json.loads(value)
            except ValueError:
                return f"default {value!r} is not valid JSON for a jsonb column"
        return None
    if isinstance(value, bool):
        return None if base == "boolean" else f"boolean default on a {col.type} column"
    if isinstance(value, (int, float)):
        return _number_problem(col, spec, value)
    text = str(value)
    if base in STRING_TYPES or base == "citext":
        if looks_like_sql(text):
            return f"default {text!r} looks like SQL; only literals and {_funcs()} are allowed"
        if base == "varchar" and spec.args and len(text) > spec.args[0]:
            return f"default {text!r} is longer than {col.type}"
        return None
    if looks_like_sql(text):
        return f"default {text!r} looks like SQL; only literals and {_funcs()} are allowed"
    return _string_literal_problem(col, spec, base, text)


def _funcs() -> str:
    return ", ".join(FUNCTION_DEFAULT_TYPES)


def _number_problem(col: Column, spec: TypeSpec, value: float) -> str | None:
    if spec.array or spec.base not in NUMERIC_BASES:
        return f"numeric default {value!r} on a {col.type} column"
    if isinstance(value, float) and not math.isfinite(value):
        return (f"default {value!r} is not a finite number; write 'NaN' or 'Infinity' as a "
                "string on a real, double precision or numeric column")
    if spec.base in INTEGER_RANGES:
        if isinstance(value, float) and not value.is_integer():
            return f"default {value!r} is not an integer ({col.type})"
        lo, hi = INTEGER_RANGES[spec.base]
        if not lo <= value <= hi:
            return f"default {value!r} is out of range for {col.type}"
    elif spec.base == "real" and abs(value) > REAL_MAX:
        return f"default {value!r} is out of range for real"
    elif spec.base == "numeric" and spec.args:
        # numeric(p,s) rounds to s places and refuses |value| >= 10^(p-s): CREATE TABLE fails.
        # Imported here, like uuid below: a numeric default is rare and validate starts cold.
        from decimal import ROUND_HALF_UP, Context, Decimal

        p, s = spec.args[0], (spec.args[1] if len(spec.args) > 1 else 0)
        exact = Decimal(str(value))
        # Too large to round at all (1e308 in numeric(10,2)): it overflows, no quantize needed.
        if not exact.is_finite() or exact.adjusted() >= p - s:
            return f"default {value!r} does not fit {col.type} (numeric field overflow)"
        rounded = exact.quantize(Decimal(1).scaleb(-s), rounding=ROUND_HALF_UP,
                                 context=Context(prec=max(p, 28) + 2))
        if abs(rounded) >= Decimal(10) ** (p - s):
            return f"default {value!r} does not fit {col.type} (numeric field overflow)"
    return None


# Special values PostgreSQL reads from a quoted literal of real, double precision and numeric.
_SPECIAL_NUMBERS = frozenset({"nan", "infinity", "+infinity", "-infinity", "inf", "+inf",
                              "-inf"})


def _string_literal_problem(col: Column, spec: TypeSpec, base: str, text: str) -> str | None:
    bad = f"default {text!r} is not a valid {col.type} literal"
    if base == "boolean":
        return None if text.strip().lower() in ("true", "false") else bad
    if base in NUMERIC_BASES:
        special = text.strip().lower()
        if special in _SPECIAL_NUMBERS and base not in INTEGER_RANGES:
            # NaN fits any numeric; Infinity does not fit a numeric(p,s).
            ok = special == "nan" or base != "numeric" or not spec.args
            return None if ok else f"default {text!r} does not fit {col.type}"
        # Python's int()/float() also read 1_000 and ' 12\n', which PostgreSQL 15 refuses.
        if not PLAIN_NUMBER.match(text.strip()) or (
                base in INTEGER_RANGES and not re.fullmatch(r"[+-]?\d+", text.strip())):
            return bad
        number = float(text) if base not in INTEGER_RANGES else int(text)
        if base == "double precision" and not math.isfinite(number):
            return f"default {text!r} is out of range for double precision"
        return _number_problem(col, spec, number)
    if base == "uuid":
        import uuid

        try:
            uuid.UUID(text)
        except ValueError:
            return bad
        return None
    if base in TIME_BASES:
        try:
            (date.fromisoformat if base == "date" else datetime.fromisoformat)(text)
        except ValueError:
            return bad
        return None
    if base == "interval":
        return None if re.match(_INTERVAL, text, re.IGNORECASE) else bad
    if base in CLOCK_TYPES:
        return None if re.match(_CLOCK, text) else bad
    if base in ("inet", "cidr"):
        try:
            (ipaddress.ip_interface if base == "inet" else ipaddress.ip_network)(text.strip())
        except ValueError:
            return bad
        return None
    if base == "macaddr":
        return None if re.match(_MACADDR, text) else bad
    if base in ("halfvec", "vector"):
        base = "vector"
    if base == "bytea":
        return None if re.fullmatch(r"\\x(?:[0-9a-fA-F]{2})*", text) else bad
    if base == "vector":
        try:
            values = json.loads(text)
        except ValueError:
            return bad
        ok = isinstance(values, list) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if not ok or (spec.args and len(values) != spec.args[0]):
            return bad
        return None
    if base == "array":
        return None if re.fullmatch(r"\{[A-Za-z0-9_ ,.\-]*\}", text) else bad
    return bad
