"""Issue 4: `schemactl propose` — lock-safe, deterministic migrations committed to git."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from schemactl.adapters.database import Target, connect, make_engine
from tests.conftest import git_log

BASE = """\
  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
"""

PROJECTS = f"""\
table: projects
comment: Story projects
columns:
{BASE}  - {{name: title, type: varchar(200), nullable: false}}
  - {{name: budget, type: "numeric(12,2)", default: 0}}
  - {{name: tags, type: "text[]", default: "{{}}"}}
  - {{name: settings, type: jsonb, nullable: false, default: '{{"tone": "dark"}}'}}
  - {{name: started_on, type: date}}
  - {{name: effort, type: interval}}
  - {{name: ratio, type: double precision}}
  - {{name: score, type: real}}
  - {{name: small, type: smallint, default: 3}}
  - {{name: blob, type: bytea}}
  - {{name: stamp, type: timestamp, default: current_timestamp}}
  - {{name: status, type: varchar(20), nullable: false, default: draft, comment: lifecycle}}
  - {{name: owner_agent, type: uuid, references: agents.id}}
indexes:
  - {{columns: [title], unique: true}}
  - {{columns: [status, created_at]}}
"""


def characters(vector: bool) -> str:
    vec_col = "  - {name: embedding, type: vector(3)}\n" if vector else ""
    vec_idx = ("  - {columns: [embedding], using: hnsw, opclass: vector_cosine_ops}\n"
               if vector else "")
    return f"""\
table: characters
comment: Story characters
columns:
{BASE}  - {{name: name, type: varchar(200), nullable: false}}
  - {{name: age, type: integer}}
  - {{name: traits, type: jsonb, nullable: false, default: '[]'}}
  - {{name: project_id, type: uuid, references: projects.id}}
{vec_col}indexes:
  - {{columns: [project_id]}}
{vec_idx}"""


NOTES = f"""\
table: notes
columns:
{BASE}  - {{name: title, type: varchar(100), nullable: false}}
"""


def propose(cli: Any, repo: Path, text: str, *extra: str) -> Any:
    res = cli("propose", "-", "--json", *extra, cwd=repo, input=text)
    return res


def apply(cli: Any, repo: Path, db: Target) -> Any:
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert res.code == 0, res
    return res


def snapshot(repo: Path) -> dict[str, str]:
    """Every file's hash (outside .git and .schemactl), plus git HEAD and status."""
    out: dict[str, str] = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo).as_posix()
        if rel.startswith((".git/", ".schemactl/")) or rel in (".git", ".schemactl"):
            continue
        if path.is_file() and "__pycache__" not in rel:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    git = ["git", "-C", str(repo)]
    out["<HEAD>"] = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True,
                                   text=True).stdout
    out["<status>"] = subprocess.run([*git, "status", "--porcelain", "--untracked-files=all"],
                                     capture_output=True, text=True).stdout
    out["<index>"] = subprocess.run([*git, "ls-files", "-s"], capture_output=True,
                                    text=True).stdout
    return out


def columns(db: Target, table: str, schema: str = "public") -> list[tuple[Any, ...]]:
    with connect(db) as conn:
        return conn.execute(
            "select a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
            "pg_get_expr(d.adbin, d.adrelid), col_description(a.attrelid, a.attnum) "
            "from pg_attribute a left join pg_attrdef d "
            "  on d.adrelid = a.attrelid and d.adnum = a.attnum "
            "where a.attrelid = (quote_ident(%s) || '.' || quote_ident(%s))::regclass "
            "  and a.attnum > 0 and not a.attisdropped order by a.attnum",
            (schema, table)).fetchall()


def indexes(db: Target, table: str) -> dict[str, tuple[str, bool]]:
    with connect(db) as conn:
        rows = conn.execute(
            "select c.relname, pg_get_indexdef(i.indexrelid), i.indisvalid from pg_index i "
            "join pg_class c on c.oid = i.indexrelid "
            "where i.indrelid = ('public.' || quote_ident(%s))::regclass", (table,)).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def constraints(db: Target, table: str) -> dict[str, tuple[str, str, bool]]:
    with connect(db) as conn:
        rows = conn.execute(
            "select conname, contype, pg_get_constraintdef(oid), convalidated from pg_constraint "
            "where conrelid = ('public.' || quote_ident(%s))::regclass", (table,)).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


