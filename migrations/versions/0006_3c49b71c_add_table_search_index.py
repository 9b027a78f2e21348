"""add table search_index

Revision ID: 0006_3c49b71c
Revises: 0005_968d4478

Made by `schemactl propose` from dynamic_schema/search_index.yaml.

- create table search_index (10 columns, 2 indexes)

Upgrade is lock-safe: new tables are created plainly; on existing tables, indexes are
built CONCURRENTLY outside the transaction and foreign keys are added NOT VALID, then
validated. Downgrade never drops a table or a value: a table made here moves to the
schema schemactl_archive, a column's values are copied there (keyed by row) before
the column goes; see ARCHIVES.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from pgvector.sqlalchemy import Vector

revision = '0006_3c49b71c'
down_revision = '0005_968d4478'
branch_labels = None
depends_on = None

ARCHIVE_SCHEMA = 'schemactl_archive'
# What downgrade() moves into the archive schema. A counter is appended to the name when
# an earlier round trip already used it; schemactl_archive.archive_registry records
# the exact name, the row count and the time of every move.
ARCHIVES = [
    {"kind": 'table', "from": 'public.search_index', "to": 'schemactl_archive.search_index__0006_3c49b71c'},
]


def upgrade() -> None:
    # pgvector: vector columns need the extension (a no-op when installed).
    op.execute('CREATE EXTENSION IF NOT EXISTS vector')
    # New table search_index: created plainly (nobody uses it yet).
    op.create_table(
        'search_index',
        sa.Column('id', postgresql.UUID(as_uuid=True), server_default=sa.text('gen_random_uuid()'), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('is_deleted', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('created_by', sa.BigInteger(), nullable=True),
        sa.Column('source_table', sa.String(length=63), nullable=False),
        sa.Column('source_id', postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column('content', sa.Text(), nullable=False),
        sa.Column('model', sa.String(length=100), nullable=True),
        sa.Column('embedding', Vector(1536), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_search_index'),
        comment='Embeddings of rows of other tables, for semantic search',
    )
    op.create_index(
        'ix_search_index_source_table_source_id',
        'search_index',
        ['source_table', 'source_id'],
    )
    op.create_index(
        'ix_search_index_embedding_hnsw',
        'search_index',
        ['embedding'],
        postgresql_using='hnsw',
        postgresql_ops={'embedding': 'vector_cosine_ops'},
        postgresql_with={'ef_construction': 64, 'm': 16},
    )


def downgrade() -> None:
    _archive_table('search_index', 'search_index__0006_3c49b71c')
    # The vector extension stays: other tables may use it.


def _lit(value: str) -> str:
    """A SQL string literal (the names here passed the identifier rule; quotes doubled anyway)."""
    return "'" + value.replace("'", "''") + "'"


def _archive_table(table: str, target: str) -> None:
    """Move public.<table> into the archive schema with its rows, indexes and constraints.

    Never DROP. Index names are per schema, so the table's indexes are renamed first (an
    earlier archived copy cannot collide); the registry records where the table went.
    """
    op.execute(f"""
DO $$
DECLARE
  base text := {_lit(target)};
  target text := base;
  n int := 1;
  moved bigint;
  idx text;
BEGIN
  CREATE SCHEMA IF NOT EXISTS schemactl_archive;
  CREATE TABLE IF NOT EXISTS schemactl_archive.archive_registry (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    revision text NOT NULL,
    kind text NOT NULL,
    source_schema text NOT NULL DEFAULT 'public',
    source_table text NOT NULL,
    source_column text,
    archive_schema text NOT NULL DEFAULT 'schemactl_archive',
    archive_table text NOT NULL,
    row_count bigint,
    archived_at timestamptz NOT NULL DEFAULT now()
  );
  WHILE to_regclass(format('%I.%I', {_lit(ARCHIVE_SCHEMA)}, target)) IS NOT NULL
        OR to_regclass(format('public.%I', target)) IS NOT NULL LOOP
    target := left(base, 63 - length('_' || n)) || '_' || n;
    n := n + 1;
  END LOOP;
  EXECUTE format('SELECT count(*) FROM public.%I', {_lit(table)}) INTO moved;
  FOR idx IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE i.indrelid = format('public.%I', {_lit(table)})::regclass LOOP
    EXECUTE format('ALTER INDEX public.%I RENAME TO %I', idx,
                   left(idx, 50) || '_' || substr(md5(target || '.' || idx), 1, 12));
  END LOOP;
  EXECUTE format('ALTER TABLE public.%I RENAME TO %I', {_lit(table)}, target);
  EXECUTE format('ALTER TABLE public.%I SET SCHEMA %I', target, {_lit(ARCHIVE_SCHEMA)});
  INSERT INTO schemactl_archive.archive_registry
    (revision, kind, source_table, archive_table, row_count)
    VALUES ({_lit(revision)}, 'table', {_lit(table)}, target, moved);
END $$""")
