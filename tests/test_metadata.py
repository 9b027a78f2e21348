"""Issue 4: definitions → SQLAlchemy metadata, the loader API, and pytest-alembic's checks."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

from schemactl.adapters.database import Target, make_engine
from schemactl.codegen.metadata import build_metadata, default_sql, sa_type
from schemactl.model.parsing import parse_definition
from tests.conftest import REPO_ROOT

pytest_alembic = pytest.importorskip("pytest_alembic")

TYPES = {
    "uuid": "UUID", "text": "TEXT", "varchar(12)": "VARCHAR(12)", "varchar": "VARCHAR",
    "smallint": "SMALLINT", "integer": "INTEGER", "bigint": "BIGINT",
    "numeric(10,2)": "NUMERIC(10, 2)", "numeric": "NUMERIC", "real": "REAL",
    "double precision": "DOUBLE PRECISION", "boolean": "BOOLEAN", "date": "DATE",
    "timestamptz": "TIMESTAMP WITH TIME ZONE", "timestamp": "TIMESTAMP WITHOUT TIME ZONE",
    "interval": "INTERVAL", "jsonb": "JSONB", "bytea": "BYTEA", "vector(1536)": "VECTOR(1536)",
    "text[]": "TEXT[]", "varchar(5)[]": "VARCHAR(5)[]", "integer[]": "INTEGER[]",
    "int8": "BIGINT", "timestamp with time zone": "TIMESTAMP WITH TIME ZONE",
}


@pytest.mark.parametrize("name,ddl", sorted(TYPES.items()))
def test_every_whitelisted_type_maps_to_postgresql(name: str, ddl: str) -> None:
    from schemactl.model.definitions import normalise_type

    compiled = sa_type(normalise_type(name)).compile(dialect=postgresql.dialect())
    assert compiled == ddl


@pytest.mark.parametrize("type_,default,sql", [
    ("timestamptz", "now()", "now()"),
    ("timestamptz", "NOW()", "now()"),
    ("timestamp", "current_timestamp", "CURRENT_TIMESTAMP"),
    ("uuid", "gen_random_uuid()", "gen_random_uuid()"),
    ("boolean", False, "false"),
    ("boolean", "true", "true"),
    ("integer", 5, "5"),
    ("numeric(5,2)", 1.5, "1.5"),
    ("integer", "-3", "-3"),
    ("text", "it's", "'it''s'"),
    ("text", "now()); drop table x; --", "'now()); drop table x; --'"),
    ("jsonb", "[]", "'[]'::jsonb"),
    ("jsonb", '{"a": 1}', """'{"a": 1}'::jsonb"""),
    ("jsonb", True, "'true'::jsonb"),
    ("text[]", "{}", "'{}'"),
])
def test_defaults_are_whitelisted_sql(type_: str, default: Any, sql: str) -> None:
    from schemactl.model.definitions import Column

    assert default_sql(Column("c", type_, default=default, has_default=True)) == sql


DEF = """\
table: things
comment: Things
columns:
  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: name, type: varchar(50), nullable: false, unique: true}
  - {name: agent_id, type: uuid, references: agents.id}
  - {name: parent_id, type: uuid, references: things.id}
  - {name: old, type: text, deprecated: true, comment: was used}
  - {name: embedding, type: vector(3)}
indexes:
  - {columns: [embedding], using: hnsw, opclass: vector_l2_ops}
  - {columns: [old]}