# -- the catalog equals the definitions ------------------------------------------------


def test_propose_then_apply_catalog_equals_definitions(repo: Path, db: Target, cli: Any,
                                                       has_vector: bool) -> None:
    res = propose(cli, repo, PROJECTS)
    assert res.code == 0, res
    data = res.json
    assert data["ok"] and data["table"] == "projects"
    mig = data["migration"]
    assert mig["revision"].startswith("0002_")
    assert mig["path"].startswith("migrations/versions/0002_")
    assert "CREATE TABLE projects" in mig["sql"]
    assert (repo / "dynamic_schema/projects.yaml").read_text().startswith("table: projects\n")
    log = git_log(repo)[0]
    assert log.startswith("propose: add table projects")
    assert f"Schemactl-Revision: {mig['revision']}" in log
    assert "Schemactl-Action: propose" in log and "Schemactl-Actor: " in log
    assert data["commit"] == subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"],
                                            capture_output=True, text=True).stdout.strip()

    res = propose(cli, repo, characters(has_vector))
    assert res.code == 0, res
    assert res.json["migration"]["revision"].startswith("0003_")
    if has_vector:
        assert "CREATE EXTENSION IF NOT EXISTS vector" in res.json["migration"]["sql"]
    apply(cli, repo, db)

    assert columns(db, "projects") == [
        ("id", "uuid", True, "gen_random_uuid()", None),
        ("created_at", "timestamp with time zone", True, "now()", None),
        ("updated_at", "timestamp with time zone", True, "now()", None),
        ("is_deleted", "boolean", True, "false", None),
        ("created_by", "bigint", False, None, None),
        ("title", "character varying(200)", True, None, None),
        ("budget", "numeric(12,2)", False, "0", None),
        ("tags", "text[]", False, "'{}'::text[]", None),
        ("settings", "jsonb", True, """'{"tone": "dark"}'::jsonb""", None),
        ("started_on", "date", False, None, None),
        ("effort", "interval", False, None, None),
        ("ratio", "double precision", False, None, None),
        ("score", "real", False, None, None),
        ("small", "smallint", False, "3", None),
        ("blob", "bytea", False, None, None),
        ("stamp", "timestamp without time zone", False, "CURRENT_TIMESTAMP", None),
        ("status", "character varying(20)", True, "'draft'::character varying", "lifecycle"),
        ("owner_agent", "uuid", False, None, None),
    ]
    with connect(db) as conn:
        assert conn.execute("select obj_description('public.projects'::regclass)"
                            ).fetchone()[0] == "Story projects"  # type: ignore[index]
    cons = constraints(db, "projects")
    assert cons["pk_projects"][:2] == ("p", "PRIMARY KEY (id)")
    assert cons["fk_projects_owner_agent_agents"][:2] == (
        "f", "FOREIGN KEY (owner_agent) REFERENCES agents(id)")
    idx = indexes(db, "projects")
    assert "CREATE UNIQUE INDEX uq_projects_title ON public.projects USING btree (title)" == \
        idx["uq_projects_title"][0]
    assert "(status, created_at)" in idx["ix_projects_status_created_at"][0]

    cols = columns(db, "characters")
    expected = ["id", "created_at", "updated_at", "is_deleted", "created_by", "name", "age",
                "traits", "project_id"] + (["embedding"] if has_vector else [])
    assert [c[0] for c in cols] == expected
    assert cols[7][1:4] == ("jsonb", True, "'[]'::jsonb")
    cons = constraints(db, "characters")
    assert cons["fk_characters_project_id_projects"][1] == \
        "FOREIGN KEY (project_id) REFERENCES projects(id)"
    assert cons["fk_characters_project_id_projects"][2] is True
    idx = indexes(db, "characters")
    assert "ix_characters_project_id" in idx
    if has_vector:
        assert cols[9][1] == "vector(3)"
        hnsw = idx["ix_characters_embedding_hnsw"][0]
        assert "USING hnsw (embedding vector_cosine_ops)" in hnsw


