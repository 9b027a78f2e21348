"""Issue 14, the last two parts: expression indexes from a whitelist and composite foreign
keys, proposed and applied on a real PostgreSQL (15 and 18), asserted in the catalog.

One database and one schema repository per module. Each feature: a new table, then an
evolution of an existing one by the lock-safe path, a row the database refuses, a clean
drift check, and a rollback that leaves the shape before.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schemactl import api
from schemactl.adapters.database import Target, connect
from tests.test_format import BASE


class Repo:
    def __init__(self, repo: Path, db: Target) -> None:
        self.repo, self.db = repo, db

    def propose_apply(self, text: str) -> Any:
        proposed = api.propose(self.repo, stdin=text, actor="user:test")
        assert proposed.ok, [(v["rule"], v["message"]) for v in proposed.violations]
        applied = api.apply(self.repo, self.db.url, actor="user:test")
        assert applied.ok, applied
        return proposed

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with connect(self.db) as conn:
            return [tuple(r) for r in conn.execute(sql, args).fetchall()]

    def execute(self, sql: str, *args: Any) -> None:
        with connect(self.db) as conn:
            conn.execute(sql, args)

    def indexes(self, table: str) -> dict[str, str]:
        return dict(self.rows(  # type: ignore[arg-type]
            "select c.relname, pg_get_indexdef(i.indexrelid) from pg_index i "
            "join pg_class c on c.oid = i.indexrelid where i.indrelid = %s::regclass",
            f"public.{table}"))

    def constraints(self, table: str) -> dict[str, tuple[str, str, str, bool]]:
        rows = self.rows(
            "select conname, contype, confdeltype, pg_get_constraintdef(oid), convalidated "
            "from pg_constraint where conrelid = %s::regclass", f"public.{table}")
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def no_drift(self) -> None:
        status = api.status(self.repo, self.db.url)
        assert status.drift == [], status.drift
        assert not status.pending

    def check_from(self, base: str) -> None:
        """`check` replays the branch's migrations offline and finds them equal to the
        definitions (SC602/SC604 would say otherwise)."""
        result = api.check(self.repo, base=base)
        assert result.ok, [v["message"] for v in result.violations]

    def head(self) -> str:
        return subprocess.run(["git", "-C", str(self.repo), "rev-parse", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def repo(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    path = tmp_path_factory.mktemp("format_keys") / "repo"
    api.init(path, actor="user:test")
    db = pg_server.create_database()
    try:
        yield Repo(path, db)
    finally:
        pg_server.drop_database(db)


ACCOUNTS = f"""table: accounts
columns:
{BASE}  - {{name: email, type: varchar(200), nullable: false}}
  - {{name: handle, type: text}}
  - {{name: region, type: text}}
indexes:
  - {{columns: [{{lower: email}}], unique: true, where: {{is_deleted: false}}}}
"""


def test_expression_indexes(repo: Repo) -> None:
    """lower(email) unique among live rows on a new table; upper(handle) added CONCURRENTLY
    to the existing table; drift clean; rollback leaves the shape before."""
    base = repo.head()
    repo.propose_apply(ACCOUNTS)
    idx = repo.indexes("accounts")
    assert idx["uq_accounts_lower_email"] == (
        "CREATE UNIQUE INDEX uq_accounts_lower_email ON public.accounts USING btree "
        "(lower((email)::text)) WHERE (is_deleted = false)")
    repo.execute("insert into accounts (email) values ('Ann@Example.org')")
    with pytest.raises(Exception, match="uq_accounts_lower_email"):
        repo.execute("insert into accounts (email) values ('ann@example.ORG')")
    repo.execute("insert into accounts (email, is_deleted) values ('ANN@example.org', true)")
    repo.no_drift()

    evolved = ACCOUNTS + "  - {columns: [region, {upper: handle}], include: [email]}\n"
    proposed = repo.propose_apply(evolved)
    sql = proposed.migration["sql"]
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_accounts_region_upper_handle" in sql
    idx = repo.indexes("accounts")
    assert idx["ix_accounts_region_upper_handle"] == (
        "CREATE INDEX ix_accounts_region_upper_handle ON public.accounts USING btree "
        "(region, upper(handle)) INCLUDE (email)")
    repo.no_drift()
    repo.check_from(base)
    # The diagram draws the table; lower(email) makes no column unique by itself.
    picture = api.diagram(repo.repo, ["accounts"]).diagram
    assert "varchar(200) email \"not null\"" in picture and "UK" not in picture, picture

    rolled = api.rollback(repo.repo, repo.db.url, actor="user:test")
    assert rolled.ok, rolled
    assert set(repo.indexes("accounts")) == {"pk_accounts", "uq_accounts_lower_email"}
    status = api.status(repo.repo, repo.db.url)
    assert status.drift == [], status.drift

    # An expression index in the database must match the definition's expression.
    repo.execute("drop index uq_accounts_lower_email")
    repo.execute("create unique index uq_accounts_lower_email on accounts (upper(email)) "
                 "where is_deleted = false")
    drift = api.status(repo.repo, repo.db.url).drift
    assert {d.get("index") for d in drift} == {"uq_accounts_lower_email"}, drift
    repo.execute("drop index uq_accounts_lower_email")
    repo.execute("create unique index uq_accounts_lower_email on accounts (lower(email)) "
                 "where is_deleted = false")
    repo.no_drift()


ORDERS = f"""table: orders
columns:
{BASE}  - {{name: tenant_id, type: uuid, nullable: false}}
indexes:
  - {{columns: [tenant_id, id], unique: true}}
