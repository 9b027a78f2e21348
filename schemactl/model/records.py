"""The normalised model as plain data: TableDef, Column and Index to and from dicts.

Generic over the dataclass fields, so a field added to the model needs no change here;
:data:`MODEL_SCHEMA` is derived from the fields (names and annotations), so a cache
written before such a change no longer matches and is rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import types
import typing
from functools import cache

from schemactl.model.constraints import (
    ColumnCheck,
    Generated,
    IndexPredicate,
    TableCheck,
    TableReference,
)
from schemactl.model.definitions import Column, Index, TableDef

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any

MODEL_CLASSES: tuple[type, ...] = (TableDef, Column, Index, ColumnCheck, Generated,
                                   IndexPredicate, TableCheck, TableReference)


@cache
def _hints(cls: Any) -> dict[str, Any]:
    # The model modules import these names for the type checker only (a cold validate
    # imports neither typing nor the constraint classes): supply them here.
    names = {c.__name__: c for c in MODEL_CLASSES} | {"Any": typing.Any}
    return typing.get_type_hints(cls, localns=names)


def _nested(annotation: Any) -> tuple[bool, type | None]:
    """(is a tuple, the model class of its items or of the value itself, if any)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        # ``X | None``: the value is None or an X.
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _nested(args[0])
    if annotation in MODEL_CLASSES:
        return False, annotation
    if typing.get_origin(annotation) is tuple:
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        item = args[0] if len(args) == 1 else None
        return True, item if item in MODEL_CLASSES else None
    return False, None


_PLANS: dict[type, tuple[tuple[str, bool, type | None], ...]] = {}


def _plan(cls: type) -> tuple[tuple[str, bool, type | None], ...]:
    """(field, is a tuple, model class inside) per field, worked out once per class."""
    plan = _PLANS.get(cls)
    if plan is None:
        hints = _hints(cls)
        plan = _PLANS[cls] = tuple((f.name, *_nested(hints[f.name]))
                                   for f in dataclasses.fields(cls))
    return plan


def to_record(obj: Any) -> dict[str, Any]:
    """Every field of a model object as JSON-ready data (tuples become lists)."""
    out: dict[str, Any] = {}
    for name, is_tuple, model in _plan(type(obj)):
        value = getattr(obj, name)
        if model is not None and value is not None:
            value = [to_record(v) for v in value] if is_tuple else to_record(value)
        elif is_tuple and value is not None:
            value = list(value)
        out[name] = value
    return out


def from_record(cls: type[Any], data: dict[str, Any]) -> Any:
    """The model object a :func:`to_record` dict describes.

    Raises:
        ValueError: the dict's keys are not exactly the class's fields (a foreign record).
    """
    plan = _plan(cls)
    if len(data) != len(plan):
        raise ValueError(f"a {cls.__name__} record with other fields")
    kwargs: dict[str, Any] = {}
    for name, is_tuple, model in plan:
        if name not in data:
            raise ValueError(f"a {cls.__name__} record without {name!r}")
        value = data[name]
        if value is not None:
            if model is not None:
                value = (tuple(from_record(model, v) for v in value) if is_tuple
                         else from_record(model, value))
            elif is_tuple:
                value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def table_from_record(data: dict[str, Any]) -> TableDef:
    tdef = from_record(TableDef, data)
    assert isinstance(tdef, TableDef)
    return tdef


def _schema_text() -> str:
    parts = []
    for cls in MODEL_CLASSES:
        hints = _hints(cls)
        parts.append(cls.__name__ + "(" + ",".join(
            f"{f.name}:{hints[f.name]!r}" for f in dataclasses.fields(cls)) + ")")
    return ";".join(parts)


@cache
def model_schema() -> str:
    """A short digest of the model's fields: it changes whenever a field is added or retyped."""
    return hashlib.sha256(_schema_text().encode()).hexdigest()[:16]
