"""SQLAlchemy metadata of a schema repository: core models plus dynamic definitions.

One mapping from a definition to SQLAlchemy lives here: column types (the whole
whitelist, arrays and pgvector's ``Vector``), server defaults, keys, indexes,
comments and constraint names. The migration renderer (`schemactl.codegen.render`) writes
the same things as Python source through :func:`type_source`, so that the models
an application loads and the DDL a migration runs cannot disagree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schemactl.codegen.sqltext import sql_literal
from schemactl.codegen.table_parts import (
    check_constraints,
    fk_action_kwargs,
    fk_kwargs,
    index_elements,
    index_kwargs,
)
from schemactl.errors import BadInputError
from schemactl.model.definitions import Column, TableDef, TypeSpec, parse_type
from schemactl.model.literals import FUNCTION_DEFAULTS, NUMERIC_BASES, PLAIN_NUMBER
from schemactl.model.naming import fk_name, pk_name, uq_name

if TYPE_CHECKING:
    from sqlalchemy import MetaData, Table
    from sqlalchemy.types import TypeEngine



DEPRECATED = "DEPRECATED"


# -- names -----------------------------------------------------------------------------


def effective_comment(comment: str | None, deprecated: bool) -> str | None:
    """The comment stored in the database: deprecation is recorded as a comment prefix."""
    if not deprecated:
        return comment or None
    return f"{DEPRECATED}: {comment}" if comment else DEPRECATED


# -- types -----------------------------------------------------------------------------

# base type → (SQLAlchemy type factory, Python source factory); both take the type's args.
_TypeFactory = Callable[[tuple[int, ...]], Any]


def _types() -> dict[str, tuple[_TypeFactory, Callable[[tuple[int, ...]], str]]]:
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql

    def vector(args: tuple[int, ...]) -> Any:
        from pgvector.sqlalchemy import Vector

        return Vector(args[0]) if args else Vector()

    def halfvec(args: tuple[int, ...]) -> Any:
        from pgvector.sqlalchemy import HALFVEC

        return HALFVEC(args[0]) if args else HALFVEC()

    def sparsevec(args: tuple[int, ...]) -> Any:
        from pgvector.sqlalchemy import SPARSEVEC

        return SPARSEVEC(args[0]) if args else SPARSEVEC()

    def timestamp(timezone: bool) -> tuple[_TypeFactory, Callable[[tuple[int, ...]], str]]:
        tz = "timezone=True, " if timezone else ""
        return ((lambda a: postgresql.TIMESTAMP(timezone=timezone, precision=a[0])
                 if a else sa.DateTime(timezone=timezone)),
                (lambda a: f"postgresql.TIMESTAMP({tz}precision={a[0]})" if a else
                 f"sa.DateTime({tz.rstrip(', ')})"))

    def time(timezone: bool) -> tuple[_TypeFactory, Callable[[tuple[int, ...]], str]]:
        tz = "timezone=True, " if timezone else ""
        return ((lambda a: postgresql.TIME(timezone=timezone, precision=a[0] if a else None)),
                (lambda a: f"postgresql.TIME({tz}precision={a[0]})" if a else
                 f"postgresql.TIME({tz.rstrip(', ')})"))

    def numeric(args: tuple[int, ...]) -> Any:
        precision = args[0] if args else None
        scale = args[1] if len(args) > 1 else None
        return sa.Numeric(precision=precision, scale=scale)

    def numeric_src(args: tuple[int, ...]) -> str:
        if len(args) >= 2:
            return f"sa.Numeric(precision={args[0]}, scale={args[1]})"
        return f"sa.Numeric(precision={args[0]})" if args else "sa.Numeric()"

    return {
        "uuid": (lambda a: postgresql.UUID(as_uuid=True),
                 lambda a: "postgresql.UUID(as_uuid=True)"),
        "text": (lambda a: sa.Text(), lambda a: "sa.Text()"),
        "varchar": (lambda a: sa.String(length=a[0]) if a else sa.String(),
                    lambda a: f"sa.String(length={a[0]})" if a else "sa.String()"),
        "smallint": (lambda a: sa.SmallInteger(), lambda a: "sa.SmallInteger()"),
        "integer": (lambda a: sa.Integer(), lambda a: "sa.Integer()"),
        "bigint": (lambda a: sa.BigInteger(), lambda a: "sa.BigInteger()"),
        "numeric": (numeric, numeric_src),
        "real": (lambda a: postgresql.REAL(), lambda a: "postgresql.REAL()"),
        "double precision": (lambda a: postgresql.DOUBLE_PRECISION(),
                             lambda a: "postgresql.DOUBLE_PRECISION()"),
        "boolean": (lambda a: sa.Boolean(), lambda a: "sa.Boolean()"),
        "date": (lambda a: sa.Date(), lambda a: "sa.Date()"),
        "timestamptz": timestamp(True),
        "timestamp": timestamp(False),
        "time": time(False),
        "timetz": time(True),
        "interval": (lambda a: postgresql.INTERVAL(precision=a[0] if a else None),
                     lambda a: f"postgresql.INTERVAL(precision={a[0]})" if a else
                     "postgresql.INTERVAL()"),
        "inet": (lambda a: postgresql.INET(), lambda a: "postgresql.INET()"),
        "cidr": (lambda a: postgresql.CIDR(), lambda a: "postgresql.CIDR()"),
        "macaddr": (lambda a: postgresql.MACADDR(), lambda a: "postgresql.MACADDR()"),
        "citext": (lambda a: postgresql.CITEXT(), lambda a: "postgresql.CITEXT()"),
        "tsvector": (lambda a: postgresql.TSVECTOR(), lambda a: "postgresql.TSVECTOR()"),
        "halfvec": (halfvec, lambda a: f"HALFVEC({a[0]})" if a else "HALFVEC()"),
        "sparsevec": (sparsevec, lambda a: f"SPARSEVEC({a[0]})" if a else "SPARSEVEC()"),
        "jsonb": (lambda a: postgresql.JSONB(), lambda a: "postgresql.JSONB()"),
        "bytea": (lambda a: postgresql.BYTEA(), lambda a: "postgresql.BYTEA()"),
        "vector": (vector, lambda a: f"Vector({a[0]})" if a else "Vector()"),
    }


_TYPES: dict[str, tuple[_TypeFactory, Callable[[tuple[int, ...]], str]]] | None = None


def generated_bases() -> frozenset[str]:
    """The base types the generator writes (the whitelist, model.literals.TYPE_BASES)."""
    global _TYPES
    if _TYPES is None:
        _TYPES = _types()
    return frozenset(_TYPES)


def _spec(type_text: str) -> TypeSpec:
    global _TYPES
    if _TYPES is None:
        _TYPES = _types()
    spec = parse_type(type_text)
    if spec is None or spec.base not in _TYPES:
        raise BadInputError(f"unsupported column type {type_text!r}",
                            hint="see the type whitelist in DESIGN.md (rule SC403)")
    return spec


def sa_type(type_text: str) -> TypeEngine[Any]:
    """The SQLAlchemy type of a whitelisted type name (``varchar(200)[]`` → ARRAY(String(200))).

    Raises:
        BadInputError: the type is not on the whitelist.
    """
    spec = _spec(type_text)
    assert _TYPES is not None
    inner = _TYPES[spec.base][0](spec.args)
    if spec.array:
        from sqlalchemy.dialects import postgresql

        return postgresql.ARRAY(inner)
    return inner  # type: ignore[no-any-return]


def type_source(type_text: str) -> str:
    """The Python source a migration uses for the type (``sa.String(length=200)``)."""
    spec = _spec(type_text)
    assert _TYPES is not None
    inner = _TYPES[spec.base][1](spec.args)
    return f"postgresql.ARRAY({inner})" if spec.array else inner


# Types that come from an extension: base type → the extension schemactl creates for it.
EXTENSION_TYPES = {"vector": "vector", "halfvec": "vector", "sparsevec": "vector",
                   "citext": "citext"}


def type_extension(type_text: str) -> str | None:
    """The extension a column type needs (``vector``, ``citext``), or None."""
    spec = parse_type(type_text)
    return EXTENSION_TYPES.get(spec.base) if spec else None


def uses_vector(type_text: str) -> bool:
    return type_extension(type_text) == "vector"


# -- defaults --------------------------------------------------------------------------


def default_sql(col: Column) -> str | None:
    """The SQL default expression of a column (None when it has none).

    Only whitelisted forms are produced: literals (quoted), ``now()``,
    ``CURRENT_TIMESTAMP`` and ``gen_random_uuid()``; a jsonb default is its JSON text cast
    to jsonb. Never free SQL: a string that is not one of the functions is a quoted literal.
    """
    if not col.has_default or col.default is None:
        return None
    value = col.default
    spec = parse_type(col.type)
    base = spec.base if spec else ""
    is_json = base == "jsonb" and not (spec and spec.array)
    if isinstance(value, bool):
        text = "true" if value else "false"
        return f"{sql_literal(text)}::jsonb" if is_json else text
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            # json.dumps writes NaN/Infinity bare, which PostgreSQL reads as a column name.
            return sql_literal("NaN" if math.isnan(value) else
                          ("Infinity" if value > 0 else "-Infinity"))
        text = json.dumps(value)
        return f"{sql_literal(text)}::jsonb" if is_json else text
    key = value.strip().lower()
    if key in FUNCTION_DEFAULTS:
        return FUNCTION_DEFAULTS[key]
    if base == "boolean" and key in ("true", "false"):
        return key
    if base in NUMERIC_BASES and not (spec and spec.array) and PLAIN_NUMBER.match(value.strip()):
        return value.strip()
    if is_json:
        return f"{sql_literal(value)}::jsonb"
    return sql_literal(value)


def is_volatile_default(col: Column) -> bool:
    """Whether the default is volatile (evaluated per row: adding it rewrites a table)."""
    return default_sql(col) == "gen_random_uuid()"


# -- tables ----------------------------------------------------------------------------


def _core() -> MetaData:
    from core_schema import metadata

    return metadata


def core_table_names() -> frozenset[str]:
    return frozenset(_core().tables)


def visible_columns(tdef: TableDef, include_deprecated: bool) -> list[Column]:
    return [c for c in tdef.columns if include_deprecated or not c.deprecated]


def add_table(metadata: MetaData, tdef: TableDef, *, include_deprecated: bool = True) -> Table:
    """Add the SQLAlchemy Table of one definition to ``metadata`` and return it.

    Foreign keys to tables ``metadata`` does not hold (a deprecated table left out) and
    indexes over left-out columns are skipped, so the result always resolves.
    """
    import sqlalchemy as sa

    cols = visible_columns(tdef, include_deprecated)
    names = {c.name for c in cols}
    items: list[Any] = []
    for col in cols:
        items.append(sa_column(col))
    pk = [c.name for c in cols if c.primary_key]
    if pk:
        items.append(sa.PrimaryKeyConstraint(*pk, name=pk_name(tdef.table)))
    for col in cols:
        if col.references and col.ref_column:
            ref_table = col.ref_table or ""
            if ref_table != tdef.table and ref_table not in metadata.tables:
                continue
            items.append(sa.ForeignKeyConstraint(
                [col.name], [f"{ref_table}.{col.ref_column}"],
                name=fk_name(tdef.table, col.name, ref_table, col.on_delete, col.on_update),
                **fk_kwargs(col)))
    for ref in tdef.references:
        if not set(ref.columns) <= names or (ref.to != tdef.table
                                             and ref.to not in metadata.tables):
            continue
        items.append(sa.ForeignKeyConstraint(
            list(ref.columns), [f"{ref.to}.{c}" for c in ref.to_columns],
            name=ref.constraint_name(tdef.table),
            **fk_action_kwargs(ref.on_delete, ref.on_update)))
    for col in cols:
        if col.unique and not col.primary_key:
            items.append(sa.UniqueConstraint(col.name, name=uq_name(tdef.table, col.name)))
    items += check_constraints(tdef, names)
    for idx in tdef.indexes:
        if not set(idx.columns) | set(idx.include) | {p.column for p in idx.where} <= names:
            continue
        items.append(sa.Index(idx.index_name(tdef.table), *index_elements(idx),
                              unique=idx.unique, **index_kwargs(idx)))
    return sa.Table(tdef.table, metadata, *items,
                    comment=effective_comment(tdef.comment, tdef.deprecated))


def sa_column(col: Column) -> Any:
    """The SQLAlchemy Column of a definition column (a generated one is STORED)."""
    import sqlalchemy as sa

    from schemactl.codegen.expressions import generated_sql

    default = default_sql(col)
    extra: list[Any] = []
    if col.generated is not None:
        # PostgreSQL 18 makes a Computed column VIRTUAL unless persisted=True.
        extra.append(sa.Computed(generated_sql(col.generated), persisted=True))
    return sa.Column(col.name, sa_type(col.type), *extra,
                     nullable=col.nullable and not col.primary_key,
                     server_default=sa.text(default) if default is not None else None,
                     comment=effective_comment(col.comment, col.deprecated))


def _dependency_order(defs: Mapping[str, TableDef]) -> list[str]:
    """Table names with referenced tables first (stable: alphabetical otherwise)."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:  # a cycle: keep the order reached so far
            return
        state[name] = 1
        for ref in sorted(defs[name].referenced_tables):
            if ref in defs and ref != name:
                visit(ref)
        state[name] = 2
        order.append(name)

    for name in sorted(defs):
        visit(name)
    return order


