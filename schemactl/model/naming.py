"""Names schemactl gives database objects: PostgreSQL's 63-byte limit and the constraint names."""

from __future__ import annotations

import re

MAX_IDENTIFIER = 63
# The identifier grammar of every name a definition gives (SC401): plain lower case, so
# PostgreSQL never folds, quotes or truncates it and no SQL can hide in it.
IDENTIFIER_CHARS = "[a-z_][a-z0-9_]*"
IDENTIFIER = re.compile(f"^{IDENTIFIER_CHARS}$")


def identifier_problem(name: str) -> str | None:
    """Why ``name`` is not a plain identifier of at most 63 bytes, or None."""
    if len(name.encode("utf-8")) > MAX_IDENTIFIER:
        return f"is longer than {MAX_IDENTIFIER} bytes"
    if not IDENTIFIER.match(name):
        return f"does not match {IDENTIFIER.pattern}"
    return None


def short_name(name: str) -> str:
    """``name`` if it fits PostgreSQL's 63 bytes, else a cut plus a stable hash suffix.

    PostgreSQL would silently truncate a longer name, and two long names could then collide.
    """
    if len(name.encode()) <= MAX_IDENTIFIER:
        return name
    import hashlib  # only long names need it; OpenSSL's start stays off the cold path

    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return name.encode()[:MAX_IDENTIFIER - 9].decode(errors="ignore") + "_" + digest


def pk_name(table: str) -> str:
    """Primary key constraint name (the core naming convention: ``pk_<table>``)."""
    return short_name(f"pk_{table}")


def fk_name(table: str, column: str, ref_table: str, on_delete: str | None = None,
            on_update: str | None = None) -> str:
    """Foreign key constraint name: ``fk_<table>_<column>_<referred table>``.

    A key with ON DELETE/ON UPDATE actions gets them as a suffix (``..._del_cascade``), so
    that changing an action adds a constraint of a new name before the old one goes.
    """
    suffix = (f"_del_{on_delete}" if on_delete else "") + (f"_upd_{on_update}"
                                                           if on_update else "")
    return short_name(f"fk_{table}_{column}_{ref_table}{suffix}")


def ck_name(table: str, column: str) -> str:
    """CHECK constraint name of a column's ``check``: ``ck_<table>_<column>``."""
    return short_name(f"ck_{table}_{column}")


def uq_name(table: str, column: str) -> str:
    """Unique constraint name of a column marked ``unique: true``: ``uq_<table>_<column>``."""
    return short_name(f"uq_{table}_{column}")

# Where dynamic tables live, and where a rollback moves what it undoes (never a DROP).
# Fixed names: every migration file schemactl writes spells them out (DESIGN.md, Rollback).
DYNAMIC_SCHEMA = "public"
ARCHIVE_SCHEMA = "schemactl_archive"
ARCHIVE_REGISTRY = "archive_registry"