def test_evolving_a_table_with_rows_is_lock_safe(repo: Path, db: Target, cli: Any) -> None:
    assert propose(cli, repo, PROJECTS).code == 0
    assert propose(cli, repo, NOTES).code == 0
    apply(cli, repo, db)
    with connect(db) as conn:
        conn.execute("insert into projects (title) values ('p1')")
        conn.execute("insert into notes (title) select 'note ' || g from generate_series(1, 200) g")
    evolved = NOTES.replace("varchar(100)", "varchar(300)") + """\
  - {name: priority, type: integer, nullable: false, default: 5}
  - {name: body, type: text, comment: the text}
  - {name: project_id, type: uuid, references: projects.id}
indexes:
  - {columns: [title]}
"""
    res = propose(cli, repo, evolved)
    assert res.code == 0, res
    sql = res.json["migration"]["sql"]
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_notes_title ON notes (title)" in sql
    assert "NOT VALID" in sql and "VALIDATE CONSTRAINT" in sql
    assert "ALTER TABLE notes ADD COLUMN IF NOT EXISTS priority INTEGER DEFAULT 5 NOT NULL" in sql
    assert "DROP" not in sql.replace("DROP INDEX public.%I", "")
    # the plan shows the same SQL, plus Alembic's version bookkeeping
    plan = cli("plan", "--json", "--database-url", db.url, cwd=repo)
    assert plan.code == 0, plan
    assert plan.json["pending"] == [res.json["migration"]["revision"]]
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_notes_title" in plan.json["sql"]

    apply(cli, repo, db)
    cols = {c[0]: c for c in columns(db, "notes")}
    assert cols["title"][1] == "character varying(300)"
    assert cols["priority"][1:4] == ("integer", True, "5")
    assert cols["body"][4] == "the text"
    with connect(db) as conn:
        assert conn.execute("select count(*), min(priority), max(priority) from notes"
                            ).fetchone() == (200, 5, 5)
    idx = indexes(db, "notes")
    assert idx["ix_notes_title"][1] is True  # pg_index.indisvalid
    fk = constraints(db, "notes")["fk_notes_project_id_projects"]
    assert fk[2] is True  # validated after NOT VALID


def test_failed_concurrent_build_leaves_no_invalid_index(repo: Path, db: Target,
                                                         cli: Any) -> None:
    assert propose(cli, repo, NOTES).code == 0
    apply(cli, repo, db)
    with connect(db) as conn:
        conn.execute("insert into notes (title) values ('same'), ('same')")
    res = propose(cli, repo, NOTES + "indexes:\n  - {columns: [title], unique: true}\n")
    assert res.code == 0, res
    failed = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert failed.code == 3, failed
    assert "uq_notes_title" not in indexes(db, "notes")
    with connect(db) as conn:
        conn.execute("delete from notes where ctid in (select max(ctid) from notes)")
    apply(cli, repo, db)
    assert indexes(db, "notes")["uq_notes_title"][1] is True


