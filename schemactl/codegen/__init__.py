"""Code generation: SQLAlchemy metadata, Alembic operations, migration files and the sum file."""