def build_metadata(definitions: Mapping[str, TableDef], *,
                   include_deprecated: bool = True) -> MetaData:
    """MetaData holding the core tables and one Table per dynamic definition.

    Args:
        definitions: table name → definition (as `schemactl.model.loading.load_dir` or
            `load_at_rev` give).
        include_deprecated: keep deprecated tables and columns (True: what the database
            holds; False: what an application should use).

    Raises:
        BadInputError: a definition shadows a core table or uses an unknown type.
    """
    from sqlalchemy import MetaData

    core = _core()
    metadata = MetaData(naming_convention=core.naming_convention)
    for table in core.sorted_tables:
        table.to_metadata(metadata)
    defs = {n: d for n, d in definitions.items() if include_deprecated or not d.deprecated}
    for name in _dependency_order(defs):
        if name in core.tables:
            raise BadInputError(f"dynamic definition {name!r} shadows a core table",
                                hint="core tables are protected (rule SC501)")
        add_table(metadata, defs[name], include_deprecated=include_deprecated)
    return metadata


def load_metadata(repo: str | Path = ".", *, include_deprecated: bool = False) -> MetaData:
    """Core tables plus the dynamic tables of the repository's work tree.

    This is the application's loader (``schemactl.load_metadata``): query the tables an
    agent created without generated code::

        md = schemactl.load_metadata("path/to/schema-repo")
        notes = md.tables["notes"]
        conn.execute(notes.insert().values(title="hello"))
    """
    from schemactl.model.loading import load_worktree

    root = Path(repo).resolve()
    return build_metadata(load_worktree(root), include_deprecated=include_deprecated)
