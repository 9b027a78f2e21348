"""The SQL spelling shared by migrations, restores and the archive reader."""

from __future__ import annotations

from typing import Any

from schemactl.codegen import migration_helpers, sqltext


def test_migration_literal_helper_quotes_like_sql_literal() -> None:
    namespace: dict[str, Any] = {}
    exec(sqltext.LITERAL_HELPER_SOURCE, namespace)  # noqa: S102 - our own helper text
    for value in ("notes", "it's", "''", "a'b'c", ""):
        assert namespace["_lit"](value) == sqltext.sql_literal(value)
    assert sqltext.sql_literal(None) == "NULL"
    assert sqltext.quote_ident('we"ird') == '"we""ird"'


def test_one_archive_block_for_migrations_and_restores() -> None:
    """The migration helper and the restore script move a table with the same SQL."""
    assert sqltext.REGISTRY_SQL in migration_helpers.helper_source({"archive_table"})
    block = sqltext.archive_table_sql(table="{_lit(table)}", target="{_lit(target)}",
                                      revision="{_lit(revision)}",
                                      archive="{_lit(ARCHIVE_SCHEMA)}")
    assert block in migration_helpers.helper_source({"archive_table"})
    restore = sqltext.archive_table_sql(schema="'public'", table="'notes'", target="'t'",
                                        revision="'0002_x'", skip_missing=True,
                                        registry=False)
    assert "RETURN;" in restore and "CREATE SCHEMA" not in restore
    assert "DROP" not in block.upper()


def test_the_online_helper_creates_the_registry_with_the_same_sql() -> None:
    from schemactl.codegen import online

    namespace: dict[str, Any] = {"Any": Any}
    exec(online.helper_source(), namespace)  # noqa: S102 - our own helper text
    assert namespace["ONLINE_REGISTRY_SQL"] == sqltext.REGISTRY_SQL
    from schemactl.resources import TEMPLATES_DIR

    template = (TEMPLATES_DIR / "online_helpers.py").read_text(encoding="utf-8")
    assert "archive_registry (\n" not in template  # no copy of the table's definition
