"""Online changes against a real PostgreSQL: rename, retype, NOT NULL with backfill.

Each test fills a ~20k-row table, proposes the marked change, applies it and checks every
value by checksum; the 1M-row runs under pgbench load are scripts/bench_online.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from schemactl import api
from schemactl.adapters.database import Target, connect

ROWS = 20_000

BASE = """  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
"""
V1 = "table: notes\ncolumns:\n" + BASE + """  - {name: title, type: varchar(200)}
  - {name: score, type: integer}
  - {name: body, type: text}
"""


def v2(title: str = "{name: title, type: varchar(200)}",
       score: str = "{name: score, type: integer}",
       body: str = "{name: body, type: text}") -> str:
    return "table: notes\ncolumns:\n" + BASE + f"  - {title}\n  - {score}\n  - {body}\n"


def fill(db: Target, rows: int = ROWS) -> None:
    with connect(db) as conn:
        conn.execute(
            "INSERT INTO notes (title, score, body) SELECT 'title ' || g, g * 7, "
            "CASE WHEN g %% 10 = 0 THEN NULL ELSE 'body ' || g END "
            "FROM generate_series(1, %s) g", (rows,))
        conn.commit()


def checksum(db: Target, *cols: str) -> str:
    exprs = " || '|' || ".join(f"coalesce({c}::text, '<null>')" for c in cols)
    with connect(db) as conn:
        row = conn.execute(f"SELECT md5(string_agg({exprs}, ',' ORDER BY id)) FROM notes"
                           ).fetchone()
    assert row is not None
    return str(row[0])


def columns(db: Target) -> dict[str, tuple[str, bool]]:
    with connect(db) as conn:
        rows = conn.execute(
            "SELECT column_name, format_type(a.atttypid, a.atttypmod), c.is_nullable = 'YES' "
            "FROM information_schema.columns c JOIN pg_attribute a ON a.attrelid = "
            "'public.notes'::regclass AND a.attname = c.column_name "
            "WHERE c.table_schema = 'public' AND c.table_name = 'notes'").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def setup(repo: Path, db: Target) -> None:
    api.propose(repo, stdin=V1, actor="user:test")
    api.apply(repo, database_url=db.url, actor="user:test")
    fill(db)


def propose_apply(repo: Path, db: Target, text: str, **kw: Any) -> Any:
    res = api.propose(repo, stdin=text, actor="user:test")
    assert res.ok, res
    return api.apply(repo, database_url=db.url, actor="user:test", **kw)


def test_integer_to_bigint_keeps_every_value(repo: Path, db: Target) -> None:
    setup(repo, db)
    before = checksum(db, "score")
    seen: list[tuple[str, int, int | None]] = []
    result = propose_apply(repo, db, v2(score="{name: score, type: bigint}"),
                           progress=lambda s, d, t: seen.append((s, d, t)))
    assert result.ok
    assert columns(db)["score"] == ("bigint", True)
    assert checksum(db, "score") == before
    assert not any(c.startswith("_sc_") for c in columns(db))
    assert any(s.startswith("backfill notes.score") and d == ROWS for s, d, _ in seen)
    with connect(db) as conn:
        archived = conn.execute("SELECT row_count FROM schemactl_archive.archive_registry "
                                "WHERE source_column = 'score'").fetchone()
    assert archived == (ROWS,)


def _small_batches(repo: Path, rows: int = 2000, pause_ms: int = 0) -> None:
    cfg = repo / "schemactl.toml"
    cfg.write_text(cfg.read_text() + f"\n[online]\nbatch_rows = {rows}\npause_ms = {pause_ms}\n")
    import subprocess

    subprocess.run(["git", "-C", str(repo), "commit", "-qam", "online batches"], check=True)


def test_rename_keeps_old_and_new_names_in_step_until_contract(repo: Path, db: Target) -> None:
    setup(repo, db)
    _small_batches(repo)
    before = checksum(db, "title")
    during: list[tuple[Any, ...]] = []

    def mid_backfill(step: str, done: int, total: int | None) -> None:
        if not step.startswith("backfill") or during:
            return
        with connect(db) as conn:  # an old writer, a new writer, an old reader
            conn.execute("INSERT INTO notes (id, title) VALUES "
                         "('00000000-0000-0000-0000-000000000001', 'by old name')")
            conn.execute("INSERT INTO notes (id, headline) VALUES "
                         "('00000000-0000-0000-0000-000000000002', 'by new name')")
            conn.execute("UPDATE notes SET headline = 'renamed too' WHERE id = "
                         "'00000000-0000-0000-0000-000000000001'")
            during.append(conn.execute(
                "SELECT title, headline FROM notes WHERE id IN ("
                "'00000000-0000-0000-0000-000000000001', "
                "'00000000-0000-0000-0000-000000000002') ORDER BY id").fetchall())
            during.append(conn.execute("SELECT count(title) FROM notes").fetchone())
            conn.execute("DELETE FROM notes WHERE id IN ('00000000-0000-0000-0000-000000000001',"
                         " '00000000-0000-0000-0000-000000000002')")
            conn.commit()

    result = propose_apply(repo, db, v2(
        title="{name: headline, type: varchar(200), renamed_from: title}"),
        progress=mid_backfill)
    assert result.ok
    assert during[0] == [("renamed too", "renamed too"), ("by new name", "by new name")]
    assert during[1] == (ROWS + 2,)
    cols = columns(db)
    assert "title" not in cols and cols["headline"] == ("character varying(200)", True)
    assert checksum(db, "headline") == before
    status = api.status(repo, database_url=db.url)
    assert not status.drift


def test_varchar_narrowing_when_values_fit_and_refused_when_one_does_not(
        repo: Path, db: Target) -> None:
    setup(repo, db)
    before = checksum(db, "title")
    with connect(db) as conn:
        conn.execute("UPDATE notes SET title = repeat('x', 150) WHERE id = "
                     "(SELECT id FROM notes ORDER BY id LIMIT 1)")
        conn.commit()
        long_id = str(conn.execute("SELECT id FROM notes ORDER BY id LIMIT 1").fetchone()[0])
    with_long = checksum(db, "title")
    res = api.propose(repo, stdin=v2(title="{name: title, type: varchar(100)}"),
                      actor="user:test")
    assert res.ok
    from schemactl.errors import SchemactlError

    with pytest.raises(SchemactlError) as err:
        api.apply(repo, database_url=db.url, actor="user:test")
    assert long_id in err.value.message and "stopped before the contract" in err.value.message
    assert columns(db)["title"] == ("character varying(200)", True)
    assert set(columns(db)) == {"id", "created_at", "updated_at", "is_deleted", "created_by",
                                "title", "score", "body"}
    assert checksum(db, "title") == with_long
    with connect(db) as conn:  # make it fit; the next apply converges
        conn.execute("UPDATE notes SET title = 'title 0' WHERE id = %s", (long_id,))
        conn.commit()
    fitted = checksum(db, "title")
    assert fitted != before
    result = api.apply(repo, database_url=db.url, actor="user:test")
    assert result.ok
    assert columns(db)["title"] == ("character varying(100)", True)
    assert checksum(db, "title") == fitted


def test_not_null_with_backfill_then_rollback_restores_the_nulls(repo: Path, db: Target) -> None:
    setup(repo, db)
    before = checksum(db, "body")
    result = propose_apply(repo, db, v2(body="{name: body, type: text, nullable: false, "
                                              "backfill: ''}"))
    assert result.ok
    assert columns(db)["body"] == ("text", False)
    with connect(db) as conn:
        empty = conn.execute("SELECT count(*) FROM notes WHERE body = ''").fetchone()
    assert empty == (ROWS // 10,)
    back = api.rollback(repo, database_url=db.url, actor="user:test")
    assert back.ok
    assert columns(db)["body"] == ("text", True)
    assert checksum(db, "body") == before


def test_rollback_after_contract_of_a_rename_and_a_retype(repo: Path, db: Target) -> None:
    setup(repo, db)
    before = checksum(db, "title", "score")
    assert propose_apply(repo, db, v2(
        title="{name: headline, type: varchar(200), renamed_from: title}",
        score="{name: score, type: bigint}")).ok
    assert checksum(db, "headline", "score") == before
    assert api.rollback(repo, database_url=db.url, actor="user:test").ok
    cols = columns(db)
    assert cols["title"] == ("character varying(200)", True) and "headline" not in cols
    assert cols["score"] == ("integer", True)
    assert checksum(db, "title", "score") == before
    assert not any(c.startswith("_sc_") for c in cols)
