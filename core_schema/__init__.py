"""The protected core schema of the application (owned by humans, never by agents)."""

from core_schema.models import (
    CORE_TABLES,
    Agent,
    AuditLog,
    Base,
    Conversation,
    LanggraphCheckpoint,
    Tool,
    metadata,
)

__all__ = ["CORE_TABLES", "Agent", "AuditLog", "Base", "Conversation", "LanggraphCheckpoint",
           "Tool", "metadata"]
