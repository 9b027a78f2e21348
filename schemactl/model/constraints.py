"""The structured parts of a definition beyond columns: checks, foreign-key actions,
composite foreign keys, index predicates and expression keys, storage parameters and
generated columns (DESIGN.md, Beyond the basics).

Each is a frozen dataclass of plain values with ``to_dict`` (the definition's own form)
and ``from_dict`` (structure only: keys and value kinds, raising :class:`StructureError`;
what the values mean is the safety rules' job, SC403-SC407). None of them holds SQL:
`schemactl.codegen.expressions` writes it from quoted identifiers and literals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any

Scalar = str | int | float | bool | None

# Foreign-key actions a definition may name (the default is no_action).
FK_ACTIONS = ("cascade", "set_null", "restrict", "no_action")
# Comparison operators a table check may use between two columns.
CHECK_OPERATORS = ("=", "<>", "<", "<=", ">", ">=")
# Index storage parameters a definition may set (by method: SC407), with their ranges.
STORAGE_PARAMETERS = {"m": (2, 100), "ef_construction": (4, 1000), "lists": (1, 32768),
                      "fillfactor": (10, 100)}
STORAGE_METHODS = {"m": ("hnsw",), "ef_construction": ("hnsw",), "lists": ("ivfflat",),
                   "fillfactor": ("btree", "hash", "gist")}
CHECK_KEYS = ("min", "max", "min_length", "max_length", "pattern", "allowed")
# Functions an index key may apply to one column (``columns: [{lower: email}]``): each is
# IMMUTABLE (PostgreSQL refuses anything else in an index) and takes one text column.
INDEX_FUNCTIONS = ("lower", "upper")


class StructureError(ValueError):
    """A structured part of the wrong shape; `schemactl.model.parsing` reports it (exit 2)."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def _error(message: str, hint: str = "") -> Exception:
    return StructureError(message, hint)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _unknown(obj: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    extra = sorted(str(k) for k in obj if k not in allowed)
    if extra:
        raise _error(f"{where}: unknown key {extra[0]!r}",
                     hint=f"allowed keys: {', '.join(allowed)}")


@dataclass(frozen=True)
class ColumnCheck:
    """``check: {min, max, min_length, max_length, pattern, allowed}`` on one column."""

    min: int | float | None = None
    max: int | float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    allowed: tuple[str | int | float | bool, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in CHECK_KEYS:
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if key == "allowed" else value
        return out

    @classmethod
    def from_dict(cls, obj: Any, where: str) -> ColumnCheck:
        if not isinstance(obj, Mapping) or not obj:
            raise _error(f"{where} must be a mapping of {', '.join(CHECK_KEYS)}",
                         hint="e.g. check: {min: 0, max: 150}")
        _unknown(obj, CHECK_KEYS, where)
        for key in ("min", "max"):
            if obj.get(key) is not None and not _is_number(obj[key]):
                raise _error(f"{where}.{key} must be a number")
        for key in ("min_length", "max_length"):
            value = obj.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise _error(f"{where}.{key} must be a whole number")
        if obj.get("pattern") is not None and not isinstance(obj["pattern"], str):
            raise _error(f"{where}.pattern must be a string (a POSIX regular expression)")
        allowed = obj.get("allowed")
        if allowed is not None:
            if not isinstance(allowed, list) or not allowed or not all(
                    isinstance(v, (str, int, float, bool)) for v in allowed):
                raise _error(f"{where}.allowed must be a non-empty list of literals",
                             hint="e.g. allowed: [active, archived]")
        return cls(min=obj.get("min"), max=obj.get("max"), min_length=obj.get("min_length"),
                   max_length=obj.get("max_length"), pattern=obj.get("pattern"),
                   allowed=tuple(allowed) if allowed is not None else None)


@dataclass(frozen=True)
class TableCheck:
    """``checks: [{name, left, op, right}]``: a comparison between two columns of a table."""

    left: str
    op: str
    right: str
    name: str | None = None

    def check_name(self, table: str) -> str:
        from schemactl.model.naming import short_name

        if self.name:
            return self.name
        word = {"=": "eq", "<>": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
        return short_name(f"ck_{table}_{self.left}_{word.get(self.op, 'op')}_{self.right}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name} if self.name else {}
        out.update({"left": self.left, "op": self.op, "right": self.right})
        return out

    @classmethod
    def from_dict(cls, obj: Any, where: str) -> TableCheck:
        if not isinstance(obj, Mapping):
            raise _error(f"{where} must be a mapping {{name, left, op, right}}")
        _unknown(obj, ("name", "left", "op", "right"), where)
        for key in ("left", "op", "right"):
            if not isinstance(obj.get(key), str):
                raise _error(f"{where}.{key} must be a string",
                             hint="e.g. {left: ended_at, op: '>=', right: started_at}")
        if obj.get("name") is not None and not isinstance(obj["name"], str):
            raise _error(f"{where}.name must be a string")
        op = "<>" if obj["op"] == "!=" else obj["op"]
        if op not in CHECK_OPERATORS:
            raise _error(f"{where}.op {obj['op']!r} is not a comparison operator",
                         hint=f"use one of {' '.join(CHECK_OPERATORS)}")
        return cls(left=obj["left"], op=op, right=obj["right"], name=obj.get("name"))


@dataclass(frozen=True)
class IndexPredicate:
    """One conjunct of an index's ``where``: ``column = literal``, IS NULL or IS NOT NULL."""

    column: str
    op: str  # "=", "is_null" or "is_not_null"
    value: Scalar = None

    def to_value(self) -> Any:
        if self.op == "=":
            return self.value
        return {"is_null": self.op == "is_null"}

    @classmethod
    def from_mapping(cls, obj: Any, where: str) -> tuple[IndexPredicate, ...]:
        if not isinstance(obj, Mapping) or not obj:
            raise _error(f"{where} must be a mapping of column → literal",
                         hint="e.g. where: {is_deleted: false}")
        out = []
        for column, value in obj.items():
            if not isinstance(column, str):
                raise _error(f"{where}: column names are strings")
            if isinstance(value, Mapping):
                if set(value) != {"is_null"} or not isinstance(value["is_null"], bool):
                    raise _error(f"{where}.{column} must be a literal or {{is_null: true|false}}")
                out.append(cls(column, "is_null" if value["is_null"] else "is_not_null"))
            elif value is None:
                raise _error(f"{where}.{column}: write {{is_null: true}} for IS NULL")
            elif isinstance(value, (str, int, float, bool)):
                out.append(cls(column, "=", value))
            else:
                raise _error(f"{where}.{column} must be a literal or {{is_null: true|false}}")
        return tuple(sorted(out, key=lambda p: p.column))


def predicates_to_dict(preds: tuple[IndexPredicate, ...]) -> dict[str, Any]:
    return {p.column: p.to_value() for p in preds}


def storage_from_dict(obj: Any, where: str) -> tuple[tuple[str, int], ...]:
    """An index's ``with: {m: 16, ef_construction: 64}`` as sorted (name, value) pairs."""
    if not isinstance(obj, Mapping) or not obj:
        raise _error(f"{where} must be a mapping of storage parameters",
                     hint="e.g. with: {m: 16, ef_construction: 64}")
    out = []
    for key, value in obj.items():
        if key not in STORAGE_PARAMETERS:
            raise _error(f"{where}: unknown storage parameter {key!r}",
                         hint=f"allowed: {', '.join(STORAGE_PARAMETERS)}")
        if not isinstance(value, int) or isinstance(value, bool):
            raise _error(f"{where}.{key} must be a whole number")
        out.append((key, value))
    return tuple(sorted(out))


@dataclass(frozen=True)
class Generated:
    """A stored generated column from a whitelisted form.

    ``{tsvector: [title, body], config: simple}`` (``to_tsvector`` over the columns) or
    ``{lower: email}``.
    """

    kind: str  # "tsvector" or "lower"
    columns: tuple[str, ...]
    config: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "lower":
            return {"lower": self.columns[0]}
        out: dict[str, Any] = {"tsvector": list(self.columns)}
        if self.config:
            out["config"] = self.config
        return out

    @classmethod
    def from_dict(cls, obj: Any, where: str) -> Generated:
        hint = "e.g. generated: {tsvector: [title, body], config: simple} or {lower: email}"
        if not isinstance(obj, Mapping):
            raise _error(f"{where} must be a mapping", hint=hint)
        if "lower" in obj:
            _unknown(obj, ("lower",), where)
            if not isinstance(obj["lower"], str):
                raise _error(f"{where}.lower must name one column", hint=hint)
            return cls("lower", (obj["lower"],))
        if "tsvector" in obj:
            _unknown(obj, ("tsvector", "config"), where)
            cols = obj["tsvector"]
            if not isinstance(cols, list) or not cols or not all(isinstance(c, str)
                                                                 for c in cols):
                raise _error(f"{where}.tsvector must be a non-empty list of columns", hint=hint)
            config = obj.get("config", "simple")
            if not isinstance(config, str):
                raise _error(f"{where}.config must be a string (a text search configuration)")
            return cls("tsvector", tuple(cols), config)
        raise _error(f"{where} must be {{tsvector: [...]}} or {{lower: column}}", hint=hint)


def reference_from_value(value: Any, where: str) -> tuple[str | None, str | None, str | None]:
    """``references`` as (``table.column``, on_delete, on_update); no_action reads as None."""
    if value is None or isinstance(value, str):
        return value, None, None
    if not isinstance(value, Mapping):
        raise _error(f"{where} must be table.column or {{to, on_delete, on_update}}")
    _unknown(value, ("to", "on_delete", "on_update"), where)
    if not isinstance(value.get("to"), str):
        raise _error(f"{where}.to must be table.column", hint="e.g. {to: teams.id, "
                                                              "on_delete: set_null}")
    actions = []
    for key in ("on_delete", "on_update"):
        action = value.get(key)
        if action is not None and not isinstance(action, str):
            raise _error(f"{where}.{key} must be one of {', '.join(FK_ACTIONS)}")
        action = action.lower() if action else None
        if action is not None and action not in FK_ACTIONS:
            raise _error(f"{where}.{key} {action!r} is not a foreign-key action",
                         hint=f"use one of {', '.join(FK_ACTIONS)}")
        actions.append(None if action == "no_action" else action)
    return value["to"], actions[0], actions[1]


@dataclass(frozen=True)
class TableReference:
    """``references: [{columns, to, to_columns, on_delete, on_update}]`` on a table: a
    foreign key over several columns to a whole composite key of ``to``."""

    columns: tuple[str, ...]
    to: str
    to_columns: tuple[str, ...]
    on_delete: str | None = None
    on_update: str | None = None

    @property
    def identity(self) -> tuple[tuple[str, ...], str, tuple[str, ...]]:
        """What makes it the same key (its actions may change: a lock-safe replacement)."""
        return self.columns, self.to, self.to_columns

    def constraint_name(self, table: str) -> str:
        """``fk_<table>_<col>_<col>_<to>`` with the actions as a suffix, as a column's key."""
        from schemactl.model.naming import fk_name

        return fk_name(table, "_".join(self.columns), self.to, self.on_delete, self.on_update)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"columns": list(self.columns), "to": self.to,
                               "to_columns": list(self.to_columns)}
        if self.on_delete:
            out["on_delete"] = self.on_delete
        if self.on_update:
            out["on_update"] = self.on_update
        return out

    @classmethod
    def from_dict(cls, obj: Any, where: str) -> TableReference:
        hint = ("e.g. {columns: [tenant_id, order_id], to: orders, to_columns: [tenant_id, id], "
                "on_delete: cascade}")
        if not isinstance(obj, Mapping):
            raise _error(f"{where} must be a mapping {{columns, to, to_columns}}", hint=hint)
        _unknown(obj, ("columns", "to", "to_columns", "on_delete", "on_update"), where)
        for key in ("columns", "to_columns"):
            value = obj.get(key)
            if not isinstance(value, list) or not value or not all(isinstance(c, str)
                                                                   for c in value):
                raise _error(f"{where}.{key} must be a non-empty list of column names",
                             hint=hint)
        if len(obj["columns"]) < 2:
            raise _error(f"{where}: a reference from one column is written on the column",
                         hint=f"e.g. {{name: {obj['columns'][0]}, type: uuid, references: "
                              f"{obj.get('to', 'orders')}.id}}")
        if not isinstance(obj.get("to"), str):
            raise _error(f"{where}.to must name a table", hint=hint)
        _, on_delete, on_update = reference_from_value(
            {"to": "", **{k: obj[k] for k in ("on_delete", "on_update") if k in obj}}, where)
        return cls(tuple(obj["columns"]), obj["to"], tuple(obj["to_columns"]), on_delete,
                   on_update)


def reference_to_value(to: str, on_delete: str | None, on_update: str | None) -> Any:
    if not on_delete and not on_update:
        return to
    out: dict[str, Any] = {"to": to}
    if on_delete:
        out["on_delete"] = on_delete
    if on_update:
        out["on_update"] = on_update
    return out


# -- the readers schemactl.model.parsing calls --------------------------------------


def column_structures(rc: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A column's `references` (short or structured), `check` and `generated`."""
    to, on_delete, on_update = reference_from_value(rc.get("references"),
                                                    f"{where}.references")
    check = rc.get("check")
    generated = rc.get("generated")
    return {"references": to, "on_delete": on_delete, "on_update": on_update,
            "check": ColumnCheck.from_dict(check, f"{where}.check") if check is not None
            else None,
            "generated": Generated.from_dict(generated, f"{where}.generated")
            if generated is not None else None}


def index_keys(raw: Any, where: str) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
    """An index's ``columns`` as (column names, the function applied to each or None).

    An entry is a column name or ``{lower: column}`` / ``{upper: column}``: an expression
    index from the whitelist :data:`INDEX_FUNCTIONS`, never SQL. The functions are ``()``
    when every entry is a plain column (the model of an index without expressions).
    """
    hint = f"e.g. columns: [{{lower: email}}]; functions: {', '.join(INDEX_FUNCTIONS)}"
    if not isinstance(raw, list):
        raise _error(f"{where}.columns must be a list", hint=hint)
    names: list[str] = []
    functions: list[str | None] = []
    for entry in raw:
        if isinstance(entry, str):
            names.append(entry)
            functions.append(None)
            continue
        if not isinstance(entry, Mapping) or len(entry) != 1:
            raise _error(f"{where}.columns[] must be a column name or {{function: column}}",
                         hint=hint)
        ((fn, col),) = entry.items()
        if fn not in INDEX_FUNCTIONS:
            raise _error(f"{where}.columns[]: {fn!r} is not an index function", hint=hint)
        if not isinstance(col, str):
            raise _error(f"{where}.columns[].{fn} must name one column", hint=hint)
        names.append(col)
        functions.append(fn)
    return tuple(names), (tuple(functions) if any(functions) else ())


def index_keys_to_value(columns: tuple[str, ...], functions: tuple[str | None, ...]
                        ) -> list[Any]:
    if not functions:
        return list(columns)
    return [c if f is None else {f: c} for c, f in zip(columns, functions, strict=True)]


def index_structures(ri: Mapping[str, Any], where: str) -> dict[str, Any]:
    """An index's `where`, `include` and `with`."""
    out: dict[str, Any] = {}
    if ri.get("where") is not None:
        out["where"] = IndexPredicate.from_mapping(ri["where"], f"{where}.where")
    if ri.get("include") is not None:
        include = ri["include"]
        if not isinstance(include, list) or not all(isinstance(c, str) for c in include):
            raise _error(f"{where}.include must be a list of column names")
        out["include"] = tuple(include)
    if ri.get("with") is not None:
        out["storage"] = storage_from_dict(ri["with"], f"{where}.with")
    return out


def table_references(obj: Mapping[str, Any], source: str) -> tuple[Any, ...]:
    raw = obj.get("references")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _error(f"{source}: references must be a list",
                     hint="e.g. references: [{columns: [tenant_id, order_id], to: orders, "
                          "to_columns: [tenant_id, id]}]")
    return tuple(TableReference.from_dict(r, f"{source}: references[{i}]")
                 for i, r in enumerate(raw))


def table_checks(obj: Mapping[str, Any], source: str) -> tuple[Any, ...]:
    raw = obj.get("checks")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _error(f"{source}: checks must be a list")
    return tuple(TableCheck.from_dict(c, f"{source}: checks[{i}]") for i, c in enumerate(raw))
