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
    proposed = api.propose(shop.repo, stdin=text + "  - {name: email, type: citext}\n",
                           actor="user:test")
    assert proposed.ok, proposed.violations
    assert "CREATE EXTENSION IF NOT EXISTS citext" in proposed.migration["sql"]
    plan = api.plan(shop.repo, shop.db.url)
    assert "CREATE EXTENSION IF NOT EXISTS citext" in plan.sql and plan.warnings == []
    assert api.apply(shop.repo, shop.db.url, actor="user:test").ok
    assert shop.column_types("readings")["email"] == "citext"
    shop.execute("insert into readings (email) values ('Ann@Example.org')")
    assert shop.rows("select count(*) from readings where email = 'ann@example.org'") == [(1,)]


TEAMS = f"table: teams\ncolumns:\n{BASE}  - {{name: name, type: text, nullable: false}}\n"

MEMBERS = """table: members
columns:
<BASE>  - {name: email, type: citext, nullable: false}
  - {name: age, type: integer, check: {min: 0, max: 150}}
  - name: status
    type: varchar(20)
    nullable: false
    default: active
    check: {allowed: [active, archived]}
  - {name: handle, type: varchar(40), check: {min_length: 3, pattern: '^[a-z0-9_]+$'}}
  - {name: team_id, type: uuid, references: {to: teams.id, on_delete: set_null}}
  - name: owner_id
    type: uuid
    references: {to: teams.id, on_delete: cascade, on_update: restrict}
  - {name: search, type: tsvector, generated: {tsvector: [email, handle], config: simple}}
  - {name: email_lower, type: text, generated: {lower: email}}
  - {name: started_at, type: timestamptz}
  - {name: ended_at, type: timestamptz}
checks:
  - {name: ck_members_ended_after_started, left: ended_at, op: '>=', right: started_at}
indexes:
  - {columns: [email], unique: true, where: {is_deleted: false}}
  - {columns: [team_id], include: [status]}
  - {columns: [search], using: gin}
  - columns: [handle]
    where: {ended_at: {is_null: true}, status: active}
    name: ix_members_open_handle
""".replace("<BASE>", BASE)


def _constraints(shop: Shop, table: str) -> dict[str, tuple[str, str, str, str, bool]]:
    rows = shop.rows(
        "select conname, contype, confdeltype, confupdtype, pg_get_constraintdef(oid), "
        "convalidated from pg_constraint where conrelid = %s::regclass", f"public.{table}")
    return {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in rows}


def _indexes(shop: Shop, table: str) -> dict[str, tuple[str | None, str]]:
    rows = shop.rows(
        "select c.relname, pg_get_expr(i.indpred, i.indrelid), pg_get_indexdef(i.indexrelid) "
        "from pg_index i join pg_class c on c.oid = i.indexrelid "
        "where i.indrelid = %s::regclass", f"public.{table}")
    return {r[0]: (r[1], r[2]) for r in rows}


def test_checks_references_indexes_generated(shop: Shop) -> None:
    shop.propose_apply(TEAMS)
    shop.propose_apply(MEMBERS)
    cons = _constraints(shop, "members")
    assert cons["ck_members_age"][3] == "CHECK (((age >= 0) AND (age <= 150)))"
    assert "ANY" in cons["ck_members_status"][3] and "'archived'" in cons["ck_members_status"][3]
    assert "char_length" in cons["ck_members_handle"][3] and "~" in cons["ck_members_handle"][3]
    assert cons["ck_members_ended_after_started"][3] == "CHECK ((ended_at >= started_at))"
    fk = cons["fk_members_team_id_teams_del_set_null"]
    assert (fk[0], fk[1], fk[2]) == ("f", "n", "a")
    fk = cons["fk_members_owner_id_teams_del_cascade_upd_restrict"]
    assert (fk[1], fk[2]) == ("c", "r")
    idx = _indexes(shop, "members")
    assert idx["uq_members_email"][0] == "(is_deleted = false)"
    assert "INCLUDE (status)" in idx["ix_members_team_id"][1]
    assert idx["ix_members_open_handle"][0] == \
        "((ended_at IS NULL) AND ((status)::text = 'active'::text))"
    gen = dict(shop.rows("select attname, attgenerated from pg_attribute where attrelid = "
                         "'public.members'::regclass and attgenerated <> ''"))
    assert gen == {"search": "s", "email_lower": "s"}  # stored, never virtual
    # The partial unique index lets a soft-deleted row keep its address.
    shop.execute("insert into members (email, is_deleted) values ('a@x.org', true)")
    shop.execute("insert into members (email) values ('A@x.org')")
    with pytest.raises(Exception, match="uq_members_email"):
        shop.execute("insert into members (email) values ('a@X.org')")
    assert shop.rows("select email_lower, search::text from members where not is_deleted") == [
        ("a@x.org", "'a@x.org':1")]
    with pytest.raises(Exception, match="ck_members_age"):
        shop.execute("insert into members (email, age) values ('b@x.org', 200)")


