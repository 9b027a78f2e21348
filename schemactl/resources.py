"""What ships inside the package: its version, migration templates, the published JSON Schema."""

from pathlib import Path

# The package's version (pyproject.toml says the same; a test compares them).
VERSION = "0.1.0"

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
DEFINITION_SCHEMA = PACKAGE_DIR / "schemas" / "definition.schema.json"
