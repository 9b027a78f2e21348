"""Issue 14: the definition format's structured additions, proposed and applied on a real
PostgreSQL (15 and 18), asserted in the catalog.

One database and one schema repository per module: each feature family is one propose →
apply (plus an evolution of an existing table), not one apply per case.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schemactl import api
from schemactl.adapters.database import Target, connect

BASE = """\
  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
"""


class Shop:
    """A schema repository and its database, shared by the module's tests."""

    def __init__(self, repo: Path, db: Target, vector: bool) -> None:
        self.repo, self.db, self.vector = repo, db, vector

    def propose_apply(self, text: str) -> Any:
        proposed = api.propose(self.repo, stdin=text, actor="user:test")
        assert proposed.ok, [(v.rule, v.message) for v in proposed.violations]
        applied = api.apply(self.repo, self.db.url, actor="user:test")
        assert applied.ok, applied
        return proposed

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with connect(self.db) as conn:
            return [tuple(r) for r in conn.execute(sql, args).fetchall()]

    def execute(self, sql: str, *args: Any) -> None:
        with connect(self.db) as conn:
            conn.execute(sql, args)

    def column_types(self, table: str) -> dict[str, str]:
        return dict(self.rows(  # type: ignore[arg-type]
            "select attname, format_type(atttypid, atttypmod) from pg_attribute "
            "where attrelid = %s::regclass and attnum > 0 and not attisdropped",
            f"public.{table}"))


@pytest.fixture(scope="module")
def shop(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    repo = tmp_path_factory.mktemp("format") / "repo"
    api.init(repo, actor="user:test")
    db = pg_server.create_database()
    with connect(db) as conn:
        vector = conn.execute("select 1 from pg_available_extensions "
                              "where name = 'vector'").fetchone() is not None
    try:
        yield Shop(repo, db, vector)
    finally:
        pg_server.drop_database(db)


def test_types(shop: Shop) -> None:
    vec = ("  - {name: half, type: halfvec(4)}\n  - {name: sparse, type: sparsevec(5)}\n"
           if shop.vector else "")
    shop.propose_apply(f"""table: readings
columns:
{BASE}  - {{name: opens_at, type: time, default: '08:30'}}
  - {{name: closes_at, type: timetz}}
  - {{name: taken_at, type: timestamptz(3), nullable: false, default: now()}}
  - {{name: logged, type: timestamp(0)}}
  - {{name: span, type: interval}}
  - {{name: last_ip, type: inet, default: 127.0.0.1}}
  - {{name: net, type: cidr}}
  - {{name: mac, type: macaddr}}
  - {{name: doc, type: tsvector}}
{vec}""")
    types = shop.column_types("readings")
    assert types["opens_at"] == "time without time zone"
    assert types["closes_at"] == "time with time zone"
    assert types["taken_at"] == "timestamp(3) with time zone"
    assert types["logged"] == "timestamp(0) without time zone"
    assert types["span"] == "interval"
    assert (types["last_ip"], types["net"], types["mac"]) == ("inet", "cidr", "macaddr")
    assert types["doc"] == "tsvector"
    if shop.vector:
        assert (types["half"], types["sparse"]) == ("halfvec(4)", "sparsevec(5)")
    # Evolution: a citext column on the existing table creates the extension first.
    text = (shop.repo / "dynamic_schema" / "readings.yaml").read_text()
    proposed = shop.propose_apply(text + "  - {name: email, type: citext}\n")
    assert "CREATE EXTENSION IF NOT EXISTS citext" in proposed.migration["sql"]
    assert shop.column_types("readings")["email"] == "citext"
    shop.execute("insert into readings (email) values ('Ann@Example.org')")
    assert shop.rows("select count(*) from readings where email = 'ann@example.org'") == [(1,)]