def test_downgrade_archives_instead_of_dropping(repo: Path, db: Target, cli: Any) -> None:
    from schemactl.adapters import migrator
    from schemactl.model.repo import SchemaRepo

    assert propose(cli, repo, NOTES).code == 0
    first = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert first.code == 0, first
    with connect(db) as conn:
        conn.execute("insert into notes (title) select 'n' || g from generate_series(1, 300) g")
    evolved = NOTES + "  - {name: score, type: integer}\nindexes:\n  - {columns: [score]}\n"
    res = propose(cli, repo, evolved)
    assert res.code == 0, res
    rev3 = res.json["migration"]["revision"]
    assert res.json["migration"]["archives"] == [
        {"kind": "column", "from": "public.notes.score",
         "to": f"schemactl_archive.notes__score__{rev3}"}]
    apply(cli, repo, db)
    with connect(db) as conn:
        conn.execute("update notes set score = length(title) * 7")
        total = conn.execute("select sum(score), count(*) from notes").fetchone()

    sr = SchemaRepo.open(repo)
    engine = make_engine(db)
    try:
        with engine.connect() as connection:
            migrator.downgrade(sr, connection, "-1")
    finally:
        engine.dispose()
    # the column is gone from the table; every value is in the archive, keyed by id
    assert "score" not in [c[0] for c in columns(db, "notes")]
    assert "ix_notes_score" not in indexes(db, "notes")
    arch = f"notes__score__{rev3}"
    assert [c[0] for c in columns(db, arch, "schemactl_archive")] == [
        "id", "score", "revision", "archived_at"]
    with connect(db) as conn:
        assert conn.execute(f'select sum(score), count(*) from schemactl_archive."{arch}"'
                            ).fetchone() == total
        assert conn.execute(
            f'select count(*) from schemactl_archive."{arch}" a join notes n using (id)'
        ).fetchone()[0] == 300  # type: ignore[index]
        reg = conn.execute("select revision, kind, source_table, source_column, archive_table, "
                           "row_count from schemactl_archive.archive_registry").fetchall()
    assert reg == [(rev3, "column", "notes", "score", arch, 300)]

    # one step further back: the table itself moves to the archive with all its rows
    rev2 = first.json["applied"][-1]
    engine = make_engine(db)
    try:
        with engine.connect() as connection:
            migrator.downgrade(sr, connection, "-1")
    finally:
        engine.dispose()
    with connect(db) as conn:
        assert conn.execute("select to_regclass('public.notes')").fetchone()[0] is None  # type: ignore[index]
        assert conn.execute(f'select count(*) from schemactl_archive."notes__{rev2}"'
                            ).fetchone()[0] == 300  # type: ignore[index]
    # and up again, then down again: the archive names do not collide
    apply_again = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert apply_again.code == 0, apply_again
    engine = make_engine(db)
    try:
        with engine.connect() as connection:
            migrator.downgrade(sr, connection, "0001_core")
    finally:
        engine.dispose()
    with connect(db) as conn:
        names = {r[0] for r in conn.execute(
            "select archive_table from schemactl_archive.archive_registry").fetchall()}
    assert {f"notes__{rev2}", f"notes__{rev2}_1", arch, f"{arch}_1"} <= names


# -- rejection, idempotence, determinism, dry run ----------------------------------------


def test_rejected_proposal_leaves_repository_byte_for_byte(repo: Path, cli: Any) -> None:
    assert propose(cli, repo, NOTES).code == 0
    before = snapshot(repo)
    # dropping a column and a table without base fields: both rejected by the rules
    dropped = NOTES.replace("  - {name: title, type: varchar(100), nullable: false}\n", "")
    res = propose(cli, repo, dropped)
    assert res.code == 1, res
    assert res.json["ok"] is False
    assert "SC102" in {v["rule"] for v in res.json["violations"]}
    assert snapshot(repo) == before
    res = propose(cli, repo, "table: bare\ncolumns:\n  - {name: x, type: text}\n")
    assert res.code == 1, res
    assert "SC301" in {v["rule"] for v in res.json["violations"]}
    assert snapshot(repo) == before
    res = propose(cli, repo, "table: bad\ncolumns: [}")
    assert res.code == 2, res
    assert snapshot(repo) == before


def test_failure_after_writing_restores_everything(repo: Path, monkeypatch: Any) -> None:
    from schemactl import api
    from schemactl.adapters import gitops
    from schemactl.errors import EnvironmentError_

    before = snapshot(repo)
    real_commit = gitops.commit

    def broken(root: Path, paths: Any, *args: Any, **kw: Any) -> str:
        subprocess.run(["git", "-C", str(root), "add", "--", *map(str, paths)], check=True)
        raise EnvironmentError_("git commit failed: simulated")

    monkeypatch.setattr(gitops, "commit", broken)
    with pytest.raises(EnvironmentError_):
        api.propose(repo, stdin=NOTES, actor="user:test")
    assert snapshot(repo) == before
    monkeypatch.setattr(gitops, "commit", real_commit)
    assert api.propose(repo, stdin=NOTES, actor="user:test").ok


