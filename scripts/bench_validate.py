"""Benchmark `schemactl validate` (figures go to docs/performance.md, section "validate").

    python scripts/bench_validate.py [--tables 1000] [--runs 5]

(a) validate over N definitions of 10 columns each, in a repository made by
    `schemactl init`: all N new in the work tree (every rule on every table),
    and all N committed with one changed;
(b) `schemactl validate one.yaml` from a cold process, with and without
    bytecode caches, and which heavy modules that process imported.
Targets: (a) under 1 s wall for 1,000 tables, (b) under 0.15 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HEAVY = ("sqlalchemy", "alembic", "git", "jsonschema", "rich", "psycopg")


def definition(i: int) -> str:
    return f"""table: bench_{i:04d}
comment: benchmark table {i}
columns:
  - {{name: id,         type: uuid,        primary_key: true, default: gen_random_uuid()}}
  - {{name: created_at, type: timestamptz, nullable: false,   default: now()}}
  - {{name: updated_at, type: timestamptz, nullable: false,   default: now()}}
  - {{name: is_deleted, type: boolean,     nullable: false,   default: false}}
  - {{name: created_by, type: bigint}}
  - {{name: title,      type: varchar(200), nullable: false}}
  - {{name: body,       type: text}}
  - {{name: score,      type: integer, default: 0}}
  - {{name: traits,     type: jsonb, nullable: false, default: '[]'}}
  - {{name: agent_id,   type: uuid, references: agents.id}}
indexes:
  - {{columns: [title]}}
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def timed(fn, runs: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def cli(repo: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "schemactl.cli", *args], cwd=repo, env=env,
                          capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()

    from schemactl import api

    base = Path(tempfile.mkdtemp(prefix="schemactl-bench-"))
    pyc = base / "pycache"
    cached_env = {**os.environ, "PYTHONPYCACHEPREFIX": str(pyc)}
    cached_env.pop("PYTHONDONTWRITEBYTECODE", None)
    nocache_env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        repo = base / "repo"
        api.init(repo, actor="user:bench")
        folder = repo / "dynamic_schema"
        for i in range(opts.tables):
            (folder / f"bench_{i:04d}.yaml").write_text(definition(i))
        print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")

        # (a) every table new: all rules over every table
        res = api.validate(repo)
        assert res.ok and len(res.tables) == opts.tables, res.violations[:3]
        med, best = timed(lambda: api.validate(repo), opts.runs)
        print(f"(a) validate, {opts.tables} new tables x 10 columns, in process: "
              f"median {med:.3f} s, best {best:.3f} s")
        cli(repo, "validate", "--json", env=cached_env)
        med, best = timed(lambda: cli(repo, "validate", "--json", env=cached_env), opts.runs)
        print(f"(a) `schemactl validate` (CLI, work tree vs HEAD), {opts.tables} new tables: "
              f"median {med:.3f} s, best {best:.3f} s")

        git(repo, "add", "dynamic_schema")
        git(repo, "-c", "user.name=bench", "-c", "user.email=b@b", "commit", "-q", "-m", "bench")
        (folder / "bench_0000.yaml").write_text(definition(0).replace("text}", "text}\n"
                                                 "  - {name: extra, type: text}"))
        med, best = timed(lambda: cli(repo, "validate", "--json", env=cached_env), opts.runs)
        print(f"(a) `schemactl validate` (CLI), {opts.tables} committed, one changed: "
              f"median {med:.3f} s, best {best:.3f} s")

        # (b) one file from a cold process, in a repository holding a few tables
        repo = base / "small"
        api.init(repo, actor="user:bench")
        for i in range(5):
            (repo / "dynamic_schema" / f"bench_{i:04d}.yaml").write_text(definition(i))
        git(repo, "add", "dynamic_schema")
        git(repo, "-c", "user.name=bench", "-c", "user.email=b@b", "commit", "-q", "-m", "bench")
        one = base / "one.yaml"
        one.write_text(definition(5000))
        for label, env in (("bytecode cached", cached_env), ("no bytecode", nocache_env)):
            cli(repo, "validate", str(one), "--json", env=env)
            for fmt in ("--json", None):
                args = ["validate", str(one)] + ([fmt] if fmt else [])
                med, best = timed(lambda a=args, e=env: cli(repo, *a, env=e),  # type: ignore[misc]
                                  max(opts.runs, 10))
                print(f"(b) `schemactl validate one.yaml {fmt or '(human)'}`, cold process, "
                      f"{label}: median {med:.3f} s, best {best:.3f} s")
        probe = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "schemactl.cli", "validate", str(one),
             "--json"], cwd=repo, env=cached_env, capture_output=True, text=True)
        loaded = {line.split("|")[-1].strip().split(".")[0] for line in probe.stderr.splitlines()
                  if line.startswith("import time:")}
        heavy = sorted(set(HEAVY) & loaded)
        print(f"(b) heavy modules imported by `validate one.yaml --json`: {heavy or 'none'}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
