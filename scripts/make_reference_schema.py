"""Regenerate this repository's reference dynamic schema with schemactl itself.

The definitions below are proposed, one table at a time, in a temporary schema
repository made by `schemactl init`; the resulting dynamic_schema/*.yaml and
migrations/versions/ files are copied back into this checkout. Proposals are
deterministic, so running the script again gives the same files.

    .venv/bin/python scripts/make_reference_schema.py [--check]

With --check nothing is copied: the exit code is 1 when the checkout's files differ
from a fresh generation.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUM_FILE = "migrations/schemactl.sum"

BASE = """\
  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
"""

# In dependency order: a table comes after the tables it references.
DEFINITIONS: list[str] = [
    f"""table: projects
comment: Story projects the characters, ideas and notes belong to
columns:
{BASE}  - {{name: name, type: varchar(200), nullable: false}}
  - {{name: description, type: text}}
  - {{name: status, type: varchar(20), nullable: false, default: active}}
  - {{name: metadata, type: jsonb, nullable: false, default: '{{}}'}}
indexes:
  - {{columns: [name], unique: true, where: {{is_deleted: false}}}}
""",
    f"""table: characters
comment: Story characters
columns:
{BASE}  - {{name: name, type: varchar(200), nullable: false}}
  - {{name: description, type: text}}
  - {{name: age, type: integer}}
  - {{name: traits, type: jsonb, nullable: false, default: '[]'}}
  - {{name: project_id, type: uuid, references: projects.id}}
indexes:
  - {{columns: [project_id]}}
  - {{columns: [name]}}
""",
    f"""table: ideas
comment: Ideas collected while writing
columns:
{BASE}  - {{name: title, type: varchar(200), nullable: false}}
  - {{name: body, type: text}}
  - {{name: status, type: varchar(20), nullable: false, default: new}}
  - {{name: score, type: integer}}
  - {{name: tags, type: "text[]", nullable: false, default: "{{}}"}}
  - {{name: project_id, type: uuid, references: projects.id}}
indexes:
  - {{columns: [project_id]}}
""",
    f"""table: notes
comment: Free-form notes
columns:
{BASE}  - {{name: title, type: varchar(200), nullable: false}}
  - {{name: body, type: text}}
  - {{name: project_id, type: uuid, references: projects.id}}
  - {{name: character_id, type: uuid, references: {{to: characters.id, on_delete: set_null}}}}
indexes:
  - {{columns: [project_id]}}
  - {{columns: [character_id]}}
""",
    f"""table: search_index
comment: Embeddings of rows of other tables, for semantic search
columns:
{BASE}  - {{name: source_table, type: varchar(63), nullable: false}}
  - {{name: source_id, type: uuid, nullable: false}}
  - {{name: content, type: text, nullable: false}}
  - {{name: model, type: varchar(100)}}
  - {{name: embedding, type: vector(1536), nullable: false}}
indexes:
  - {{columns: [source_table, source_id]}}
  - {{columns: [embedding], using: hnsw, opclass: vector_cosine_ops,
      with: {{m: 16, ef_construction: 64}}}}
""",
]


def generate(into: Path) -> dict[str, bytes]:
    """Propose every definition in a fresh repository; return the files made, by path."""
    from schemactl import api

    repo = into / "reference"
    api.init(repo, actor="schemactl")
    for text in DEFINITIONS:
        result = api.propose(repo, stdin=text, actor="schemactl")
        if not result.ok:
            raise SystemExit(f"rejected: {result.to_json()['violations']}")
    files: dict[str, bytes] = {}
    for folder in ("dynamic_schema", "migrations/versions"):
        for path in sorted((repo / folder).glob("*")):
            if path.is_file() and path.name not in (".gitkeep", "0001_core_schema.py"):
                files[f"{folder}/{path.name}"] = path.read_bytes()
    files[SUM_FILE] = (repo / SUM_FILE).read_bytes()
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; write nothing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="schemactl-reference-") as tmp:
        files = generate(Path(tmp))
    existing = {f"{folder}/{p.name}": p.read_bytes()
                for folder in ("dynamic_schema", "migrations/versions")
                for p in sorted((ROOT / folder).glob("*"))
                if p.is_file() and p.name not in (".gitkeep", "0001_core_schema.py")}
    if (ROOT / SUM_FILE).exists():
        existing[SUM_FILE] = (ROOT / SUM_FILE).read_bytes()
    if args.check:
        if existing != files:
            print("reference schema differs from a fresh generation:", file=sys.stderr)
            for rel in sorted(set(existing) | set(files)):
                if existing.get(rel) != files.get(rel):
                    print(f"  {rel}", file=sys.stderr)
            return 1
        print("reference schema is up to date")
        return 0
    for rel in set(existing) - set(files):
        (ROOT / rel).unlink()
    for rel, data in files.items():
        (ROOT / rel).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / rel).write_bytes(data)
        print(rel)
    shutil.rmtree(ROOT / "migrations" / "versions" / "__pycache__", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
