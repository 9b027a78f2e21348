"""Reading and writing definitions: safe YAML or JSON in, the normalised model out, YAML back.

A definition is data, never code: YAML through a safe loader that also refuses
aliases (no expansion bombs), or JSON. The structure is checked here (required
keys, no unknown keys, value kinds); what the values mean (identifier format,
allowed types and defaults, references) is the safety rules' job, so that
every problem is reported as a rule violation with a hint.

The published JSON Schema (`schemactl/schemas/definition.schema.json`,
printed by `schemactl schema`) describes the same structure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace

from schemactl.errors import BadInputError
from schemactl.model.definitions import (
    Column,
    DefinitionError,
    Index,
    TableDef,
    normalise_type,
)

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any

TABLE_KEYS = {"table", "comment", "columns", "indexes", "deprecated"}
COLUMN_KEYS = {"name", "type", "nullable", "default", "primary_key", "unique", "references",
               "comment", "deprecated"}
# Online-change markers (schemactl.model.online).
TABLE_KEYS |= {"renamed_from"}
COLUMN_KEYS |= {"renamed_from", "backfill"}
INDEX_KEYS = {"columns", "unique", "using", "opclass", "name"}
# Structured additions (schemactl.model.constraints).
TABLE_KEYS |= {"checks", "references"}
COLUMN_KEYS |= {"check", "generated"}
INDEX_KEYS |= {"where", "include", "with"}


# -- parsing -------------------------------------------------------------------------


def _yaml_load(text: str, source: str) -> Any:
    import yaml

    # Anchors and aliases have no use in a definition and are how expansion bombs work:
    # refuse them. Without either, the fast C loader is safe.
    if "&" in text or "*" in text:
        loader_cls: Any = type("Loader", (_StrictLoader(),), {"source": source})
    else:
        loader_cls = type("Loader", (_FastLoader(),), {"source": source})
    try:
        return yaml.load(text, Loader=loader_cls)  # noqa: S506 - a safe loader
    except DefinitionError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        if "could not determine a constructor" in str(exc):
            problem = "YAML tags that construct objects are not allowed"
        raise DefinitionError(f"{source}{where}: {problem}",
                              hint="a definition is plain YAML or JSON data") from None
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{source}: invalid YAML ({exc})") from None


def _refuse_duplicate_keys(loader: Any, node: Any) -> None:
    """A key written twice in one mapping: YAML keeps the last silently, a reader sees the first."""
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = getattr(key_node, "value", None)
        if not isinstance(key, str):
            continue  # non-scalar keys fail the structure check later
        if key in seen:
            mark = key_node.start_mark
            raise DefinitionError(
                f"{loader.source}:{mark.line + 1}:{mark.column + 1}: duplicate key {key!r}",
                hint="write each key once")
        seen.add(key)


_FAST_LOADER: Any = None


def _FastLoader() -> Any:  # noqa: N802 - a class factory
    """The C safe loader (when built) with duplicate keys refused."""
    global _FAST_LOADER
    if _FAST_LOADER is None:
        import yaml

        class FastSafeLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
            source = "<definition>"

            def construct_mapping(self, node: Any, deep: bool = False) -> Any:
                _refuse_duplicate_keys(self, node)
                return super().construct_mapping(node, deep=deep)

        _FAST_LOADER = FastSafeLoader
    return _FAST_LOADER


_STRICT_LOADER: Any = None


def _StrictLoader() -> Any:  # noqa: N802 - a class factory
    global _STRICT_LOADER
    if _STRICT_LOADER is None:
        import yaml

        class StrictSafeLoader(yaml.SafeLoader):
            source = "<definition>"

            def construct_mapping(self, node: Any, deep: bool = False) -> Any:
                _refuse_duplicate_keys(self, node)
                return super().construct_mapping(node, deep=deep)

            def compose_node(self, parent: Any, index: Any) -> Any:
                if self.check_event(yaml.AliasEvent):
                    mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                    raise DefinitionError(
                        f"{self.source}:{mark.line + 1}:{mark.column + 1}: YAML aliases are "
                        "not allowed in a definition",
                        hint="write each value out; anchors and aliases are refused")
                return super().compose_node(parent, index)

        _STRICT_LOADER = StrictSafeLoader
    return _STRICT_LOADER


def _json_object(source: str) -> Any:
    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj:  # json.loads would keep the last one silently
                raise DefinitionError(f"{source}: duplicate key {key!r} in a JSON object",
                                      hint="write each key once")
            obj[key] = value
        return obj
    return build


def parse_data(data: bytes | str, source: str = "<definition>") -> Any:
    """Decode bytes (UTF-8 only) and parse JSON or YAML into plain Python data."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DefinitionError(f"{source}: not UTF-8 (invalid byte at offset {exc.start})",
                                  hint="save the definition as UTF-8") from None
    else:
        text = data
    if "\x00" in text:
        raise DefinitionError(f"{source}: contains a NUL character")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            return json.loads(text, object_pairs_hook=_json_object(source)), text
        except json.JSONDecodeError as exc:
            raise DefinitionError(f"{source}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"
                                  ) from None
        except RecursionError:
            raise DefinitionError(f"{source}: invalid JSON: nested too deeply",
                                  hint="a definition is a flat mapping of a table's columns"
                                  ) from None
    return _yaml_load(text, source), text


