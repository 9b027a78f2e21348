"""Edge cases of online changes against a real PostgreSQL, with rows in the tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from schemactl import api
from schemactl.adapters.database import Target, connect
from tests.test_online_table import apply, catalog, git, one, propose, relkind

ROWS = 300

TREE = """  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
  - {name: title, type: varchar(200), nullable: false}
  - {name: parent_id, type: uuid, references: {to: %s.id, on_delete: cascade}}
"""
NODES = "table: nodes\ncolumns:\n" + TREE % "nodes"
ITEMS = "table: items\nrenamed_from: nodes\ncolumns:\n" + TREE % "items"


def tree_checksum(db: Target, table: str) -> str:
    return str(one(db, f"SELECT md5(string_agg(id::text || title || coalesce(parent_id::text, "
                       f"'-'), ',' ORDER BY id)) FROM {table}"))


def fill_tree(db: Target) -> None:
    """ROWS nodes: ten roots, then each layer of ten the children of earlier nodes."""
    with connect(db) as conn:
        conn.execute("INSERT INTO nodes (title) SELECT 'root ' || g FROM generate_series(1, 10) g")
        for layer in range(1, ROWS // 10):
            conn.execute("INSERT INTO nodes (title, parent_id) SELECT 'node ' || %s || '.' || n, "
                         "id FROM (SELECT id, row_number() OVER (ORDER BY random()) n FROM nodes "
                         "LIMIT 10) p", (layer,))
        conn.commit()


def fk_target(db: Target, table: str) -> list[tuple[str, str]]:
    with connect(db) as conn:
        rows = conn.execute("SELECT conname, confrelid::regclass::text FROM pg_constraint WHERE "
                            "conrelid = %s::regclass AND contype = 'f'", (f"public.{table}",)
                            ).fetchall()
    return [(str(a), str(b)) for a, b in rows]


def test_rename_of_a_self_referencing_table_moves_its_key_and_rolls_back(
        repo: Path, db: Target, cli: Any) -> None:
    propose(repo, NODES)
    apply(repo, db)
    fill_tree(db)
    before, nodes_catalog = tree_checksum(db, "nodes"), catalog(db, "nodes")
    assert fk_target(db, "nodes") == [("fk_nodes_parent_id_nodes_del_cascade", "nodes")]

    # the key written to the old name: that is the view's name, refused with the way out
    old_name = api.propose(repo, stdin=ITEMS.replace("to: items.id", "to: nodes.id"),
                           actor="user:test")
    assert not old_name.ok and [v["hint"] for v in old_name.violations
                                if v["rule"] == "SC405"] == [
        "nodes is the old name of items (a view until the contract, and a key points at a "
        "table): reference items"], old_name.violations
    propose(repo, ITEMS)
    apply(repo, db)
    assert relkind(db, "items") == "r" and relkind(db, "nodes") == "v"
    assert tree_checksum(db, "items") == before
    assert fk_target(db, "items") == [("fk_items_parent_id_items_del_cascade", "items")]
    assert catalog(db, "items") == [  # what a table made fresh from the definition has
        tuple(v.replace("nodes", "items") for v in row) for row in nodes_catalog]
    status = cli("status", "--json", "--database-url", db.url, cwd=repo)
    assert status.code == 0 and status.json["drift"] == [], status

    with connect(db) as conn:  # an old writer through the view: the key still holds
        parent = conn.execute("SELECT id FROM nodes WHERE parent_id IS NULL LIMIT 1").fetchone()
        conn.execute("INSERT INTO nodes (title, parent_id) VALUES ('by an old writer', %s)",
                     parent)
        conn.commit()
        try:
            conn.execute("INSERT INTO nodes (title, parent_id) VALUES ('orphan', "
                         "gen_random_uuid())")
            raise AssertionError("an orphan was accepted")
        except Exception as exc:  # noqa: BLE001 - psycopg's ForeignKeyViolation
            assert getattr(exc, "sqlstate", None) == "23503", exc
            conn.rollback()
    written = tree_checksum(db, "items")
    assert one(db, "SELECT count(*) FROM nodes") == ROWS + 1

    back = api.rollback(repo, database_url=db.url, actor="user:test")
    assert back.ok, back
    assert relkind(db, "nodes") == "r" and relkind(db, "items") is None
    assert catalog(db, "nodes") == nodes_catalog and tree_checksum(db, "nodes") == written
    assert "dynamic_schema/nodes.yaml" in git(repo, "ls-files", "dynamic_schema").split()
    assert api.status(repo, database_url=db.url).to_json()["drift"] == []

    # renamed again, then the contract (the next proposal): the view goes, the key stays
    propose(repo, ITEMS)
    apply(repo, db)
    propose(repo, ITEMS.replace("renamed_from: nodes\n", ""))
    apply(repo, db)
    assert relkind(db, "nodes") is None and tree_checksum(db, "items") == written
    assert fk_target(db, "items") == [("fk_items_parent_id_items_del_cascade", "items")]
    assert api.status(repo, database_url=db.url).to_json()["drift"] == []
    with connect(db) as conn:  # on_delete cascade still works under the new name
        conn.execute("DELETE FROM items WHERE parent_id IS NULL")
        conn.commit()
    assert one(db, "SELECT count(*) FROM items") == 0


TAGS = """table: tags
columns:
  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
  - {name: node_id, type: uuid, references: nodes.id}
