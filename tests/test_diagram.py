"""`schemactl diagram` and the ER diagram of `check --format markdown`.

The Mermaid text is read back by mermaid's own grammar (mermaid 11's parser, packaged as
mermaid-parser-py and run in a child process) and asserted on as text; the DOT output is
checked for its structure, and by Graphviz when it is installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT, run_cli

CORE = {"conversations", "langgraph_checkpoints", "agents", "tools", "audit_log"}
CORE_FKS = {("tools", "agent_id", "agents", "id")}

# One child process holds mermaid's parser for the whole module: it reads one JSON string
# per line and answers one JSON object per line ({ok, graph} or {ok: false, error}).
_PARSER = r"""
import json, sys
from mermaid_parser import MermaidParser
parser = MermaidParser()
print("@@ready", flush=True)
for line in sys.stdin:
    try:
        out = {"ok": True, "graph": parser.parse(json.loads(line))}
    except Exception as exc:  # a parse error of the grammar
        out = {"ok": False, "error": str(exc).splitlines()[1:3]}
    print("@@" + json.dumps(out), flush=True)
"""

_reader: subprocess.Popen[str] | None = None


def _answer(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:  # the package prints notices of its own on stdout
        if line.startswith("@@"):
            return line[2:]
    raise AssertionError("the mermaid parser process ended")


@pytest.fixture(scope="module", autouse=True)
def mermaid_reader() -> Iterator[None]:
    global _reader
    proc = subprocess.Popen([sys.executable, "-c", _PARSER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert _answer(proc).strip() == "ready"
        _reader = proc
        yield
    finally:
        _reader = None
        proc.kill()
        proc.wait(timeout=30)


def parse_mermaid(text: str) -> dict[str, Any]:
    """Mermaid's own parser on ``text``: {ok, graph: {graph_type, graph_data}} or {ok, error}."""
    assert _reader is not None and _reader.stdin is not None
    _reader.stdin.write(json.dumps(text) + "\n")
    _reader.stdin.flush()
    return json.loads(_answer(_reader))  # type: ignore[no-any-return]


def test_the_parser_refuses_what_mermaid_refuses() -> None:
    assert parse_mermaid('erDiagram\n    "t" {\n        uuid id PK\n    }\n')["ok"]
    for bad in ('erDiagram\n    "t" {\n        numeric(10,2) x\n    }\n',
                'erDiagram\n    "t" {\n        text pk\n    }\n',
                'erDiagram\n    "a" ||--o{ "b"\n'):
        assert not parse_mermaid(bad)["ok"], bad


def er_graph(text: str) -> tuple[dict[str, list[dict[str, Any]]], set[tuple[str, str, str]]]:
    """Entities → attributes and (parent, child, label) relationships, as mermaid reads them."""
    parsed = parse_mermaid(text)
    assert parsed["ok"], parsed
    assert parsed["graph"]["graph_type"] == "er"
    data = parsed["graph"]["graph_data"]
    by_id = {e["id"]: name for name, e in data["entities"].items()}
    entities = {name: e["attributes"] for name, e in data["entities"].items()}
    rels = {(by_id[r["entityA"]], by_id[r["entityB"]], r["roleA"])
            for r in data["relationships"]}
    return entities, rels


@pytest.fixture
def reference_repo(repo: Path) -> Path:
    """A repository made by init holding this project's reference dynamic tables."""
    for src in sorted((REPO_ROOT / "dynamic_schema").glob("*.yaml")):
        shutil.copy(src, repo / "dynamic_schema" / src.name)
    return repo


def reference_fks() -> set[tuple[str, str, str, str]]:
    """(table, column, referenced table, referenced column) from the YAML, read directly."""
    fks = set(CORE_FKS)
    for src in (REPO_ROOT / "dynamic_schema").glob("*.yaml"):
        data = yaml.safe_load(src.read_text())
        if data.get("deprecated"):
            continue
        for col in data["columns"]:
            ref = col.get("references")
            if ref and not col.get("deprecated"):
                to = ref if isinstance(ref, str) else ref["to"]
                table, column = to.split(".")
                fks.add((data["table"], col["name"], table, column))
    return fks


def test_mermaid_names_every_table_and_fk_and_mermaid_parses_it(reference_repo: Path) -> None:
    res = run_cli("diagram", "--repo", str(reference_repo))
    assert res.code == 0, res
    text = res.stdout
    dynamic = {p.stem for p in (REPO_ROOT / "dynamic_schema").glob("*.yaml")}
    assert len(dynamic) >= 5 and not dynamic & CORE
    fks = reference_fks()
    assert len(fks) >= 4

    # The text: an entity block per table, a relationship line per foreign key.
    assert text.startswith("erDiagram\n")
    for table in CORE | dynamic:
        assert re.search(rf'^    "{table}" {{$', text, re.M), table
    for table, column, ref_table, ref_column in fks:
        label = column if ref_column == "id" else f"{column} → {ref_column}"
        assert re.search(rf'^    "{ref_table}" [|][o|][.-]{{2}}o[{{|] "{table}" : "{label}"$',
                         text, re.M), (table, column)
        assert re.search(rf'^        uuid {column} FK\b', text, re.M), column
    assert text.count("..") + text.count("--") >= len(fks)

    # Mermaid's grammar reads the same entities, attributes and relationships.
    entities, rels = er_graph(text)
    assert set(entities) == CORE | dynamic
    assert rels == {(r, t, c if rc == "id" else f"{c} → {rc}") for t, c, r, rc in fks}
    notes = {a["name"]: a for a in entities["notes"]}
    assert notes["id"]["type"] == "uuid" and notes["id"]["keys"] == ["PK"]
    assert notes["project_id"]["keys"] == ["FK"]
    assert notes["title"]["type"] == "varchar(200)" and notes["title"]["comment"] == "not null"
    search = {a["name"]: a for a in entities["search_index"]}
    assert search["embedding"]["type"] == "vector(1536)"
    agents = {a["name"]: a for a in entities["agents"]}
    assert agents["name"]["keys"] == ["UK"]


