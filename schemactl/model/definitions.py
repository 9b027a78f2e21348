"""Dynamic table definitions: the normalised model (types, columns, indexes, tables).

A definition is data, never code. Reading it from YAML or JSON is
`schemactl.model.parsing`; sets of definitions (a folder, a git revision) are
`schemactl.model.loading`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache

from schemactl.errors import BadInputError

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any

    # The structured additions' classes: their module is imported when a definition has
    # one (a check, a structured key, a partial or expression index), not for every parse.
    from schemactl.model.constraints import (
        ColumnCheck,
        Generated,
        IndexPredicate,
        TableCheck,
        TableReference,
    )

Scalar = str | int | float | bool | None

# Spellings PostgreSQL accepts for the whitelisted types, mapped to the canonical name.
TYPE_ALIASES = {
    "int": "integer", "int4": "integer", "int2": "smallint", "int8": "bigint",
    "bool": "boolean", "float8": "double precision", "float4": "real",
    "timestamp with time zone": "timestamptz", "timestamp without time zone": "timestamp",
    "character varying": "varchar", "decimal": "numeric",
    "time with time zone": "timetz", "time without time zone": "time",
    "character": "char", "bpchar": "char",
}


class DefinitionError(BadInputError):
    """A definition that cannot be read (exit 2): syntax, structure, encoding."""

    code = "bad_definition"


@dataclass(frozen=True)
class TypeSpec:
    """A column type split into parts: ``varchar(200)[]`` is base varchar, args (200,), array."""

    base: str
    args: tuple[int, ...] = ()
    array: bool = False
    raw: str = ""

    def __str__(self) -> str:
        text = self.base + (f"({','.join(str(a) for a in self.args)})" if self.args else "")
        return text + ("[]" if self.array else "")


_TYPE_RE = re.compile(r"^\s*([a-z][a-z0-9 _]*?)\s*(?:\(\s*([0-9 ,]*)\s*\))?\s*(\[\])?\s*$")


@lru_cache(maxsize=4096)
def parse_type(text: str) -> TypeSpec | None:
    """Parse a type name; None when it is not of the form ``name[(n[,m])][[]]``."""
    # Cached: a few distinct type names recur across thousands of columns.
    m = _TYPE_RE.match(text.lower())
    if not m:
        return None
    base = " ".join(m.group(1).split())
    base = TYPE_ALIASES.get(base, base)
    args: tuple[int, ...] = ()
    if m.group(2) is not None:
        try:
            args = tuple(int(a) for a in m.group(2).split(","))
        except ValueError:
            return None
    return TypeSpec(base=base, args=args, array=bool(m.group(3)), raw=text)


def normalise_type(text: str) -> str:
    spec = parse_type(text)
    return str(spec) if spec else text.strip()


@dataclass(frozen=True)
class Column:
    """One column of a dynamic table, normalised."""

    name: str
    type: str
    nullable: bool = True
    default: Scalar = None
    has_default: bool = False
    primary_key: bool = False
    unique: bool = False
    references: str | None = None
    comment: str | None = None
    deprecated: bool = False
    # Online-change markers (schemactl.model.online): a rename and a NOT NULL backfill.
    renamed_from: str | None = None
    backfill: Scalar = None
    has_backfill: bool = False
    # Structured additions (schemactl.model.constraints): a check, foreign-key actions and a
    # stored generated expression.
    check: ColumnCheck | None = None
    on_delete: str | None = None
    on_update: str | None = None
    generated: Generated | None = None

    @property
    def type_spec(self) -> TypeSpec | None:
        return parse_type(self.type)

    @property
    def ref_table(self) -> str | None:
        return self.references.split(".", 1)[0] if self.references else None

    @property
    def ref_column(self) -> str | None:
        if not self.references or "." not in self.references:
            return None
        return self.references.split(".", 1)[1]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.primary_key:
            out["primary_key"] = True
        if not self.nullable and not self.primary_key:
            out["nullable"] = False
        if self.has_default:
            out["default"] = self.default
        if self.unique:
            out["unique"] = True
        if self.references:
            from schemactl.model.constraints import reference_to_value

            out["references"] = reference_to_value(self.references, self.on_delete,
                                                   self.on_update)
        if self.comment:
            out["comment"] = self.comment
        if self.deprecated:
            out["deprecated"] = True
        if self.renamed_from:
            out["renamed_from"] = self.renamed_from
        if self.has_backfill:
            out["backfill"] = self.backfill
        if self.check is not None:
            out["check"] = self.check.to_dict()
        if self.generated is not None:
            out["generated"] = self.generated.to_dict()
        return out


@dataclass(frozen=True)
class Index:
    """One index of a dynamic table, normalised."""

    columns: tuple[str, ...]
    unique: bool = False
    using: str | None = None
    opclass: str | None = None
    name: str | None = None
    # Structured additions (schemactl.model.constraints): a partial index's predicate,
    # INCLUDE columns and storage parameters (``with``).
    where: tuple[IndexPredicate, ...] = ()
    include: tuple[str, ...] = ()
    storage: tuple[tuple[str, int], ...] = ()
    # An expression index: the whitelisted function applied to each of ``columns`` (None
    # for a plain column); ``()`` when there is none (``columns: [{lower: email}]``).
    functions: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        # Pairs read back from JSON are lists: keep them tuples, so equal indexes compare equal.
        if any(not isinstance(p, tuple) for p in self.storage):
            object.__setattr__(self, "storage", tuple(tuple(p) for p in self.storage))

    def index_name(self, table: str) -> str:
        """The explicit name, or ``ix_``/``uq_`` + table + columns (cut to 63 bytes)."""
        if self.name:
            return self.name
        prefix = "uq" if self.unique else "ix"
        name = f"{prefix}_{table}_{'_'.join(self.key_words)}"
        if self.using and self.using != "btree":
            name += f"_{self.using}"
        return name[:63]

    @property
    def keys(self) -> tuple[tuple[str, str | None], ...]:
        """Each key of the index as (column, function or None)."""
        return tuple(zip(self.columns, self.functions or (None,) * len(self.columns),
                         strict=True))

    @property
    def key_words(self) -> tuple[str, ...]:
        """The keys as name parts: ``email``, ``lower_email``."""
        return tuple(c if f is None else f"{f}_{c}" for c, f in self.keys)

    def to_dict(self) -> dict[str, Any]:
        from schemactl.model.constraints import index_keys_to_value, predicates_to_dict

        out: dict[str, Any] = {"columns": index_keys_to_value(self.columns, self.functions)}
        if self.unique:
            out["unique"] = True
        if self.using:
            out["using"] = self.using
        if self.opclass:
            out["opclass"] = self.opclass
        if self.name:
            out["name"] = self.name
        if self.where:
            out["where"] = predicates_to_dict(self.where)
        if self.include:
            out["include"] = list(self.include)
        if self.storage:
            out["with"] = dict(self.storage)
        return out


@dataclass(frozen=True)
class TableDef:
    """The whole desired state of one dynamic table."""

    table: str
    columns: tuple[Column, ...]
    indexes: tuple[Index, ...] = ()
    comment: str | None = None
    deprecated: bool = False
    renamed_from: str | None = None  # an online table rename (schemactl.model.online)
    checks: tuple[TableCheck, ...] = ()  # comparisons between two columns
    references: tuple[TableReference, ...] = ()  # foreign keys over several columns
    source: str = "<definition>"
    size: int = 0
    text: str = field(default="", repr=False, compare=False)

    def column(self, name: str) -> Column | None:
        for col in self.columns:
            if col.name == name:
                return col
        return None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def primary_key(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.primary_key)

    @property
    def referenced_tables(self) -> set[str]:
        """Every table a column's or the table's ``references`` names."""
        return {c.ref_table for c in self.columns if c.ref_table} | {
            r.to for r in self.references}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"table": self.table}
        if self.comment:
            out["comment"] = self.comment
        if self.deprecated:
            out["deprecated"] = True
        if self.renamed_from:
            out["renamed_from"] = self.renamed_from
        out["columns"] = [c.to_dict() for c in self.columns]
        if self.checks:
            out["checks"] = [c.to_dict() for c in self.checks]
        if self.references:
            out["references"] = [r.to_dict() for r in self.references]
        if self.indexes:
            out["indexes"] = [i.to_dict() for i in self.indexes]
        return out

    def same_state(self, other: TableDef) -> bool:
        """Equal as desired states (source file and formatting ignored)."""
        return self.to_dict() == other.to_dict()

    def line_of(self, column: str | None = None) -> int:
        """1-based line of the column's entry (or of `table:`) in the source text, 1 if unknown."""
        if not self.text:
            return 1
        pattern = (rf"""(^|[{{,\s])["']?name["']?\s*:\s*["']?{re.escape(column)}["']?\s*[,}}\n]"""
                   if column else r"""["']?table["']?\s*:""")
        m = re.search(pattern, self.text, re.MULTILINE)
        return self.text.count("\n", 0, m.start()) + 1 if m else 1


def definition_path(table: str) -> str:
    """Where a table's definition lives in a schema repository."""
    return f"dynamic_schema/{table}.yaml"


def is_definition_file(name: str) -> bool:
    return name.endswith((".yaml", ".yml", ".json")) and not name.startswith(".")


def with_source(tdef: TableDef, source: str) -> TableDef:
    return replace(tdef, source=source)
