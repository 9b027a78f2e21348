"""core schema: conversations, langgraph_checkpoints, agents, tools, audit_log

Revision ID: 0001_core
Revises:
Create Date: 2026-11-23

Made by `schemactl init`. The core schema is protected: schemactl never rolls it
back. Its downgrade (plain `alembic downgrade base`) archives, never drops.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

ARCHIVE_SCHEMA = "schemactl_archive"
CORE_TABLES = ["audit_log", "tools", "agents", "langgraph_checkpoints", "conversations"]


def upgrade() -> None:
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {ARCHIVE_SCHEMA}")
    op.create_table(
        "conversations",
        sa.Column("id", postgresql.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("messages", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=True),
        sa.Column("metadata", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=sa.text("now()"), nullable=True),
        sa.Column("updated_at", sa.DateTime(), server_default=sa.text("now()"), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_conversations"),
    )
    op.create_table(
        "langgraph_checkpoints",
        sa.Column("id", postgresql.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("thread_id", sa.Text(), nullable=False),
        sa.Column("checkpoint_id", sa.Text(), nullable=False),
        sa.Column("parent_id", sa.Text(), nullable=True),
        sa.Column("checkpoint", postgresql.JSONB(), nullable=False),
        sa.Column("metadata", postgresql.JSONB(), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=sa.text("now()"), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_langgraph_checkpoints"),
    )
    op.create_index("ix_langgraph_checkpoints_thread_id_checkpoint_id", "langgraph_checkpoints",
                    ["thread_id", "checkpoint_id"])
    op.create_table(
        "agents",
        sa.Column("id", postgresql.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("config_path", sa.Text(), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=sa.text("now()"), nullable=True),
        sa.Column("updated_at", sa.DateTime(), server_default=sa.text("now()"), nullable=True),
        sa.Column("created_by", sa.Text(), server_default=sa.text("'system'"), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_agents"),
        sa.UniqueConstraint("name", name="uq_agents_name"),
    )
    op.create_table(
        "tools",
        sa.Column("id", postgresql.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("module_path", sa.Text(), nullable=False),
        sa.Column("schema", postgresql.JSONB(), nullable=True),
        sa.Column("agent_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=sa.text("now()"), nullable=True),
        sa.Column("updated_at", sa.DateTime(), server_default=sa.text("now()"), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name="fk_tools_agent_id_agents"),
        sa.PrimaryKeyConstraint("id", name="pk_tools"),
        sa.UniqueConstraint("name", name="uq_tools_name"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", postgresql.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("details", postgresql.JSONB(), nullable=True),
        sa.Column("git_commit", sa.String(length=40), nullable=True),
        sa.Column("git_branch", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=20), server_default=sa.text("'success'"), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=sa.text("now()"), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )


def downgrade() -> None:
    # Never DROP: each core table moves to the archive schema under a name that records
    # this revision (plus a counter when an earlier round trip already used it).
    for table in CORE_TABLES:
        op.execute(f"""
DO $$
DECLARE target text := '{table}__0001_core'; n int := 1;
BEGIN
  WHILE to_regclass(format('%I.%I', '{ARCHIVE_SCHEMA}', target)) IS NOT NULL
        OR to_regclass(format('public.%I', target)) IS NOT NULL LOOP
    target := '{table}__0001_core_' || n; n := n + 1;
  END LOOP;
  EXECUTE format('ALTER TABLE public.%I RENAME TO %I', '{table}', target);
  EXECUTE format('ALTER TABLE public.%I SET SCHEMA {ARCHIVE_SCHEMA}', target);
END $$""")