"""


def test_check_accepts_the_rename_of_a_referenced_table(repo: Path, db: Target) -> None:
    """nodes references itself, tags references nodes: both keys follow the rename."""
    propose(repo, NODES)
    propose(repo, TAGS)
    git(repo, "branch", "base")
    git(repo, "checkout", "-q", "-b", "pr")
    propose(repo, ITEMS)
    data = api.check(repo, base="base", database_url=db.url).to_json()
    assert data["ok"] and data["violations"] == [], data["violations"]
    assert data["round_trip"]["ok"], data["round_trip"]


def tags_checksum(db: Target) -> str:
    return str(one(db, "SELECT md5(string_agg(id::text || node_id::text, ',' ORDER BY id)) "
                       "FROM tags"))


def test_rename_of_a_table_another_references_moves_that_key_and_rolls_back(
        repo: Path, db: Target, cli: Any) -> None:
    propose(repo, NODES)
    propose(repo, TAGS)
    apply(repo, db)
    fill_tree(db)
    with connect(db) as conn:
        conn.execute("INSERT INTO tags (node_id) SELECT id FROM nodes")
        conn.commit()
    tags_yaml = (repo / "dynamic_schema" / "tags.yaml").read_text()
    nodes_sum, tags_sum, tags_catalog = tree_checksum(db, "nodes"), tags_checksum(db), \
        catalog(db, "tags")
    assert fk_target(db, "tags") == [("fk_tags_node_id_nodes", "nodes")]

    # the folder renamed by hand with tags still on the old name: refused, one line and a hint
    git(repo, "rm", "-q", "dynamic_schema/nodes.yaml")
    (repo / "dynamic_schema" / "items.yaml").write_text(ITEMS)
    by_hand = cli("validate", "--json", cwd=repo)
    found = [v for v in by_hand.json["violations"] if v["rule"] == "SC103"]
    assert by_hand.code == 1 and [v["message"] for v in found] == [
        "table tags references nodes, which this change renames to items"], by_hand.json
    assert "reference items in tags" in found[0]["hint"]
    git(repo, "reset", "-q", "--hard")
    (repo / "dynamic_schema" / "items.yaml").unlink()

    # propose moves tags' key to the new name in the same commit
    res = propose(repo, ITEMS)
    assert any("the foreign keys of tags follow it" in s for s in res.online_steps)
    shown = git(repo, "show", "--no-renames", "--name-status", "--format=", "HEAD").split()
    assert [(a, b) for a, b in zip(shown[::2], shown[1::2], strict=True)
            if b.startswith("dynamic_schema/")] == [
        ("A", "dynamic_schema/items.yaml"), ("D", "dynamic_schema/nodes.yaml"),
        ("M", "dynamic_schema/tags.yaml")], shown
    assert "references: items.id" in (repo / "dynamic_schema" / "tags.yaml").read_text()
    by_agent = api.apply(repo, database_url=db.url, actor="agent:test")  # policy "safe"
    assert by_agent.ok, by_agent
    assert fk_target(db, "tags") == [("fk_tags_node_id_items", "items")]
    assert tree_checksum(db, "items") == nodes_sum and tags_checksum(db) == tags_sum
    assert catalog(db, "tags") == [tuple(v.replace("nodes", "items") for v in row)
                                   for row in tags_catalog]
    status = cli("status", "--json", "--database-url", db.url, cwd=repo)
    assert status.code == 0 and status.json["drift"] == [], status
    with connect(db) as conn:  # the key holds, to the rows under the new name and the view
        conn.execute("INSERT INTO tags (node_id) SELECT id FROM nodes LIMIT 1")
        conn.commit()
        try:
            conn.execute("INSERT INTO tags (node_id) VALUES (gen_random_uuid())")
            raise AssertionError("a tag of no node was accepted")
        except Exception as exc:  # noqa: BLE001 - psycopg's ForeignKeyViolation
            assert getattr(exc, "sqlstate", None) == "23503", exc
            conn.rollback()
    tags_sum = tags_checksum(db)

    back = api.rollback(repo, database_url=db.url, actor="user:test")
    assert back.ok, back
    assert relkind(db, "nodes") == "r" and relkind(db, "items") is None
    assert catalog(db, "tags") == tags_catalog and tags_checksum(db) == tags_sum
    assert tree_checksum(db, "nodes") == nodes_sum
    assert (repo / "dynamic_schema" / "tags.yaml").read_text() == tags_yaml
    assert api.status(repo, database_url=db.url).to_json()["drift"] == []

    # renamed again, then the contract: the view goes, tags' key stays on items
    propose(repo, ITEMS)
    apply(repo, db)
    propose(repo, ITEMS.replace("renamed_from: nodes\n", ""))
    apply(repo, db)
    assert relkind(db, "nodes") is None
    assert fk_target(db, "tags") == [("fk_tags_node_id_items", "items")]
    assert api.status(repo, database_url=db.url).to_json()["drift"] == []


def test_revert_of_a_table_rename_no_database_applied(repo: Path, cli: Any) -> None:
    """propose --revert of the head rename: every definition its commit changed comes back
    (the old name's, the referrer's), the migration goes, and check accepts the revert;
    --replace of it is refused (revert, then propose again)."""
    from schemactl.codegen import sumfile
    from schemactl.errors import ConflictError

    propose(repo, NODES)
    propose(repo, TAGS)
    before = git(repo, "ls-files", "-s", "dynamic_schema", "migrations")
    rev = str(propose(repo, ITEMS).migration["revision"])
    git(repo, "branch", "with-rename")
    with pytest.raises(ConflictError) as refused:
        api.propose(repo, stdin=ITEMS.replace("title, type: varchar(200)",
                                              "title, type: varchar(300)"),
                    actor="user:test", replace=True)
    assert refused.value.code == "unknown_proposal" and "--revert" in (refused.value.hint or "")
    out = cli("propose", "--revert", rev, "--json", cwd=repo)
    assert out.code == 0 and out.json["reverted"] == rev, out
    assert git(repo, "ls-files", "-s", "dynamic_schema", "migrations") == before
    assert sumfile.verify(repo) == [] and git(repo, "status", "--porcelain") == ""
    data = api.check(repo, base="with-rename").to_json()
    assert data["ok"] and data["violations"] == [], data


LABELS = """table: labels
columns:
  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
  - {name: label, type: %s}
  - {name: level, type: %s}