def _need(kind: type | tuple[type, ...], value: Any, what: str, source: str) -> Any:
    if isinstance(value, bool) and kind in (int, (int, float)):
        raise DefinitionError(f"{source}: {what} must be a number, not a boolean")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        expected = {"str": "a string", "bool": "true or false", "list": "a list",
                    "dict": "a mapping"}.get(names, names)
        raise DefinitionError(f"{source}: {what} must be {expected}, "
                              f"not {type(value).__name__}")
    return value


def _unknown(keys: Iterable[str], allowed: set[str], where: str, source: str) -> None:
    extra = sorted(str(k) for k in keys if k not in allowed)
    if extra:
        raise DefinitionError(f"{source}: unknown key {extra[0]!r} in {where}",
                              hint=f"allowed keys: {', '.join(sorted(allowed))}")


def from_dict(obj: Any, source: str = "<definition>", text: str = "", size: int = 0) -> TableDef:
    """Build a :class:`TableDef` from parsed data, checking its structure.

    Raises:
        DefinitionError: missing or unknown keys, values of the wrong kind.
    """
    if not isinstance(obj, Mapping):
        raise DefinitionError(f"{source}: a definition is a mapping with `table` and `columns`")
    _unknown(obj.keys(), TABLE_KEYS, "the table", source)
    if "table" not in obj:
        raise DefinitionError(f"{source}: missing key 'table'")
    if "columns" not in obj:
        raise DefinitionError(f"{source}: missing key 'columns'")
    table = _need(str, obj["table"], "table", source)
    raw_cols = _need(list, obj["columns"], "columns", source)
    columns = []
    for i, rc in enumerate(raw_cols):
        where = f"columns[{i}]"
        _need(dict, rc, where, source)
        _unknown(rc.keys(), COLUMN_KEYS, where, source)
        for key in ("name", "type"):
            if key not in rc:
                raise DefinitionError(f"{source}: {where} is missing {key!r}")
        name = _need(str, rc["name"], f"{where}.name", source)
        type_ = _need(str, rc["type"], f"{where}.type", source)
        default = rc.get("default")
        if default is not None and not isinstance(default, (str, int, float, bool)):
            raise DefinitionError(f"{source}: {where}.default must be a scalar "
                                  "(string, number, boolean or null)",
                                  hint="for a jsonb default write the JSON as a string: '[]'")
        for key in ("nullable", "primary_key", "unique", "deprecated"):
            if key in rc:
                _need(bool, rc[key], f"{where}.{key}", source)
        if rc.get("comment") is not None:
            _need(str, rc["comment"], f"{where}.comment", source)
        structured = _column_structures(rc, f"{source}: {where}")
        primary = bool(rc.get("primary_key", False))
        renamed_from, backfill = _online_markers(rc, where, source)
        columns.append(Column(
            name=name, type=normalise_type(type_),
            nullable=False if primary else bool(rc.get("nullable", True)),
            default=default, has_default=default is not None,
            primary_key=primary, unique=bool(rc.get("unique", False)),
            comment=rc.get("comment"), **structured,
            deprecated=bool(rc.get("deprecated", False)),
            renamed_from=renamed_from, backfill=backfill, has_backfill="backfill" in rc,
        ))
    indexes = []
    raw_indexes = obj.get("indexes")
    # null means no indexes; any other non-list (false, "", 0) is refused like the schema does
    raw_indexes = [] if raw_indexes is None else raw_indexes
    for i, ri in enumerate(_need(list, raw_indexes, "indexes", source)):
        where = f"indexes[{i}]"
        _need(dict, ri, where, source)
        _unknown(ri.keys(), INDEX_KEYS, where, source)
        if "columns" not in ri:
            raise DefinitionError(f"{source}: {where} is missing 'columns'")
        _need(list, ri["columns"], f"{where}.columns", source)
        cols, functions = _index_keys(ri["columns"], f"{source}: {where}")
        for key in ("using", "opclass", "name"):
            if ri.get(key) is not None:
                _need(str, ri[key], f"{where}.{key}", source)
        if "unique" in ri:
            _need(bool, ri["unique"], f"{where}.unique", source)
        indexes.append(Index(columns=cols, functions=functions,
                             unique=bool(ri.get("unique", False)),
                             using=(ri.get("using") or None) and str(ri["using"]).lower(),
                             opclass=ri.get("opclass"), name=ri.get("name"),
                             **_index_structures(ri, f"{source}: {where}")))
    comment = obj.get("comment")
    if comment is not None:
        _need(str, comment, "comment", source)
    if "deprecated" in obj:
        _need(bool, obj["deprecated"], "deprecated", source)
    table_renamed_from = obj.get("renamed_from")
    if table_renamed_from is not None:
        _need(str, table_renamed_from, "renamed_from", source)
    return TableDef(table=table, columns=tuple(columns), indexes=tuple(indexes),
                    comment=comment, deprecated=bool(obj.get("deprecated", False)),
                    renamed_from=table_renamed_from, source=source, size=size, text=text,
                    checks=_table_checks(obj, source) if obj.get("checks") is not None else (),
                    references=_table_references(obj, source)
                    if obj.get("references") is not None else ())


