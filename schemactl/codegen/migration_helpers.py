"""The helper functions `schemactl propose` copies into a migration that uses them.

A migration file imports only alembic, sqlalchemy and pgvector, so each helper travels as
source text. The SQL they run comes from :mod:`schemactl.codegen.sqltext`: a table moves
into the archive with the same block `rollback --restore-backup` runs.
"""

from __future__ import annotations

from schemactl.codegen.sqltext import (
    LITERAL_HELPER_SOURCE,
    REGISTRY_SQL,
    archive_table_sql,
)
from schemactl.model.naming import ARCHIVE_REGISTRY, ARCHIVE_SCHEMA

_ARCHIVE_TABLE = '''
def _archive_table(table: str, target: str) -> None:
    """Move public.<table> into the archive schema with its rows, indexes and constraints.

    Never DROP. Index names are per schema, so the table's indexes are renamed first (an
    earlier archived copy cannot collide); the registry records where the table went.
    """
    op.execute(f"""
''' + archive_table_sql(table="{_lit(table)}", target="{_lit(target)}",
                        revision="{_lit(revision)}", archive="{_lit(ARCHIVE_SCHEMA)}") + '""")\n'

_ARCHIVE_COLUMN = f'''
def _archive_column(table: str, column: str, key: list[str], target: str) -> None:
    """Copy public.<table>.<column> into an archive table keyed by the row key, then drop it.

    The archive table holds the key columns, the column, the revision and the time; the
    copy and the DROP COLUMN run in one transaction, so no value can be lost in between.
    """
    keys = ", ".join('"' + k.replace('"', '""') + '"' for k in key)
    rev_col = "revision" if column != "revision" else "archive_revision"
    at_col = "archived_at" if column != "archived_at" else "archive_archived_at"
    op.execute(f"""
DO $$
DECLARE
  base text := {{_lit(target)}};
  target text := base;
  n int := 1;
  copied bigint;
BEGIN
{REGISTRY_SQL}
  WHILE to_regclass(format('%I.%I', {{_lit(ARCHIVE_SCHEMA)}}, target)) IS NOT NULL LOOP
    target := left(base, 63 - length('_' || n)) || '_' || n;
    n := n + 1;
  END LOOP;
  EXECUTE format('CREATE TABLE %I.%I AS SELECT {{keys}}, %I, %L::text AS %I, now() AS %I '
                 'FROM public.%I', {{_lit(ARCHIVE_SCHEMA)}}, target, {{_lit(column)}},
                 {{_lit(revision)}}, {{_lit(rev_col)}}, {{_lit(at_col)}}, {{_lit(table)}});
  EXECUTE format('SELECT count(*) FROM %I.%I', {{_lit(ARCHIVE_SCHEMA)}}, target) INTO copied;
  EXECUTE format('ALTER TABLE %I.%I ADD PRIMARY KEY ({{keys}})', {{_lit(ARCHIVE_SCHEMA)}}, target);
  INSERT INTO {ARCHIVE_SCHEMA}.{ARCHIVE_REGISTRY}
    (revision, kind, source_table, source_column, archive_table, row_count)
    VALUES ({{_lit(revision)}}, 'column', {{_lit(table)}}, {{_lit(column)}}, target, copied);
  EXECUTE format('ALTER TABLE public.%I DROP COLUMN %I', {{_lit(table)}}, {{_lit(column)}});
END $$""")
'''

_INDEX = '''
def _create_index_concurrently(name: str, table: str, columns: list[str], **kw: Any) -> None:
    """CREATE INDEX CONCURRENTLY IF NOT EXISTS (inside an autocommit block: no write lock).

    A retry is safe: an INVALID leftover of an earlier failed build is dropped first (IF NOT
    EXISTS would keep it), and a build that fails now drops its invalid index before the
    error goes up.
    """
    op.execute(f"""
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_index i
             WHERE i.indexrelid = to_regclass(format('public.%I', {_lit(name)}))
               AND NOT i.indisvalid) THEN
    EXECUTE format('DROP INDEX public.%I', {_lit(name)});
  END IF;
END $$""")
    try:
        op.create_index(name, table, columns, postgresql_concurrently=True, if_not_exists=True,
                        **kw)
    except Exception:
        op.execute(f'DROP INDEX CONCURRENTLY IF EXISTS public."{name}"')
        raise
'''

_FK = '''
def _add_foreign_key_not_valid(name: str, table: str, column: str, ref_table: str,
                               ref_column: str, on_delete: str | None = None,
                               on_update: str | None = None) -> None:
    """ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID, unless it exists.

    NOT VALID skips the scan of existing rows under the lock; VALIDATE CONSTRAINT runs
    afterwards in its own transaction and does not block writes.
    """
    words = {"cascade": "CASCADE", "set_null": "SET NULL", "restrict": "RESTRICT"}
    actions = "".join(f" ON {event} {words[action]}" for event, action
                      in (("DELETE", on_delete), ("UPDATE", on_update)) if action)
    op.execute(f"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = {_lit(name)}
                 AND conrelid = format('public.%I', {_lit(table)})::regclass) THEN
    EXECUTE format('ALTER TABLE public.%I ADD CONSTRAINT %I FOREIGN KEY (%I) '
                   'REFERENCES public.%I (%I){actions} NOT VALID', {_lit(table)}, {_lit(name)},
                   {_lit(column)}, {_lit(ref_table)}, {_lit(ref_column)});
  END IF;
END $$""")
'''

