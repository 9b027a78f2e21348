"""Files shipped inside the package: migration templates and the published JSON Schema."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
DEFINITION_SCHEMA = PACKAGE_DIR / "schemas" / "definition.schema.json"
