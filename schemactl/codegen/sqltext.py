"""SQL text more than one writer emits: quoting, the archive's PL/pgSQL, tidy offline output.

The migration renderer (:mod:`schemactl.codegen.render`, whose helpers are copied into
every migration file, the online change's helper among them), the backup restore
(:mod:`schemactl.pipeline.restore`), the archive reader (:mod:`schemactl.pipeline.archive`)
and the default writer (:mod:`schemactl.codegen.metadata`) all take their SQL spelling
from here.
"""

from __future__ import annotations

import re

from schemactl.model.naming import ARCHIVE_REGISTRY, ARCHIVE_SCHEMA, DYNAMIC_SCHEMA


def sql_literal(value: str | None) -> str:
    """A SQL string literal (quotes doubled; NULL for None)."""
    if value is None:
        return "NULL"
    return "'" + value.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    """A SQL identifier in double quotes (quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


# The same quoting rule as `sql_literal`, as the Python source written into a migration
# file (migrations import nothing of schemactl). tests/test_sqltext.py checks they agree.
LITERAL_HELPER_SOURCE = '''
def _lit(value: str) -> str:
    """A SQL string literal (the names here passed the identifier rule; quotes doubled anyway)."""
    return "'" + value.replace("'", "''") + "'"
'''

# Creates the archive schema and its registry when missing (every archiving step runs it,
# the online change's archive step too: codegen/online.py writes it into its helper).
REGISTRY_SQL = f"""  CREATE SCHEMA IF NOT EXISTS {ARCHIVE_SCHEMA};
  CREATE TABLE IF NOT EXISTS {ARCHIVE_SCHEMA}.{ARCHIVE_REGISTRY} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    revision text NOT NULL,
    kind text NOT NULL,
    source_schema text NOT NULL DEFAULT 'public',
    source_table text NOT NULL,
    source_column text,
    archive_schema text NOT NULL DEFAULT '{ARCHIVE_SCHEMA}',
    archive_table text NOT NULL,
    row_count bigint,
    archived_at timestamptz NOT NULL DEFAULT now()
  );"""


def archive_table_sql(*, table: str, target: str, revision: str, schema: str | None = None,
                      archive: str = sql_literal(ARCHIVE_SCHEMA), registry: bool = True,
                      skip_missing: bool = False) -> str:
    """A ``DO`` block moving a table into the archive schema with its rows and indexes.

    Never a DROP. The table's indexes are renamed first (index names are per schema, so an
    earlier archived copy cannot collide); ``_1``, ``_2``, ... is appended to ``target``
    while the name is taken; the registry records where the table went.

    Each argument is a SQL *expression* of text: a literal from :func:`sql_literal`, or a
    ``{_lit(name)}`` placeholder when the block is written into a migration's f-string.

    Args:
        schema: the table's schema; None: the dynamic schema, spelled into the statements
            (what migrations write, byte for byte as they always did).
        archive: the archive schema's name.
        registry: also create the archive schema and its registry inside the block.
        skip_missing: do nothing when the table does not exist.
    """
    q, s = (f"{DYNAMIC_SCHEMA}.", "") if schema is None else ("%I.", f"{schema}, ")
    prelude = f"{REGISTRY_SQL}\n" if registry else ""
    if skip_missing:
        prelude += (f"  IF to_regclass(format('{q}%I', {s}{table})) IS NULL THEN\n"
                    "    RETURN;\n  END IF;\n")
    source_schema = ("", "") if schema is None else ("source_schema, ", f"{schema}, ")
    return f"""DO $$
DECLARE
  base text := {target};
  target text := base;
  n int := 1;
  moved bigint;
  idx text;
BEGIN
{prelude}  WHILE to_regclass(format('%I.%I', {archive}, target)) IS NOT NULL
        OR to_regclass(format('{q}%I', {s}target)) IS NOT NULL LOOP
    target := left(base, 63 - length('_' || n)) || '_' || n;
    n := n + 1;
  END LOOP;
  EXECUTE format('SELECT count(*) FROM {q}%I', {s}{table}) INTO moved;
  FOR idx IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE i.indrelid = format('{q}%I', {s}{table})::regclass LOOP
    EXECUTE format('ALTER INDEX {q}%I RENAME TO %I', {s}idx,
                   left(idx, 50) || '_' || substr(md5(target || '.' || idx), 1, 12));
  END LOOP;
  EXECUTE format('ALTER TABLE {q}%I RENAME TO %I', {s}{table}, target);
  EXECUTE format('ALTER TABLE {q}%I SET SCHEMA %I', {s}target, {archive});
  INSERT INTO {ARCHIVE_SCHEMA}.{ARCHIVE_REGISTRY}
    (revision, kind, {source_schema[0]}source_table, archive_table, row_count)
    VALUES ({revision}, 'table', {source_schema[1]}{table}, target, moved);
END $$"""


def tidy_sql(sql: str) -> str:
    """Offline (``--sql``) output without the empty BEGIN/COMMIT pair Alembic writes first.

    Offline output opens with a COMMIT right after BEGIN when the file starts with an
    autocommit block; dropping that pair makes the plan read cleanly.
    """
    sql = re.sub(r"BEGIN;\s*\n\s*COMMIT;\s*\n", "", sql)
    return sql.strip() + "\n"
