"""Hand-made migrations and data checks for the apply and backup tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from schemactl.adapters.database import Target, connect

NOTES_BASE = """table: notes
columns:
  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
  - {name: body, type: text, nullable: false}
"""

NOTES_MIGRATION = '''"""notes table"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_notes"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notes",
        sa.Column("id", postgresql.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"),
                  nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notes"),
    )


def downgrade() -> None:
    op.drop_table("notes")
'''

COLUMN_MIGRATION = '''"""notes.{column}"""
import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notes", sa.Column("{column}", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("notes", "{column}")
'''

INDEX_MIGRATION = '''"""index on notes.{column}, built concurrently"""
from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index("ix_notes_{column}", "notes", ["{column}"], postgresql_concurrently=True,
                        if_not_exists=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_notes_{column}", table_name="notes", postgresql_concurrently=True)
'''


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=test", "-c",
                           "user.email=test@example.com", *args], capture_output=True,
                          text=True, check=True).stdout


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def add_notes(repo: Path) -> None:
    """Migration 0002_notes and its definition, committed together (as propose does)."""
    (repo / "migrations" / "versions" / "0002_notes.py").write_text(NOTES_MIGRATION)
    (repo / "dynamic_schema" / "notes.yaml").write_text(NOTES_BASE)
    commit_all(repo, "propose notes")


def _definition_columns(repo: Path) -> list[str]:
    text = (repo / "dynamic_schema" / "notes.yaml").read_text()
    return [ln for ln in text.splitlines() if ln.startswith("  - {name:")]


def add_column(repo: Path, revision: str, down: str, column: str) -> None:
    """A nullable text column on notes: migration + definition in one commit."""
    (repo / "migrations" / "versions" / f"{revision}.py").write_text(
        COLUMN_MIGRATION.format(revision=revision, down=down, column=column))
    with open(repo / "dynamic_schema" / "notes.yaml", "a") as fh:
        fh.write(f"  - {{name: {column}, type: text}}\n")
    commit_all(repo, f"propose notes.{column}")


def add_index(repo: Path, revision: str, down: str, column: str) -> None:
    """A concurrently built index on notes.column: migration + definition in one commit."""
    (repo / "migrations" / "versions" / f"{revision}.py").write_text(
        INDEX_MIGRATION.format(revision=revision, down=down, column=column))
    path = repo / "dynamic_schema" / "notes.yaml"
    text = path.read_text()
    if "indexes:" not in text:
        text += "indexes:\n"
    path.write_text(text + f"  - {{columns: [{column}]}}\n")
    commit_all(repo, f"propose index on notes.{column}")


def set_apply_config(repo: Path, **values: int) -> None:
    """Rewrite keys of [apply] in schemactl.toml and commit."""
    path = repo / "schemactl.toml"
    lines = path.read_text().splitlines()
    out = []
    for line in lines:
        key = line.split("=", 1)[0].strip()
        out.append(f"{key} = {values[key]}" if key in values else line)
    path.write_text("\n".join(out) + "\n")
    commit_all(repo, "tune apply timeouts")


def insert_notes(target: Target, n: int) -> None:
    with connect(target) as conn:
        conn.execute("insert into notes (body) select 'note ' || g from generate_series(1, %s) g",
                     (n,))


def notes_fingerprint(target: Target) -> tuple[int, str]:
    """Row count and an order-independent checksum of notes' id and body."""
    with connect(target) as conn:
        row = conn.execute("select count(*), coalesce(md5(string_agg(id::text || body, ',' "
                           "order by id)), '') from notes").fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def revision_of(target: Target) -> str | None:
    with connect(target) as conn:
        row = conn.execute("select to_regclass('public.alembic_version') is not null").fetchone()
        if not row or not row[0]:
            return None
        got = conn.execute("select version_num from alembic_version").fetchone()
    return got[0] if got else None


def columns_of(target: Target, table: str) -> list[tuple[str, str, str]]:
    with connect(target) as conn:
        rows = conn.execute("select column_name, data_type, is_nullable from "
                            "information_schema.columns where table_schema = 'public' and "
                            "table_name = %s order by ordinal_position", (table,)).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def audit_rows(target: Target) -> list[dict[str, object]]:
    with connect(target) as conn:
        rows = conn.execute("select action, actor, status, details, git_commit from audit_log "
                            "order by created_at").fetchall()
    return [{"action": r[0], "actor": r[1], "status": r[2], "details": r[3],
             "git_commit": r[4]} for r in rows]


def audit_lines(repo: Path) -> list[dict[str, object]]:
    path = repo / "audit.jsonl"
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def idle_in_transaction(db: Target, application_name: str = "schemactl apply%") -> bool:
    """Whether a session of ``application_name`` (a LIKE pattern) waits inside a transaction."""
    with connect(db) as conn:
        row = conn.execute("select count(*) from pg_stat_activity where datname = "
                           "current_database() and state = 'idle in transaction' and "
                           "application_name like %s", (application_name,)).fetchone()
    return bool(row and row[0])
