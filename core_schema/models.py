"""SQLAlchemy 2.0 models of the core tables (DESIGN.md, Core schema).

The first migration creates exactly these tables; dynamic definitions may
reference them but never create, alter or shadow them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names keep autogenerate and the drift check quiet.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True,
                         server_default=text("gen_random_uuid()"))


def _created_at() -> Mapped[datetime | None]:
    return mapped_column(DateTime(timezone=False), server_default=text("now()"))


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    chat_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    messages: Mapped[Any] = mapped_column(JSONB, nullable=True,
                                                server_default=text("'[]'::jsonb"))
    metadata_: Mapped[Any] = mapped_column("metadata", JSONB, nullable=True,
                                                 server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime | None] = _created_at()
    updated_at: Mapped[datetime | None] = _created_at()


class LanggraphCheckpoint(Base):
    __tablename__ = "langgraph_checkpoints"
    __table_args__ = (Index("ix_langgraph_checkpoints_thread_id_checkpoint_id",
                            "thread_id", "checkpoint_id"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    thread_id: Mapped[str] = mapped_column(Text, nullable=False)
    checkpoint_id: Mapped[str] = mapped_column(Text, nullable=False)
    parent_id: Mapped[str | None] = mapped_column(Text)
    checkpoint: Mapped[Any] = mapped_column(JSONB, nullable=False)
    metadata_: Mapped[Any] = mapped_column("metadata", JSONB, nullable=True)
    created_at: Mapped[datetime | None] = _created_at()


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    config_path: Mapped[str] = mapped_column(Text, nullable=False)
    is_active: Mapped[bool | None] = mapped_column(Boolean, server_default=text("true"))
    version: Mapped[int | None] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime | None] = _created_at()
    updated_at: Mapped[datetime | None] = _created_at()
    created_by: Mapped[str | None] = mapped_column(Text, server_default=text("'system'"))


class Tool(Base):
    __tablename__ = "tools"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    module_path: Mapped[str] = mapped_column(Text, nullable=False)
    schema: Mapped[Any] = mapped_column(JSONB, nullable=True)
    agent_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True),
                                                      ForeignKey("agents.id"))
    is_active: Mapped[bool | None] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime | None] = _created_at()
    updated_at: Mapped[datetime | None] = _created_at()


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[uuid.UUID] = _uuid_pk()
    action: Mapped[str] = mapped_column(String(50), nullable=False)
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    details: Mapped[Any] = mapped_column(JSONB, nullable=True)
    git_commit: Mapped[str | None] = mapped_column(String(40))
    git_branch: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str | None] = mapped_column(String(20), server_default=text("'success'"))
    created_at: Mapped[datetime | None] = _created_at()


metadata = Base.metadata
CORE_TABLES: frozenset[str] = frozenset(metadata.tables)
