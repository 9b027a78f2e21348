"""Issue 14: the structured additions round-trip through the definition form (to_dict /
from_dict, the YAML writer) and the normalised-model records the parse cache stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemactl.model.definitions import DefinitionError
from schemactl.model.parsing import dump_definition, from_dict, parse_definition
from schemactl.model.records import table_from_record, to_record

FULL = """table: members
columns:
  - {name: id, type: uuid, primary_key: true}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: email, type: citext, nullable: false}
  - {name: age, type: integer, check: {min: 0, max: 150}}
  - {name: status, type: varchar(20), check: {allowed: [active, archived]}}
  - {name: handle, type: varchar(40), check: {min_length: 3, pattern: '^[a-z0-9_]+$'}}
  - {name: team_id, type: uuid, references: {to: teams.id, on_delete: set_null}}
  - {name: search, type: tsvector, generated: {tsvector: [email, handle], config: simple}}
  - {name: email_lower, type: text, generated: {lower: email}}
  - {name: started_at, type: timestamptz}
  - {name: ended_at, type: timestamptz}
checks:
  - {name: ck_members_ended_after_started, left: ended_at, op: '>=', right: started_at}
indexes:
  - {columns: [email], unique: true, where: {is_deleted: false, ended_at: {is_null: true}}}
  - {columns: [team_id], include: [status], with: {fillfactor: 70}}
  - {columns: [status, {lower: handle}], unique: true}
"""


def test_round_trips() -> None:
    tdef = parse_definition(FULL)
    assert from_dict(tdef.to_dict()).same_state(tdef)
    assert parse_definition(dump_definition(tdef)).same_state(tdef)
    back = table_from_record(json.loads(json.dumps(to_record(tdef))))
    assert back == tdef
    assert back.indexes[1].storage == (("fillfactor", 70),)
    assert back.column("status").check.allowed == ("active", "archived")  # type: ignore[union-attr]
    # The short reference form stays short; no_action is the default and reads as none.
    short = parse_definition("table: t\ncolumns:\n  - {name: a, type: uuid, references: "
                             "{to: p.id, on_delete: no_action}}\n")
    assert short.columns[0].to_dict()["references"] == "p.id"
    # An expression key: the column by name plus its function; plain indexes have none.
    assert (back.indexes[2].columns, back.indexes[2].functions) == (("status", "handle"),
                                                                    (None, "lower"))
    assert back.indexes[2].index_name("members") == "uq_members_status_lower_handle"
    assert back.indexes[1].functions == ()


@pytest.mark.parametrize("column, message", [
    ("{name: a, type: uuid, references: {to: p.id, on_delete: explode}}", "not a foreign-key"),
    ("{name: a, type: int, check: {min: '3'}}", "must be a number"),
    ("{name: a, type: int, check: {between: 3}}", "unknown key"),
    ("{name: a, type: text, check: {allowed: []}}", "non-empty list"),
    ("{name: a, type: tsvector, generated: {sql: 'now()'}}", "tsvector"),
])
def test_malformed_structures_are_bad_input(column: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        parse_definition(f"table: t\ncolumns:\n  - {column}\n")


@pytest.mark.parametrize("extra, message", [
    ("checks:\n  - {left: a, op: '; drop', right: b}\n", "not a comparison operator"),
    ("indexes:\n  - {columns: [a], with: {autovacuum_enabled: 0}}\n", "unknown storage"),
    ("indexes:\n  - {columns: [a], where: {a: null}}\n", "is_null"),
    ("indexes:\n  - {columns: [{md5: a}]}\n", "not an index function"),
    ("indexes:\n  - {columns: [{lower: a, upper: a}]}\n", "column name or"),
    ("indexes:\n  - {columns: [{lower: [a]}]}\n", "must name one column"),
])
def test_no_sql_gets_through_the_structure(extra: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        parse_definition("table: t\ncolumns:\n  - {name: a, type: int}\n" + extra)


def test_the_published_json_schema_describes_the_same_structure() -> None:
    import jsonschema
    import yaml

    from schemactl.resources import DEFINITION_SCHEMA

    schema = json.loads(DEFINITION_SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    doc = yaml.safe_load(FULL)
    validator.validate(doc)
    doc["columns"][3]["check"] = {"between": 1}
    doc["columns"][6]["references"] = {"to": "teams.id", "on_delete": "explode"}
    doc["indexes"][2]["columns"] = [{"md5": "handle"}]
    assert len(list(validator.iter_errors(doc))) == 3


def test_check_models_the_structured_parts(tmp_path: Path) -> None:
    """`schemactl check` follows checks, FK actions, predicates and generated columns through
    the branch's migrations: what propose wrote explains the definitions (no SC602/SC604)."""
    import subprocess

    from schemactl import api
    from tests.test_format import MEMBERS, TEAMS

    repo = tmp_path / "repo"
    api.init(repo, actor="user:test")
    root = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    for text in (TEAMS, MEMBERS):
        assert api.propose(repo, stdin=text, actor="user:test").ok
    base = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    text = (repo / "dynamic_schema" / "members.yaml").read_text()
    changed = (text.replace("max: 150", "max: 100")
               .replace("on_delete: set_null", "on_delete: cascade")
               .replace("checks:\n", "checks:\n  - {left: age, op: '<=', right: age}\n")
               + "  - {columns: [age], where: {is_deleted: false}, name: ix_members_live}\n")
    assert api.propose(repo, stdin=changed, actor="user:test").ok
    for since in (root, base):
        result = api.check(repo, base=since, actor="user:test")
        assert result.ok, result.violations