def test_repropose_identical_is_a_no_op(repo: Path, cli: Any) -> None:
    assert propose(cli, repo, NOTES).code == 0
    before = snapshot(repo)
    res = propose(cli, repo, NOTES.replace("nullable: false}", "nullable: false }"))
    assert res.code == 0, res
    assert res.json["migration"] is None and res.json["commit"] is None
    assert snapshot(repo) == before


def test_same_input_gives_the_same_migration(tmp_path: Path, cli: Any) -> None:
    bodies = []
    for name in ("a", "b"):
        path = tmp_path / name
        assert cli("init", str(path)).code == 0
        for text in (PROJECTS, characters(True)):
            res = propose(cli, path, text)
            assert res.code == 0, res
        bodies.append({p.name: p.read_bytes() for p in (path / "migrations/versions").glob("*.py")})
    assert bodies[0] == bodies[1]
    assert len(bodies[0]) == 3


def test_dry_run_writes_nothing(repo: Path, cli: Any) -> None:
    before = snapshot(repo)
    res = propose(cli, repo, NOTES, "--dry-run")
    assert res.code == 0, res
    assert res.json["commit"] is None and res.json["dry_run"] is True
    assert "CREATE TABLE notes" in res.json["migration"]["sql"]
    assert snapshot(repo) == before
    human = cli("propose", "-", "--dry-run", cwd=repo, input=NOTES)
    assert human.code == 0 and "CREATE TABLE notes" in human.stdout
    assert snapshot(repo) == before


def test_definition_dict_and_deprecation_is_a_comment(repo: Path, db: Target, cli: Any) -> None:
    from schemactl import api
    from schemactl.model.parsing import parse_definition

    as_dict = parse_definition(NOTES).to_dict()
    res = api.propose(repo, definition=as_dict, actor="agent:mechanic")
    assert res.ok and res.migration
    apply(cli, repo, db)
    as_dict["columns"][5]["deprecated"] = True
    res = api.propose(repo, definition=json.loads(json.dumps(as_dict)), actor="agent:mechanic")
    assert res.ok, res
    assert [c["action"] for c in res.changes] == ["deprecate_column"]
    assert "DROP" not in res.migration["sql"]
    assert "COMMENT ON COLUMN notes.title IS 'DEPRECATED'" in res.migration["sql"]
    apply(cli, repo, db)
    assert columns(db, "notes")[5][4] == "DEPRECATED"


def test_plain_alembic_upgrade_works_without_schemactl(repo: Path, db: Target, cli: Any,
                                                       has_vector: bool) -> None:
    import os
    import sys

    assert propose(cli, repo, PROJECTS).code == 0
    assert propose(cli, repo, characters(has_vector)).code == 0
    # schemactl made unimportable: the migrations need only alembic, sqlalchemy, pgvector
    code = ("import sys; sys.modules['schemactl'] = None; "
            "from alembic.config import main; main(['upgrade', 'head'])")
    env = {**os.environ, "DATABASE_URL": db.url}
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [c[0] for c in columns(db, "characters")][:6] == [
        "id", "created_at", "updated_at", "is_deleted", "created_by", "name"]


def test_propose_missing_file_is_bad_input(repo: Path, cli: Any) -> None:
    res = cli("propose", "nope.yaml", "--json", cwd=repo)
    assert res.code == 2, res
    assert res.json["ok"] is False and res.json["error"]["code"] == "bad_input"