"""
ITEMS = f"""table: order_items
columns:
{BASE}  - {{name: tenant_id, type: uuid, nullable: false}}
  - {{name: order_id, type: uuid, nullable: false}}
references:
  - {{columns: [tenant_id, order_id], to: orders, to_columns: [tenant_id, id], on_delete: cascade}}
"""
SHIPMENTS = f"""table: shipments
columns:
{BASE}  - {{name: tenant_id, type: uuid}}
  - {{name: order_id, type: uuid}}
"""


def test_composite_foreign_keys(repo: Repo) -> None:
    """A composite key to a composite unique key: with a new table, added NOT VALID +
    VALIDATE to an existing one, its action replaced lock-safely, rolled back."""
    base = repo.head()
    repo.propose_apply(ORDERS)
    repo.propose_apply(ITEMS)
    name = "fk_order_items_tenant_id_order_id_orders_del_cascade"
    fk = repo.constraints("order_items")[name]
    assert fk == ("f", "c", "FOREIGN KEY (tenant_id, order_id) REFERENCES "
                  "orders(tenant_id, id) ON DELETE CASCADE", True)
    t1, t2 = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
    repo.execute("insert into orders (tenant_id) values (%s)", t1)
    (order,) = repo.rows("select id::text from orders")[0]
    repo.execute("insert into order_items (tenant_id, order_id) values (%s, %s)", t1, order)
    with pytest.raises(Exception, match=name):  # the right order of the wrong tenant
        repo.execute("insert into order_items (tenant_id, order_id) values (%s, %s)", t2, order)
    repo.no_drift()

    # An existing table with rows gets the key NOT VALID, validated outside the transaction.
    repo.propose_apply(SHIPMENTS)
    repo.execute("insert into shipments (tenant_id, order_id) values (%s, %s)", t1, order)
    restrict = SHIPMENTS + ("references:\n  - {columns: [tenant_id, order_id], to: orders, "
                            "to_columns: [tenant_id, id], on_delete: restrict}\n")
    sql = repo.propose_apply(restrict).migration["sql"]
    old_name = "fk_shipments_tenant_id_order_id_orders_del_restrict"
    assert "NOT VALID" in sql and f'VALIDATE CONSTRAINT "{old_name}"' in sql
    assert repo.constraints("shipments")[old_name][:2] == ("f", "r")
    assert repo.constraints("shipments")[old_name][3] is True
    with pytest.raises(Exception, match=old_name):
        repo.execute("insert into shipments (tenant_id, order_id) values (%s, %s)", t2, order)
    repo.no_drift()

    # Changing the action: the new key NOT VALID + VALIDATE, then the old one dropped.
    cascade = restrict.replace("on_delete: restrict", "on_delete: cascade")
    proposed = repo.propose_apply(cascade)
    assert not proposed.violations
    new_name = "fk_shipments_tenant_id_order_id_orders_del_cascade"
    cons = repo.constraints("shipments")
    assert old_name not in cons and cons[new_name][1:] == (
        "c", "FOREIGN KEY (tenant_id, order_id) REFERENCES orders(tenant_id, id) "
        "ON DELETE CASCADE", True)
    repo.no_drift()
    repo.check_from(base)
    picture = api.diagram(repo.repo, ["shipments"]).diagram
    assert '"tenant_id, order_id → tenant_id, id"' in picture, picture

    # Rollback restores the restricting key, and nothing else differs.
    rolled = api.rollback(repo.repo, repo.db.url, actor="user:test")
    assert rolled.ok, rolled
    cons = repo.constraints("shipments")
    assert new_name not in cons and cons[old_name][:2] == ("f", "r")
    assert api.status(repo.repo, repo.db.url).drift == []
    with pytest.raises(Exception, match=old_name):
        repo.execute("delete from orders")
    dot = api.diagram(repo.repo, ["shipments"], fmt="dot").diagram
    assert ('"orders" -> "shipments":"tenant_id" [arrowtail=teeodot, arrowhead=crowodot, '
            'label="tenant_id, order_id"]') in dot, dot

    # Drift sees a composite key that is missing, and one whose action differs.
    repo.execute(f"alter table shipments drop constraint {old_name}")
    drift = api.status(repo.repo, repo.db.url).drift
    assert [(d["kind"], d.get("index")) for d in drift] == [("missing_foreign_key", old_name)]
    repo.execute(f"alter table shipments add constraint {old_name} foreign key "
                 "(tenant_id, order_id) references orders (tenant_id, id) on delete set null")
    drift = api.status(repo.repo, repo.db.url).drift
    assert [(d["kind"], d.get("index")) for d in drift] == [("foreign_key_action", old_name)]
    assert drift[0]["message"] == (
        f"shipments: foreign key {old_name} (tenant_id, order_id → orders (tenant_id, id)) is "
        "ON DELETE SET NULL, defined ON DELETE RESTRICT")
    repo.execute(f"alter table shipments drop constraint {old_name}")
    repo.execute(f"alter table shipments add constraint {old_name} foreign key "
                 "(tenant_id, order_id) references orders (tenant_id, id) on delete restrict")
    repo.no_drift()


SELLERS = f"""table: sellers
columns:
{BASE}  - {{name: name, type: varchar(255), nullable: false}}
  - {{name: zip, type: integer, nullable: false}}