indexes:
  - {columns: [{lower: label}], unique: true, where: {is_deleted: false}}
  - {columns: [created_at], where: {level: 1}}
"""


def index_state(db: Target, table: str) -> list[tuple[str, bool, str]]:
    """Each index of ``table``: name, pg_index.indisvalid and pg_indexes' definition."""
    with connect(db) as conn:
        rows = conn.execute("SELECT x.indexname, i.indisvalid, x.indexdef FROM pg_indexes x "
                            "JOIN pg_index i ON i.indexrelid = format('%%I.%%I', x.schemaname, "
                            "x.indexname)::regclass WHERE x.schemaname = 'public' AND "
                            "x.tablename = %s ORDER BY 1", (table,)).fetchall()
    return [(str(a), bool(b), str(c)) for a, b, c in rows]


def expected_indexes(label_expr: str) -> list[tuple[str, bool, str]]:
    return [
        ("ix_labels_created_at", True, "CREATE INDEX ix_labels_created_at ON public.labels "
                                       "USING btree (created_at) WHERE (level = 1)"),
        ("pk_labels", True, "CREATE UNIQUE INDEX pk_labels ON public.labels USING btree (id)"),
        ("uq_labels_lower_label", True, "CREATE UNIQUE INDEX uq_labels_lower_label ON "
                                        f"public.labels USING btree ({label_expr}) WHERE "
                                        "(is_deleted = false)")]


