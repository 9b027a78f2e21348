"""Issue: dynamic table definitions and safety rules (`schemactl validate`).

No database: validate is offline. CLI tests run real processes in repositories
made by `schemactl init`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safety_rules.core_tables import CORE_TABLES, PROTECTED_PREFIXES, PROTECTED_TABLES
from safety_rules.sc402_reserved_word import RESERVED
from schemactl.model.config import Config
from schemactl.model.definitions import DefinitionError
from schemactl.model.parsing import from_dict, parse_definition
from schemactl.rules.validation import check_definitions
from tests.rules.helpers import BASE_COLUMNS

NOTES = """\
table: notes
comment: Notes of the mechanic
columns:
  - {name: id,         type: uuid,        primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false,   default: now()}
  - {name: updated_at, type: timestamptz, nullable: false,   default: now()}
  - {name: is_deleted, type: boolean,     nullable: false,   default: false}
  - {name: created_by, type: bigint}
  - {name: title,      type: varchar(200), nullable: false}
  - {name: body,       type: text}
  - {name: agent_id,   type: uuid, references: agents.id}
indexes:
  - {columns: [title]}
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout


def commit_notes(repo: Path, text: str = NOTES) -> None:
    (repo / "dynamic_schema" / "notes.yaml").write_text(text)
    git(repo, "add", "dynamic_schema/notes.yaml")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "notes")


def state(repo: Path) -> tuple[str, str]:
    """What validate must never change: the work tree status and HEAD."""
    return git(repo, "status", "--porcelain", "--untracked-files=all"), git(repo, "rev-parse",
                                                                           "HEAD")


def codes(res: Any) -> set[str]:
    return {v["rule"] for v in res.json["violations"]}


# -- the command ---------------------------------------------------------------------