indexes:
  - {{columns: [name, zip], unique: true}}
"""
TICKETS = f"""table: tickets
columns:
{BASE}  - {{name: sellers_name, type: varchar(255)}}
  - {{name: sellers_zip, type: integer}}
references:
  - {{columns: [sellers_name, sellers_zip], to: sellers, to_columns: [name, zip],
     on_delete: cascade}}
"""


def test_translated_pgroll_tickets_reference_sellers(repo: Repo) -> None:
    """pgroll's example 38/40 (tickets referencing sellers, whose key is (name, zip)), which
    references each member of the key on its own: written as one composite key."""
    repo.propose_apply(SELLERS)
    # One column to one member of the composite key: refused before anything is written.
    per_member = TICKETS.split("references:")[0].replace(
        "{name: sellers_name, type: varchar(255)}",
        "{name: sellers_name, type: varchar(255), references: sellers.name}")
    refused = api.propose(repo.repo, stdin=per_member, actor="user:test", dry_run=True)
    assert [v["rule"] for v in refused.violations] == ["SC405"], refused.violations
    assert "whole unique key" in refused.violations[0]["message"]
    repo.propose_apply(TICKETS)
    repo.execute("insert into sellers (name, zip) values ('ann', 1000), ('bob', 2000)")
    repo.execute("insert into tickets (sellers_name, sellers_zip) values ('ann', 1000)")
    with pytest.raises(Exception, match="fk_tickets_sellers_name_sellers_zip_sellers_del_cascade"):
        repo.execute("insert into tickets (sellers_name, sellers_zip) values ('ann', 2000)")
    repo.execute("delete from sellers where name = 'ann'")
    assert repo.rows("select count(*) from tickets") == [(0,)]
    repo.no_drift()


def test_composite_self_reference(repo: Repo) -> None:
    """A tree within a tenant: the parent must be a node of the same tenant. The key
    comes first (its own proposal), then the reference to it."""
    nodes = f"""table: nodes
columns:
{BASE}  - {{name: tenant_id, type: uuid, nullable: false}}
  - {{name: parent_id, type: uuid}}
indexes:
  - {{columns: [tenant_id, id], unique: true}}
"""
    refused = api.propose(repo.repo, stdin=nodes + (
        "references:\n  - {columns: [tenant_id, parent_id], to: nodes, "
        "to_columns: [tenant_id, id]}\n"), actor="user:test", dry_run=True)
    assert [v["rule"] for v in refused.violations] == ["SC405"], refused.violations
    repo.propose_apply(nodes)
    repo.propose_apply(nodes + ("references:\n  - {columns: [tenant_id, parent_id], "
                                "to: nodes, to_columns: [tenant_id, id]}\n"))
    t1, t2 = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
    repo.execute("insert into nodes (tenant_id) values (%s)", t1)
    (root,) = repo.rows("select id::text from nodes")[0]
    repo.execute("insert into nodes (tenant_id, parent_id) values (%s, %s)", t1, root)
    with pytest.raises(Exception, match="fk_nodes_tenant_id_parent_id_nodes"):
        repo.execute("insert into nodes (tenant_id, parent_id) values (%s, %s)", t2, root)
    repo.no_drift()