def test_evolving_an_existing_table(shop: Shop) -> None:
    """Checks, FK actions and partial indexes on a table with rows, by the lock-safe path."""
    if not (shop.repo / "dynamic_schema" / "members.yaml").exists():
        shop.propose_apply(TEAMS)
        shop.propose_apply(MEMBERS)
    shop.execute("insert into teams (name) values ('t1')")
    shop.execute("insert into members (email, age, team_id) select 'old@x.org', 120, id "
                 "from teams limit 1")
    (old_id,) = shop.rows("select id::text from members where email = 'old@x.org'")[0]
    text = (shop.repo / "dynamic_schema" / "members.yaml").read_text()

    # Tightening a check that an existing row violates stops before anything is committed.
    tight = text.replace("max: 150", "max: 100")
    proposed = api.propose(shop.repo, stdin=tight, actor="user:test")
    assert proposed.ok, proposed.violations
    sql = proposed.migration["sql"]
    assert "NOT VALID" in sql and 'VALIDATE CONSTRAINT "ck_members_age"' in sql
    before = _constraints(shop, "members")
    from schemactl.errors import SchemactlError

    with pytest.raises(SchemactlError, match=f"ck_members_age.*{old_id}") as refused:
        result = api.apply(shop.repo, shop.db.url, actor="user:test")
        assert result.ok, result
    assert (refused.value.code, refused.value.exit_code) == ("migration_refused", 3)
    assert _constraints(shop, "members") == before  # nothing committed
    shop.execute("update members set age = 99 where email = 'old@x.org'")
    applied = api.apply(shop.repo, shop.db.url, actor="user:test")
    assert applied.ok, applied
    cons = _constraints(shop, "members")
    assert cons["ck_members_age"][3] == "CHECK (((age >= 0) AND (age <= 100)))"
    assert cons["ck_members_age"][4] is True  # validated

    # Changing an action: a new constraint NOT VALID + VALIDATE, the old one dropped.
    changed = tight.replace("on_delete: set_null", "on_delete: cascade") + (
        "  - {columns: [age], where: {is_deleted: false}, name: ix_members_live_age}\n")
    changed = changed.replace("checks:\n", "checks:\n  - {left: age, op: '<=', right: age}\n")
    proposed = shop.propose_apply(changed)
    assert not proposed.violations
    cons = _constraints(shop, "members")
    assert "fk_members_team_id_teams_del_set_null" not in cons
    fk = cons["fk_members_team_id_teams_del_cascade"]
    assert (fk[1], fk[4]) == ("c", True)
    assert cons["ck_members_age_le_age"][4] is True
    assert _indexes(shop, "members")["ix_members_live_age"][0] == "(is_deleted = false)"
    shop.execute("delete from teams")
    assert shop.rows("select count(*) from members where email = 'old@x.org'") == [(0,)]
    status = api.status(shop.repo, shop.db.url)
    assert status.drift == [], status.drift


def test_index_options(shop: Shop) -> None:
    """hnsw m/ef_construction and ivfflat lists (reloptions), gin jsonb_path_ops, fillfactor."""
    vec = ""
    vec_idx = ""
    if shop.vector:
        vec = "  - {name: embedding, type: vector(3)}\n  - {name: half, type: halfvec(3)}\n"
        vec_idx = ("  - {columns: [embedding], using: hnsw, opclass: vector_cosine_ops, "
                   "with: {m: 16, ef_construction: 64}}\n"
                   "  - {columns: [half], using: ivfflat, opclass: halfvec_l2_ops, "
                   "with: {lists: 10}}\n")
    shop.propose_apply(f"""table: documents
columns:
{BASE}  - {{name: body, type: jsonb, nullable: false, default: '{{}}'}}
  - {{name: title, type: text}}
{vec}indexes:
  - {{columns: [body], using: gin, opclass: jsonb_path_ops}}
  - {{columns: [title], with: {{fillfactor: 70}}}}
{vec_idx}""")
    rows = shop.rows(
        "select c.relname, c.reloptions, pg_get_indexdef(i.indexrelid) from pg_index i "
        "join pg_class c on c.oid = i.indexrelid where i.indrelid = 'public.documents'::regclass")
    found = {r[0]: (r[1], r[2]) for r in rows}
    assert "jsonb_path_ops" in found["ix_documents_body_gin"][1]
    assert found["ix_documents_title"][0] == ["fillfactor=70"]
    if shop.vector:
        assert sorted(found["ix_documents_embedding_hnsw"][0]) == ["ef_construction=64", "m=16"]
        assert found["ix_documents_half_ivfflat"][0] == ["lists=10"]


def test_drift_sees_checks_actions_and_predicates(shop: Shop) -> None:
    """Last in the module: it leaves the shared database drifted on purpose."""
    if not (shop.repo / "dynamic_schema" / "members.yaml").exists():
        shop.propose_apply(TEAMS)
        shop.propose_apply(MEMBERS)
    shop.execute("alter table members drop constraint ck_members_status")
    shop.execute("alter table members add constraint ck_members_status "
                 "check (status in ('active'))")
    fks = [n for n in _constraints(shop, "members") if n.startswith("fk_members_owner_id")]
    shop.execute(f'alter table members drop constraint "{fks[0]}"')
    shop.execute(f'alter table members add constraint "{fks[0]}" foreign key (owner_id) '
                 "references teams (id)")
    shop.execute("drop index uq_members_email")
    shop.execute("create unique index uq_members_email on members (email) where is_deleted")
    kinds = {(d["kind"], d.get("index")) for d in api.status(shop.repo, shop.db.url).drift}
    assert ("check", "ck_members_status") in kinds
    assert ("foreign_key_action", fks[0]) in kinds
    assert ("index_predicate", "uq_members_email") in kinds
