"""Online-change markers: parsed, written back, described by the JSON Schema (no database)."""

from __future__ import annotations

import pytest

from schemactl.model.online import online_cast, online_changes
from schemactl.model.parsing import dump_definition, from_dict, parse_definition

BEFORE = {"table": "notes", "columns": [
    {"name": "id", "type": "uuid", "primary_key": True},
    {"name": "title", "type": "varchar(200)"},
    {"name": "score", "type": "integer"},
    {"name": "body", "type": "text"}]}
AFTER = {"table": "notes", "columns": [
    {"name": "id", "type": "uuid", "primary_key": True},
    {"name": "headline", "type": "varchar(200)", "renamed_from": "title"},
    {"name": "score", "type": "bigint"},
    {"name": "body", "type": "text", "nullable": False, "backfill": ""}]}


def test_markers_round_trip_and_match_the_schema() -> None:
    import jsonschema

    from schemactl import api

    after = from_dict(AFTER)
    again = parse_definition(dump_definition(after))
    assert again.same_state(after)
    assert again.column("headline").renamed_from == "title"  # type: ignore[union-attr]
    body = again.column("body")
    assert body is not None and body.has_backfill and body.backfill == ""
    jsonschema.Draft202012Validator(api.definition_schema()).validate(AFTER)
    renamed = {**AFTER, "table": "memos", "renamed_from": "notes"}
    jsonschema.Draft202012Validator(api.definition_schema()).validate(renamed)
    assert parse_definition(dump_definition(from_dict(renamed))).renamed_from == "notes"


def test_online_changes_follow_the_markers() -> None:
    changes = {c.new.name: c.kinds() for c in online_changes(from_dict(BEFORE),
                                                              from_dict(AFTER))}
    assert changes == {"headline": ("rename",), "score": ("retype",),
                       "body": ("set_not_null",)}


@pytest.mark.parametrize(("old", "new", "checked"), [
    ("smallint", "integer", False), ("integer", "bigint", False), ("bigint", "numeric", False),
    ("numeric(10,2)", "numeric(12,2)", False), ("real", "double precision", False),
    ("varchar(200)", "varchar(100)", True), ("text", "varchar(50)", True),
    ("bigint", "integer", None), ("text", "integer", None), ("varchar(10)", "varchar(20)", None),
    ("integer", "numeric(5,0)", None), ("integer[]", "bigint[]", None)])
def test_cast_whitelist(old: str, new: str, checked: bool | None) -> None:
    cast = online_cast(old, new)
    assert (cast.checked if cast else None) == checked
