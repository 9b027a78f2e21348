"""Adapters: the one place each outside system is spoken to.

PostgreSQL (database), the embedded server (embedded), git (gitops), Alembic (migrator).
"""