# -- structured additions (schemactl.model.constraints) ------------------------------


def _structure(name: str) -> Any:
    """`schemactl.model.constraints`' reader ``name``, its shape problems a DefinitionError."""

    def read(*args: Any) -> Any:
        from schemactl.model import constraints

        try:
            return getattr(constraints, name)(*args)
        except constraints.StructureError as exc:
            raise DefinitionError(exc.message, hint=exc.hint) from None
    return read


_structured_column = _structure("column_structures")
_structured_index = _structure("index_structures")
_structured_keys = _structure("index_keys")
_table_checks = _structure("table_checks")
_table_references = _structure("table_references")

# Most columns and indexes have none of the structured additions: they are read here
# without importing schemactl.model.constraints (a cold validate's import, 4 ms).


def _column_structures(rc: Mapping[str, Any], where: str) -> dict[str, Any]:
    ref = rc.get("references")
    if rc.get("check") is None and rc.get("generated") is None and \
            (ref is None or isinstance(ref, str)):
        return {"references": ref}
    return dict(_structured_column(rc, where))


def _index_structures(ri: Mapping[str, Any], where: str) -> dict[str, Any]:
    if all(ri.get(key) is None for key in ("where", "include", "with")):
        return {}
    return dict(_structured_index(ri, where))


def _index_keys(raw: Any, where: str) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
    if isinstance(raw, list) and all(isinstance(entry, str) for entry in raw):
        return tuple(raw), ()
    keys: tuple[tuple[str, ...], tuple[str | None, ...]] = _structured_keys(raw, where)
    return keys