def test_special_and_bounded_number_defaults_apply(repo: Path, db: Target, cli: Any) -> None:
    # NaN/Infinity must reach PostgreSQL quoted (bare, they read as column names), and a
    # default that overflows numeric(p,s) is refused before it can fail CREATE TABLE.
    text = f"""\
table: measures
columns:
{BASE}  - {{name: a, type: real, default: NaN}}
  - {{name: b, type: double precision, default: "-Infinity"}}
  - {{name: c, type: numeric, default: Infinity}}
  - {{name: d, type: "numeric(3,1)", default: "99.94"}}
  - {{name: e, type: double precision, default: -2.5e10}}
"""
    res = propose(cli, repo, text)
    assert res.code == 0, res
    apply(cli, repo, db)
    with connect(db) as conn:
        conn.execute("insert into measures default values")
        row = conn.execute("select a::text, b::text, c::text, d::text, e from measures").fetchone()
    assert row == ("NaN", "-Infinity", "Infinity", "99.9", -2.5e10)
    for bad in ('{name: n, type: "numeric(3,1)", default: 1234}',
                "{name: n, type: double precision, default: .inf}",
                '{name: n, type: integer, default: "1_000"}'):
        res = propose(cli, repo, f"table: bad\ncolumns:\n{BASE}  - {bad}\n")
        assert res.code == 1 and [v["rule"] for v in res.json["violations"]] == ["SC404"], res


def test_plain_alembic_check_keeps_deprecated_columns_and_tables(repo: Path, db: Target,
                                                                 cli: Any) -> None:
    import os
    import sys

    assert propose(cli, repo, NOTES).code == 0
    assert propose(cli, repo, PROJECTS).code == 0
    deprecated = NOTES.replace("nullable: false}", "nullable: false, deprecated: true}")
    assert propose(cli, repo, deprecated).code == 0
    assert propose(cli, repo, PROJECTS.replace("comment: Story projects",
                                               "deprecated: true")).code == 0
    apply(cli, repo, db)
    # Autogenerate in the repository's own env.py must see the retired column and table as
    # they are (kept), not propose dropping them.
    env = {**os.environ, "DATABASE_URL": db.url}
    proc = subprocess.run([sys.executable, "-m", "alembic", "check"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_index_named_like_a_key_index_is_refused(repo: Path, db: Target, cli: Any) -> None:
    assert propose(cli, repo, NOTES).code == 0
    apply(cli, repo, db)
    with connect(db) as conn:  # keys are indexes: their names share the schema's namespace
        assert conn.execute("select to_regclass('public.pk_notes')::text, "
                            "to_regclass('public.pk_agents')::text").fetchone() == (
            "pk_notes", "pk_agents")
    before = snapshot(repo)
    for name in ("pk_notes", "pk_agents"):
        clash = NOTES.replace("table: notes", "table: drafts") + (
            f"indexes:\n  - {{columns: [title], name: {name}}}\n")
        res = propose(cli, repo, clash)
        assert res.code == 1, res
        assert [v["rule"] for v in res.json["violations"]] == ["SC405"], res.json
    assert snapshot(repo) == before


def test_vector_index_dimension_limit_matches_pgvector(repo: Path, db: Target, cli: Any,
                                                       has_vector: bool) -> None:
    if not has_vector:
        pytest.skip("pgvector is not installed on this server")
    ok = f"table: embeds\ncolumns:\n{BASE}  - {{name: e, type: vector(2000)}}\n" \
         "indexes:\n  - {columns: [e], using: hnsw, opclass: vector_cosine_ops}\n"
    assert propose(cli, repo, ok).code == 0
    apply(cli, repo, db)
    assert indexes(db, "embeds")["ix_embeds_e_hnsw"][1] is True
    import psycopg

    with connect(db) as conn, pytest.raises(psycopg.Error, match="2000 dimensions"):
        conn.execute("create table wide (e vector(2001))")
        conn.execute("create index on wide using hnsw (e vector_cosine_ops)")
    res = propose(cli, repo, ok.replace("embeds", "wide").replace("2000", "2001"))
    assert res.code == 1 and [v["rule"] for v in res.json["violations"]] == ["SC403"], res