"""


def test_build_metadata_tables_keys_indexes_and_deprecation() -> None:
    tdef = parse_definition(DEF)
    retired = parse_definition("table: retired\ndeprecated: true\ncolumns:\n"
                               "  - {name: id, type: uuid, primary_key: true}\n")
    full = build_metadata({"things": tdef, "retired": retired})
    assert {"agents", "tools", "things", "retired"} <= set(full.tables)
    things = full.tables["things"]
    assert [c.name for c in things.columns] == ["id", "name", "agent_id", "parent_id", "old",
                                                "embedding"]
    assert things.comment == "Things"
    assert things.c.old.comment == "DEPRECATED: was used"
    assert full.tables["retired"].comment == "DEPRECATED"
    ddl = str(CreateTable(things).compile(dialect=postgresql.dialect()))
    assert "CONSTRAINT pk_things PRIMARY KEY (id)" in ddl
    assert "CONSTRAINT fk_things_agent_id_agents FOREIGN KEY(agent_id) REFERENCES agents (id)" \
        in ddl
    assert "CONSTRAINT uq_things_name UNIQUE (name)" in ddl
    hnsw = next(i for i in things.indexes if i.name == "ix_things_embedding_hnsw")
    assert hnsw.dialect_options["postgresql"]["using"] == "hnsw"
    assert hnsw.dialect_options["postgresql"]["ops"] == {"embedding": "vector_l2_ops"}

    app = build_metadata({"things": tdef, "retired": retired}, include_deprecated=False)
    assert "retired" not in app.tables
    assert "old" not in app.tables["things"].c
    assert {i.name for i in app.tables["things"].indexes} == {"ix_things_embedding_hnsw"}


def test_load_metadata_is_the_public_loader(repo: Path) -> None:
    import schemactl

    (repo / "dynamic_schema/things.yaml").write_text(DEF)
    md = schemactl.load_metadata(repo)
    assert "things" in md.tables and "conversations" in md.tables
    assert "old" not in md.tables["things"].c
    assert "old" in schemactl.load_metadata(repo, include_deprecated=True).tables["things"].c


# -- the reference schema and the loader example ----------------------------------------


def _load_script() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_reference_schema", REPO_ROOT / "scripts/make_reference_schema.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_schema_is_what_schemactl_generates(tmp_path: Path) -> None:
    files = _load_script().generate(tmp_path)
    for rel, data in files.items():
        assert (REPO_ROOT / rel).read_bytes() == data, rel
    on_disk = {p.name for p in (REPO_ROOT / "dynamic_schema").glob("*.yaml")}
    assert on_disk == {"characters.yaml", "projects.yaml", "ideas.yaml", "notes.yaml",
                       "search_index.yaml"}


def _reference_repo(tmp_path: Path) -> Path:
    _load_script().generate(tmp_path)
    return tmp_path / "reference"


def test_loader_example_in_docs_runs(tmp_path: Path, db: Target, cli: Any,
                                     has_vector: bool) -> None:
    if not has_vector:
        pytest.skip("the server has no pgvector")
    repo = _reference_repo(tmp_path)
    res = cli("apply", "--database-url", db.url, cwd=repo)
    assert res.code == 0, res
    text = (REPO_ROOT / "docs/loader.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)  # type: ignore[union-attr]
    expected = re.search(r"It prints:\n\n```text\n(.*?)```", text, re.S).group(1)  # type: ignore[union-attr]
    script = tmp_path / "example.py"
    script.write_text(code)
    env = {**os.environ, "DATABASE_URL": db.url, "SCHEMA_REPO": str(repo)}
    proc = subprocess.run([os.sys.executable, str(script)], env=env, capture_output=True,  # type: ignore[attr-defined]
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected


# -- pytest-alembic's default checks, called directly --------------------------------------


EVOLVE_NOTES = """\
  - {name: pinned, type: boolean, nullable: false, default: false}
  - {name: rating, type: integer}
"""


def test_pytest_alembic_default_checks(tmp_path: Path, db: Target, cli: Any,
                                       has_vector: bool) -> None:
    from pytest_alembic import runner
    from pytest_alembic.config import Config
    from pytest_alembic.tests import (
        test_model_definitions_match_ddl,
        test_single_head_revision,
        test_up_down_consistency,
        test_upgrade,
    )

    from schemactl.model.loading import load_dir

    if not has_vector:
        pytest.skip("the reference schema has a vector column; the server has no pgvector")
    repo = _reference_repo(tmp_path)
    notes = (repo / "dynamic_schema/notes.yaml").read_text()
    head, tail = notes.split("indexes:\n")
    evolved = head + EVOLVE_NOTES + "indexes:\n" + tail + "  - {columns: [rating]}\n"
    res = cli("propose", "-", "--json", cwd=repo, input=evolved)
    assert res.code == 0, res

    metadata = build_metadata(load_dir(repo / "dynamic_schema", repo))
    config = Config(config_options={
        "file": str(repo / "alembic.ini"),
        "script_location": str(repo / "migrations"),
        "target_metadata": metadata,
    })
    engine = make_engine(db)
    try:
        with runner(config=config, engine=engine) as alembic_runner:
            test_single_head_revision(alembic_runner)
            test_upgrade(alembic_runner)
            test_model_definitions_match_ddl(alembic_runner)
            test_up_down_consistency(alembic_runner)
    finally:
        engine.dispose()


def test_the_generator_writes_exactly_the_whitelisted_types() -> None:
    """One whitelist (model.literals): the rules accept what the generator can write."""
    from schemactl.codegen.metadata import generated_bases
    from schemactl.model.literals import TYPE_BASES

    assert generated_bases() == TYPE_BASES