def _online_markers(rc: Mapping[str, Any], where: str, source: str) -> tuple[str | None, Any]:
    """A column's `renamed_from` (a name) and `backfill` (a scalar literal or null)."""
    renamed_from = rc.get("renamed_from")
    if renamed_from is not None:
        _need(str, renamed_from, f"{where}.renamed_from", source)
    backfill = rc.get("backfill")
    if backfill is not None and not isinstance(backfill, (str, int, float, bool)):
        raise DefinitionError(f"{source}: {where}.backfill must be a scalar "
                              "(string, number, boolean or null)",
                              hint="backfill is the literal existing NULLs become")
    return renamed_from, backfill


def parse_definition(data: bytes | str, source: str = "<definition>") -> TableDef:
    """Parse one definition (YAML or JSON text) into a :class:`TableDef`.

    Raises:
        DefinitionError: the text is not valid UTF-8/YAML/JSON or not a definition.
    """
    size = len(data.encode() if isinstance(data, str) else data)
    obj, text = parse_data(data, source)
    return from_dict(obj, source=source, text=text, size=size)


def dump_definition(tdef: TableDef) -> str:
    """Deterministic YAML for a definition: one flow mapping per column, keys in order."""
    import yaml

    def flow(d: dict[str, Any]) -> str:
        return yaml.safe_dump(d, default_flow_style=True, sort_keys=False, width=10_000,
                              allow_unicode=True).strip()

    lines = [f"table: {tdef.table}"]
    if tdef.comment:
        lines.append(flow({"comment": tdef.comment})[1:-1])
    if tdef.deprecated:
        lines.append("deprecated: true")
    if tdef.renamed_from:
        lines.append(flow({"renamed_from": tdef.renamed_from})[1:-1])
    lines.append("columns:")
    lines += [f"  - {flow(c.to_dict())}" for c in tdef.columns]
    if tdef.checks:
        lines.append("checks:")
        lines += [f"  - {flow(c.to_dict())}" for c in tdef.checks]
    if tdef.references:
        lines.append("references:")
        lines += [f"  - {flow(r.to_dict())}" for r in tdef.references]
    if tdef.indexes:
        lines.append("indexes:")
        lines += [f"  - {flow(i.to_dict())}" for i in tdef.indexes]
    return "\n".join(lines) + "\n"


def add_base_fields(tdef: TableDef, base_columns: Iterable[Mapping[str, Any]]) -> TableDef:
    """Put the base-field columns a definition lacks at its start, in the configured order.

    An agent can then send only its own columns. A column already named like a base
    field is kept as written (SC302 judges its shape); the result is validated like any
    definition.

    Args:
        tdef: the definition as sent.
        base_columns: the configured base fields as column mappings
            (`schemactl.model.config.BaseField.as_column`).
    """
    present = set(tdef.column_names)
    missing = [dict(c) for c in base_columns if c["name"] not in present]
    if not missing:
        return tdef
    for col in missing:
        # The configuration holds defaults as text; a boolean's is written as YAML writes it.
        if normalise_type(str(col["type"])) == "boolean" and col.get("default") in ("true",
                                                                                 "false"):
            col["default"] = col["default"] == "true"
    # Parsed like any sent column, so the inserted ones are normalised the same way.
    added = from_dict({"table": tdef.table, "columns": missing}, source=tdef.source).columns
    return replace(tdef, columns=added + tdef.columns)


def definition_size(definition: Any) -> int:
    """Bytes of a definition as compact UTF-8 JSON (what SC406 bounds).

    Raises:
        BadInputError: the value cannot be written as JSON.
    """
    try:
        text = json.dumps(definition, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise BadInputError(f"the definition is not plain JSON data ({exc})",
                            hint="send a JSON object of strings, numbers, booleans, lists "
                                 "and objects") from None
    return len(text.encode("utf-8", errors="surrogatepass"))