def labels_checksum(db: Target) -> str:
    return str(one(db, "SELECT md5(string_agg(id::text || coalesce(label, '-') || "
                       "coalesce(level::text, '-'), ',' ORDER BY id)) FROM labels"))


def column_types(db: Target) -> tuple[str, str]:
    with connect(db) as conn:
        rows = dict(conn.execute("SELECT attname, format_type(atttypid, atttypmod) FROM "
                                 "pg_attribute WHERE attrelid = 'public.labels'::regclass AND "
                                 "attnum > 0 AND NOT attisdropped").fetchall())
    assert not [c for c in rows if str(c).startswith("_sc_")], rows
    return str(rows["label"]), str(rows["level"])


def test_retype_of_columns_in_an_expression_and_a_partial_index_and_back(
        repo: Path, db: Target) -> None:
    """label in a unique lower(label) index, level only in a partial index's where: retyped
    (a plain widening, an online retype), then rolled back (both online narrowings)."""
    propose(repo, LABELS % ("varchar(100)", "integer"))
    apply(repo, db)
    with connect(db) as conn:
        conn.execute("INSERT INTO labels (label, level) SELECT 'Label ' || g, g %% 3 FROM "
                     "generate_series(1, %s) g", (ROWS,))
        conn.commit()
    before = labels_checksum(db)
    cast = "lower((label)::text)"
    assert index_state(db, "labels") == expected_indexes(cast)

    def converged(types: tuple[str, str], label_expr: str) -> None:
        assert column_types(db) == types
        assert index_state(db, "labels") == expected_indexes(label_expr)
        assert labels_checksum(db) == before
        assert api.status(repo, database_url=db.url).to_json()["drift"] == []

    propose(repo, LABELS % ("varchar(200)", "bigint"))  # level: online, in the where only
    apply(repo, db)
    converged(("character varying(200)", "bigint"), cast)
    propose(repo, LABELS % ("text", "bigint"))
    apply(repo, db)
    converged(("text", "bigint"), "lower(label)")
    with connect(db) as conn:  # the unique expression index still holds
        try:
            conn.execute("INSERT INTO labels (label) VALUES ('LABEL 1')")
            raise AssertionError("a duplicate lower(label) was accepted")
        except Exception as exc:  # noqa: BLE001 - psycopg's UniqueViolation
            assert getattr(exc, "sqlstate", None) == "23505", exc

    # back: text → varchar(200), then varchar(200) → varchar(100) and bigint → integer, each
    # online with its indexes built again on the shadow column
    assert api.rollback(repo, database_url=db.url, actor="user:test").ok
    converged(("character varying(200)", "bigint"), cast)
    assert api.rollback(repo, database_url=db.url, actor="user:test").ok
    converged(("character varying(100)", "integer"), cast)