def test_selected_tables_show_their_neighbours_by_name(reference_repo: Path) -> None:
    res = run_cli("diagram", "notes", "--repo", str(reference_repo), "--json")
    assert res.code == 0, res
    data = res.json
    assert data["ok"] and data["format"] == "mermaid" and data["tables"] == ["notes"]
    entities, rels = er_graph(data["diagram"])
    assert entities["notes"] and entities["projects"] == [] and entities["characters"] == []
    assert set(entities) == {"notes", "projects", "characters"}
    assert rels == {("projects", "notes", "project_id"), ("characters", "notes",
                                                          "character_id")}


def test_names_and_types_mermaid_would_misread_are_kept_readable(repo: Path) -> None:
    (repo / "dynamic_schema" / "style.yaml").write_text(
        "table: style\ncolumns:\n"
        "  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}\n"
        "  - {name: pk, type: 'numeric(10,2)', nullable: false, default: 0}\n"
        "  - {name: fk, type: double precision}\n"
        "  - {name: agent_id, type: uuid, unique: true, references: agents.id}\n")
    res = run_cli("diagram", "style", "--repo", str(repo))
    assert res.code == 0, res
    entities, rels = er_graph(res.stdout)
    attrs = {a["name"]: a for a in entities["style"]}
    assert attrs["pk_"]["comment"] == "numeric(10,2); column pk; not null"
    assert attrs["pk_"]["type"] == "numeric(10_2)"
    assert attrs["fk_"]["type"] == "double_precision"
    assert attrs["agent_id"]["keys"] == ["FK", "UK"]
    assert rels == {("agents", "style", "agent_id")}
    assert '"agents" |o..o| "style" : "agent_id"' in res.stdout  # unique: one to one


def test_dot_draws_tables_with_ports_and_fk_edges(reference_repo: Path) -> None:
    res = run_cli("diagram", "--format", "dot", "--repo", str(reference_repo))
    assert res.code == 0, res
    text = res.stdout
    assert text.startswith("digraph schema {\n") and text.rstrip().endswith("}")
    for table in CORE | {p.stem for p in (REPO_ROOT / "dynamic_schema").glob("*.yaml")}:
        assert re.search(rf'^    "{table}" \[label=<<table ', text, re.M), table
    for table, column, ref_table, ref_column in reference_fks():
        assert f'"{ref_table}":"{ref_column}" -> "{table}":"{column}" [' in text
        assert f'<td port="{column}" align="left">{column}</td>' in text
    if shutil.which("dot"):
        svg = subprocess.run(["dot", "-Tsvg"], input=text, capture_output=True, text=True,
                             timeout=60)
        assert svg.returncode == 0 and "<svg" in svg.stdout, svg.stderr


def test_unknown_table_or_format_is_bad_input(repo: Path) -> None:
    res = run_cli("diagram", "nope", "--repo", str(repo), "--json")
    assert res.code == 2, res
    assert res.json["error"]["code"] == "unknown_table" and "agents" in res.json["error"]["hint"]
    human = run_cli("diagram", "nope", "--repo", str(repo))
    assert human.code == 2 and human.stdout == "" and "Traceback" not in human.stderr
    assert "no such table: nope" in human.stderr
    fmt = run_cli("diagram", "--format", "svg", "--repo", str(repo))
    assert fmt.code == 2 and "Traceback" not in fmt.stderr


def test_check_markdown_embeds_the_changed_tables(repo: Path) -> None:
    ideas = ("table: ideas\ncolumns:\n  - {name: summary, type: text}\n"
             "  - {name: agent_id, type: uuid, references: agents.id}\n")
    res = run_cli("propose", "-", "--add-base-fields", "--repo", str(repo), input=ideas)
    assert res.code == 0, res
    md = run_cli("check", "--base", "HEAD~1", "--format", "markdown", "--repo", str(repo))
    assert md.code == 0, md
    block = re.search(r"```mermaid\n(.*?)```", md.stdout, re.S)
    assert block is not None, md.stdout
    entities, rels = er_graph(block.group(1))
    assert set(entities) == {"ideas", "agents"} and entities["agents"] == []
    assert {a["name"] for a in entities["ideas"]} >= {"id", "summary", "agent_id"}
    assert rels == {("agents", "ideas", "agent_id")}
    as_json = run_cli("check", "--base", "HEAD~1", "--json", "--repo", str(repo)).json
    assert as_json["diagram"] == block.group(1)