def test_validate_clean_file_exit_0(repo: Path, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "notes.yaml"
    path.write_text(NOTES)
    res = cli("validate", str(path), "--json", cwd=repo)
    assert res.code == 0, res
    assert res.json["ok"] is True and res.json["command"] == "validate"
    assert res.json["violations"] == [] and res.json["error"] is None
    assert res.json["tables"] == ["notes"] and "SC102" in res.json["rules_run"]
    human = cli("validate", str(path), cwd=repo)
    assert human.code == 0 and "no errors" in human.stdout


def test_validate_stdin_yaml_and_json(repo: Path, cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("validate", "-", "--json", cwd=repo, input=NOTES).code == 0
    as_json = json.dumps(parse_definition(NOTES).to_dict())
    res = cli("validate", "-", "--json", cwd=repo, input=as_json)
    assert res.code == 0, res


def test_dropped_column_is_exit_1_with_violation_json(repo: Path, cli) -> None:  # type: ignore[no-untyped-def]
    commit_notes(repo)
    before = state(repo)
    res = cli("validate", "-", "--json", cwd=repo,
              input=NOTES.replace("  - {name: body,       type: text}\n", ""))
    assert res.code == 1, res
    assert res.json["ok"] is False and res.json["error"]["code"] == "rejected"
    v = next(v for v in res.json["violations"] if v["rule"] == "SC102")
    assert {k: v[k] for k in ("rule", "name", "severity", "table", "column")} == {
        "rule": "SC102", "name": "no-drop-column", "severity": "error", "table": "notes",
        "column": "body"}
    assert v["message"] and v["hint"]
    assert state(repo) == before
    human = cli("validate", "-", cwd=repo, input=NOTES.replace("  - {name: body,       "
                                                              "type: text}\n", ""))
    assert human.code == 1 and "SC102" in human.stdout and "deprecated" in human.stdout


def test_no_argument_checks_work_tree_against_head(repo: Path, cli) -> None:  # type: ignore[no-untyped-def]
    commit_notes(repo)
    assert cli("validate", "--json", cwd=repo).code == 0
    # varchar → integer: not on the online cast whitelist (varchar(100) would run online)
    (repo / "dynamic_schema" / "notes.yaml").write_text(NOTES.replace("varchar(200)",
                                                                      "integer"))
    res = cli("validate", "--json", cwd=repo)
    assert res.code == 1 and codes(res) == {"SC104"}, res
    (repo / "dynamic_schema" / "notes.yaml").unlink()
    res = cli("validate", "--json", cwd=repo)
    assert res.code == 1 and codes(res) == {"SC101"}, res
    assert res.json["tables"] == ["notes"]


def test_new_file_in_work_tree_is_checked(repo: Path, cli) -> None:  # type: ignore[no-untyped-def]
    (repo / "dynamic_schema" / "ideas.yaml").write_text(
        "table: ideas\ncolumns:\n  - {name: title, type: text}\n")
    res = cli("validate", "--json", cwd=repo)
    assert res.code == 1 and codes(res) == {"SC301"}, res


def test_file_at_head_path_defining_another_table_is_a_rename(repo: Path, cli) -> None:  # type: ignore[no-untyped-def]
    commit_notes(repo)
    path = repo / "dynamic_schema" / "notes.yaml"
    path.write_text(NOTES.replace("table: notes", "table: memos"))
    res = cli("validate", str(path), "--json", cwd=repo)
    assert res.code == 1 and {"SC101", "SC103"} <= codes(res), res


def test_warning_passes_and_waiver_is_reported(repo: Path, cli) -> None:  # type: ignore[no-untyped-def]
    commit_notes(repo)
    evolved = NOTES + ""
    evolved = evolved.replace("  - {name: body,       type: text}\n",
                              "  - {name: body,       type: text}\n"
                              "  - {name: ext,        type: uuid, default: gen_random_uuid()}\n"
                              "  - {name: n,          type: integer, nullable: false}\n")
    res = cli("validate", "-", "--json", cwd=repo, input=evolved)
    assert res.code == 1 and codes(res) == {"SC201", "SC203"}
    toml = repo / "schemactl.toml"
    toml.write_text(toml.read_text().replace(
        '# SC502 = "warning"', 'SC201 = "warning"') + """
[[rules.waivers]]
rule = "SC203"
table = "notes"
column = "ext"
reason = "notes is empty in every environment"
""")
    res = cli("validate", "-", "--json", cwd=repo, input=evolved)
    assert res.code == 0, res
    assert [(v["rule"], v["severity"]) for v in res.json["violations"]] == [("SC201", "warning")]
    assert res.json["waived"][0]["rule"] == "SC203"
    assert res.json["waived"][0]["reason"] == "notes is empty in every environment"
    # Agents never get waivers.
    res = cli("validate", "-", "--json", "--actor", "agent:mechanic", cwd=repo, input=evolved)
    assert res.code == 1 and codes(res) == {"SC201", "SC203"}


def test_severity_off_disables_a_rule(repo: Path, cli) -> None:  # type: ignore[no-untyped-def]
    toml = repo / "schemactl.toml"
    toml.write_text(toml.read_text().replace('# SC502 = "warning"', 'SC301 = "off"'))
    res = cli("validate", "-", "--json", cwd=repo,
              input="table: ideas\ncolumns:\n  - {name: title, type: text}\n")
    assert res.code == 0, res
    assert "SC301" not in res.json["rules_run"]


def test_missing_file_and_not_a_repo_are_exit_2(repo: Path, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    res = cli("validate", "nope.yaml", "--json", cwd=repo)
    assert res.code == 2 and res.json["error"]["code"] == "bad_input"
    res = cli("validate", "-", "--json", cwd=tmp_path, input=NOTES)
    assert res.code == 2


def test_schema_command_prints_the_json_schema(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    res = cli("schema", cwd=tmp_path)
    assert res.code == 0
    assert res.json["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert res.json["additionalProperties"] is False


# -- hostile input -------------------------------------------------------------------

REFUSED_BY_RULES = {
    "injected_identifier": (NOTES.replace("table: notes",
                                          'table: "notes; DROP TABLE audit_log; --"'), "SC401"),
    "injected_column": (NOTES.replace("name: body,", 'name: "body text); drop table x; --",'),
                        "SC401"),
    "free_sql_default": (NOTES.replace("{name: body,       type: text}",
                                       "{name: body, type: text, default: \"(select 1)\"}"),
                         "SC404"),
    "sql_function_default": (NOTES.replace(
        "{name: body,       type: text}", "{name: body, type: text, default: pg_sleep(10)}"),
        "SC404"),
    "schema_qualified_table": (NOTES.replace("table: notes", "table: public.notes"), "SC501"),
    "catalog_table": (NOTES.replace("table: notes", "table: pg_catalog.pg_class"), "SC501"),
    "core_table": (NOTES.replace("table: notes", "table: agents"), "SC501"),
    "reference_other_schema": (NOTES.replace("references: agents.id",
                                             "references: pg_catalog.pg_authid.oid"), "SC501"),
    "injected_type": (NOTES.replace("type: text}", "type: 'text; drop table agents'}"),
                      "SC403"),
}


@pytest.mark.parametrize("name", sorted(REFUSED_BY_RULES))
def test_hostile_definitions_refused_by_rules(name: str, repo: Path, cli) -> None:  # type: ignore[no-untyped-def]
    text, code = REFUSED_BY_RULES[name]
    before = state(repo)
    res = cli("validate", "-", "--json", cwd=repo, input=text)
    assert res.code == 1, res
    assert code in codes(res), res
    assert state(repo) == before


BOMB = """\
a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
table: notes
columns: *f
"""

REFUSED_AS_BAD_INPUT = {
    "yaml_bomb": BOMB.encode(),
    "python_object_tag": (b"table: notes\n"
                          b"columns: !!python/object/apply:os.system ['touch pwned']\n"),
    "python_name_tag": b"table: !!python/name:os.system\ncolumns: []\n",
    "non_utf8": "table: notes\ncolumns: []\ncomment: caf\xe9\n".encode("latin-1"),
    "nul_byte": b"table: notes\x00\ncolumns: []\n",
    "not_a_mapping": b"- just\n- a list\n",
    "unknown_key": NOTES.replace("comment:", "owner: x\ncomment:").encode(),
    "broken_yaml": b"table: notes\ncolumns: [\n",
    "broken_json": b'{"table": "notes", "columns": [}',
    "default_object": NOTES.replace("type: text}", "type: text, default: {a: 1}}").encode(),
    # The parser would keep the last value silently while a reviewer reads the first.
    "duplicate_yaml_key": b"table: notes\ntable: agents\ncolumns: []\n",
    "duplicate_yaml_column_key": NOTES.replace("type: text}", "type: text, type: bytea}").encode(),
    "duplicate_json_key": b'{"table": "notes", "columns": [], "table": "agents"}',
}


@pytest.mark.parametrize("name", sorted(REFUSED_AS_BAD_INPUT))
def test_hostile_input_refused_as_bad_input(name: str, repo: Path, cli) -> None:  # type: ignore[no-untyped-def]
    before = state(repo)
    res = cli("validate", "-", "--json", cwd=repo, input=REFUSED_AS_BAD_INPUT[name])
    assert res.code == 2, res
    assert res.json["ok"] is False and res.json["error"]["code"] == "bad_definition", res
    assert "Traceback" not in res.stderr
    assert state(repo) == before
    assert not (repo / "pwned").exists()


def test_bad_input_message_names_file_line_and_column(repo: Path, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "broken.yaml"
    path.write_text("table: notes\ncolumns:\n  - {name: a, type: text\n")
    res = cli("validate", str(path), cwd=repo)
    assert res.code == 2
    assert f"{path}:4:1" in res.stderr or f"{path}:3:" in res.stderr, res.stderr


def test_oversized_file_is_sc406_without_parsing(repo: Path, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    big = tmp_path / "big.yaml"
    # Not even valid YAML past the limit: it must not be parsed at all.
    big.write_bytes(NOTES.encode() + b"# " + b"x" * 70_000 + b"\n: : [\n")
    before = state(repo)
    res = cli("validate", str(big), "--json", cwd=repo)
    assert res.code == 1, res
    assert codes(res) == {"SC406"}
    res = cli("validate", "-", "--json", cwd=repo, input=big.read_bytes())
    assert res.code == 1 and codes(res) == {"SC406"}, res
    assert state(repo) == before


def test_oversized_stdin_is_read_bounded(repo: Path) -> None:
    from schemactl import api

    class Endless:
        read_total = 0

        def read(self, n: int = -1) -> bytes:
            assert n > 0, "never read without a bound"
            self.read_total += n
            return b"x" * n

    stream = Endless()
    res = api.validate(repo, stdin=stream)
    assert not res.ok and {v.rule for v in res.violations} == {"SC406"}
    assert stream.read_total < 20 * 1024 * 1024


# -- JSON Schema and parser agree ----------------------------------------------------

SAMPLES: list[Any] = [
    parse_definition(NOTES).to_dict(),
    {"table": "t", "columns": []},
    {"table": "t", "columns": [{"name": "a", "type": "text", "default": None}], "indexes": None},
    {"table": "t", "columns": [{"name": "a", "type": "text", "references": None,
                                "comment": None}], "comment": None},
    {"table": "t", "columns": [{"name": "a", "type": "integer", "default": 1.5}]},
    {"table": "t", "columns": [{"name": "a", "type": "text"}],
     "indexes": [{"columns": ["a"], "using": None, "name": None, "opclass": None}]},
    {"table": "t", "deprecated": True, "columns": [{"name": "a", "type": "text",
                                                    "deprecated": True}]},
    # refused by both
    {"table": "t"},
    {"columns": []},
    {"table": 1, "columns": []},
    {"table": "t", "columns": {}},
    {"table": "t", "columns": [], "extra": 1},
    {"table": "t", "columns": [{"name": "a"}]},
    {"table": "t", "columns": [{"name": "a", "type": "text", "nullable": "yes"}]},
    {"table": "t", "columns": [{"name": "a", "type": "text", "default": [1]}]},
    {"table": "t", "columns": [{"name": "a", "type": "text", "default": {"a": 1}}]},
    {"table": "t", "columns": [{"name": "a", "type": "text", "owner": "x"}]},
    {"table": "t", "columns": [], "indexes": [{"unique": True}]},
    {"table": "t", "columns": [], "indexes": [{"columns": [1]}]},
    {"table": "t", "columns": [], "indexes": [{"columns": ["a"], "method": "x"}]},
    {"table": "t", "columns": [], "indexes": False},
    {"table": "t", "columns": [], "deprecated": "no"},
    {"table": "t", "columns": [], "comment": 3},
    ["table", "t"],
    "table: t",
]


@pytest.mark.parametrize("sample", SAMPLES, ids=range(len(SAMPLES)))
def test_json_schema_and_parser_agree(sample: Any) -> None:
    import jsonschema

    from schemactl import api

    schema = api.definition_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    schema_ok = jsonschema.Draft202012Validator(schema).is_valid(sample)
    try:
        from_dict(sample)
        parser_ok = True
    except DefinitionError:
        parser_ok = False
    assert schema_ok == parser_ok


# -- properties ----------------------------------------------------------------------

NAME = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True).filter(
    lambda n: n not in RESERVED and n not in {c["name"] for c in BASE_COLUMNS}
    and n not in CORE_TABLES and n not in PROTECTED_TABLES
    and not n.startswith(PROTECTED_PREFIXES))
TYPES = ["text", "varchar(50)", "integer", "bigint", "boolean", "jsonb", "date",
         "timestamptz", "numeric(10,2)", "uuid", "text[]", "double precision"]


@st.composite
def tables(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(NAME, min_size=1, max_size=8, unique=True))
    cols = [{"name": n, "type": draw(st.sampled_from(TYPES)),
             "nullable": draw(st.booleans())} for n in names]
    table = draw(NAME)
    return {"table": table, "columns": [*BASE_COLUMNS, *cols]}


def _check(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    b, a = from_dict(before), from_dict(after)
    report = check_definitions({b.table: b}, {a.table: a}, Config())
    return {v.rule for v in report.errors}


PROPS = settings(max_examples=150, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@PROPS
@given(tables())
def test_random_valid_tables_pass(table: dict[str, Any]) -> None:
    tdef = from_dict(table)
    assert check_definitions({}, {tdef.table: tdef}, Config()).errors == ()


@PROPS
@given(tables(), st.data())
def test_additive_evolutions_always_pass(table: dict[str, Any], data: st.DataObject) -> None:
    after = json.loads(json.dumps(table))
    existing = {c["name"] for c in after["columns"]}
    steps = data.draw(st.lists(st.sampled_from(["add_nullable", "add_default", "widen",
                                                "deprecate", "comment", "index"]),
                               min_size=1, max_size=5))
    for step in steps:
        user_cols = [c for c in after["columns"] if c["name"] not in
                     {b["name"] for b in BASE_COLUMNS}]
        if step in ("add_nullable", "add_default"):
            name = data.draw(NAME.filter(lambda n: n not in existing))
            existing.add(name)
            col: dict[str, Any] = {"name": name, "type": data.draw(st.sampled_from(TYPES))}
            if step == "add_default":
                col = {"name": name, "type": "integer", "nullable": False, "default": 0}
            after["columns"].append(col)
        elif step == "widen":
            for c in user_cols:
                if c["type"] == "varchar(50)":
                    c["type"] = data.draw(st.sampled_from(["varchar(51)", "varchar(500)",
                                                           "text"]))
        elif step == "deprecate" and user_cols:
            data.draw(st.sampled_from(user_cols))["deprecated"] = True
        elif step == "comment":
            # Any text PostgreSQL can store: a NUL is SC401 (it never could).
            after["comment"] = data.draw(st.text(
                st.characters(blacklist_characters="\x00"), max_size=40))
        elif step == "index" and user_cols:
            index = {"columns": [data.draw(st.sampled_from(user_cols))["name"]]}
            if index not in after.setdefault("indexes", []):  # a duplicate is SC405
                after["indexes"].append(index)
    assert _check(table, after) == set()


@PROPS
@given(tables(), st.data())
def test_destructive_edits_are_always_caught(table: dict[str, Any],
                                              data: st.DataObject) -> None:
    after = json.loads(json.dumps(table))
    base_names = {b["name"] for b in BASE_COLUMNS}
    user_cols = [c for c in after["columns"] if c["name"] not in base_names]
    target = data.draw(st.sampled_from(user_cols))
    edits = ["drop", "rename"]
    # varchar(50) → varchar(49) is not here: it is a whitelisted online retype, checked
    # against the rows before its contract (docs/online.md), not a refusal.
    if target["type"] in ("bigint", "text", "numeric(10,2)", "double precision"):
        edits.append("narrow")
    if target.get("nullable", True):
        edits.append("not_null")
    edit = data.draw(st.sampled_from(edits))
    if edit == "drop":
        after["columns"].remove(target)
        expected = "SC102"
    elif edit == "rename":
        new = data.draw(NAME.filter(lambda n: n not in {c["name"] for c in after["columns"]}))
        target["name"] = new
        expected = "SC103"
    elif edit == "narrow":
        target["type"] = {"bigint": "integer", "text": "integer",
                          "numeric(10,2)": "numeric(9,2)",
                          "double precision": "real"}[target["type"]]
        expected = "SC104"
    else:
        target["nullable"] = False
        expected = "SC202"
    assert expected in _check(table, after)