_FK_COMPOSITE = '''
def _add_composite_foreign_key_not_valid(name: str, table: str, columns: list[str],
                                         ref_table: str, ref_columns: list[str],
                                         on_delete: str | None = None,
                                         on_update: str | None = None) -> None:
    """ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY (a, b) ... NOT VALID, unless it exists.

    NOT VALID skips the scan of existing rows under the lock; VALIDATE CONSTRAINT runs
    afterwards in its own transaction and does not block writes.
    """
    words = {"cascade": "CASCADE", "set_null": "SET NULL", "restrict": "RESTRICT"}
    actions = "".join(f" ON {event} {words[action]}" for event, action
                      in (("DELETE", on_delete), ("UPDATE", on_update)) if action)
    marks = ", ".join(["%I"] * len(columns))
    ref_marks = ", ".join(["%I"] * len(ref_columns))
    args = ", ".join(_lit(c) for c in [table, name, *columns, ref_table, *ref_columns])
    op.execute(f"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = {_lit(name)}
                 AND conrelid = format('public.%I', {_lit(table)})::regclass) THEN
    EXECUTE format('ALTER TABLE public.%I ADD CONSTRAINT %I FOREIGN KEY ({marks}) '
                   'REFERENCES public.%I ({ref_marks}){actions} NOT VALID', {args});
  END IF;
END $$""")
'''

_CHECK = '''
def _check_sql(condition: str) -> Any:
    """schemactl's own CHECK expression as SQL text (a lone colon is not a bind)."""
    return sa.text(re.sub(r"(?<!:):(?!:)", lambda m: chr(92) + ":", condition))


def _check_rows(name: str, table: str, condition: str, key: list[str]) -> None:
    """Stop before anything is committed when existing rows violate a new check, naming them.

    Runs first in the migration's transaction, before any DDL takes a lock.
    """
    if op.get_context().as_sql:
        return
    keys = ", ".join('"' + k.replace('"', '""') + '"' for k in key)
    query = sa.select(sa.text(keys)).select_from(sa.table(table, schema="public")).where(
        _check_sql(f"NOT ({condition})")).limit(10)
    rows = op.get_bind().execute(query).fetchall()
    if rows:
        shown = ", ".join("/".join(str(v) for v in row) for row in rows)
        raise RuntimeError(
            f"check {name}: existing rows of {table} violate it "
            f"({'/'.join(key)}: {shown}{', ...' if len(rows) == 10 else ''}); "
            "fix those rows or loosen the check, then propose again")


def _add_check_not_valid(name: str, table: str, condition: str, replace: bool = False) -> None:
    """ALTER TABLE ... ADD CONSTRAINT ... CHECK ... NOT VALID (replacing one of that name).

    NOT VALID takes the lock only for a moment; VALIDATE CONSTRAINT runs outside the
    transaction. Without ``replace`` an existing constraint (an earlier run) is kept.
    """
    if replace:
        op.drop_constraint(name, table, type_="check", if_exists=True)
    elif not op.get_context().as_sql and op.get_bind().execute(sa.text(
            "SELECT 1 FROM pg_constraint WHERE conname = :name "
            "AND conrelid = to_regclass(:table)"),
            {"name": name, "table": f'public."{table}"'}).first() is not None:
        return
    op.create_check_constraint(name, table, _check_sql(condition), postgresql_not_valid=True)
'''

_REPLACED = '''
def _drop_replaced_constraint(name: str, table: str, replaced_by: str) -> None:
    """Drop a constraint that ``replaced_by`` (already added and validated) takes over."""
    op.drop_constraint(name, table, if_exists=True)
'''

_UNIQUE = '''
def _add_unique_using_index(name: str, table: str) -> None:
    """Attach a unique index built CONCURRENTLY as the table's unique constraint."""
    op.execute(f"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = {_lit(name)}
                 AND conrelid = format('public.%I', {_lit(table)})::regclass) THEN
    EXECUTE format('ALTER TABLE public.%I ADD CONSTRAINT %I UNIQUE USING INDEX %I',
                   {_lit(table)}, {_lit(name)}, {_lit(name)});
  END IF;
END $$""")
'''


_UNIQUE = '''
def _add_unique_using_index(name: str, table: str) -> None:
    """Attach a unique index built CONCURRENTLY as the table's unique constraint."""
    op.execute(f"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = {_lit(name)}
                 AND conrelid = format('public.%I', {_lit(table)})::regclass) THEN
    EXECUTE format('ALTER TABLE public.%I ADD CONSTRAINT %I UNIQUE USING INDEX %I',
                   {_lit(table)}, {_lit(name)}, {_lit(name)});
  END IF;
END $$""")
'''


# Helper keys in the order they are written into a migration.
_ORDER = (("lit", LITERAL_HELPER_SOURCE), ("archive_table", _ARCHIVE_TABLE),
          ("archive_column", _ARCHIVE_COLUMN), ("index", _INDEX), ("fk", _FK),
          ("fk_composite", _FK_COMPOSITE),
          ("check", _CHECK), ("replaced", _REPLACED), ("unique", _UNIQUE), ("online", ""),
          ("online_table", ""))
HELPERS = frozenset(key for key, _ in _ORDER)


def helper_source(keys: set[str]) -> str:
    """The source of the helpers named by ``keys`` (``lit``, ``archive_table``, ...)."""
    unknown = keys - HELPERS
    if unknown:
        raise ValueError(f"unknown migration helpers: {sorted(unknown)}")
    return "\n\n".join(_source(key, src).strip("\n") + "\n" for key, src in _ORDER
                       if key in keys)


def _source(key: str, src: str) -> str:
    if key == "online":  # the online-change runner: a template file of its own
        from schemactl.codegen.online import helper_source as online_source

        return online_source()
    if key == "online_table":  # table renames and their contract: a template file too
        from schemactl.codegen.online_table import helper_source as table_source

        return table_source()
    return src
