"""Benchmark: `apply` of a one-column change at 10 and at N tables, time per pipeline step.

    .venv/bin/python scripts/bench_apply_scale.py [--large 1000]

Builds two repositories in a temporary folder (`bench_scale.build`: N definitions, every
tenth referencing the one before), whose bulk migration creates the N tables on each
repository's embedded PostgreSQL; applies them; proposes one new nullable column on one
table; then times `api.apply` of that change, step by step (the steps `apply` reports
to its progress callback), small then large. Prints both lines and the ratio. It is a
measurement of how an apply grows with the number of tables, not a pass/fail check: the
drift check, the scoped backup (pg_dump reads the whole catalog) and the verify each read
every table today (docs/performance.md, "apply at 1,000 tables").
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_scale  # noqa: E402

BULK = '''"""bulk"""
from pathlib import Path

from alembic import op

revision = "0002_bulk"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from schemactl.codegen.metadata import build_metadata
    from schemactl.model.loading import load_dir

    root = Path(__file__).resolve().parents[2]
    defs = load_dir(root / "dynamic_schema", root)
    md = build_metadata(defs)
    md.create_all(op.get_bind(), tables=[t for t in md.sorted_tables if t.name in defs])


def downgrade() -> None:
    pass
'''


def prepare(repo: Path, n: int) -> float:
    """The repository with N tables applied, and one column proposed; the first apply's time."""
    from schemactl import api
    from schemactl.codegen import sumfile

    bench_scale.build(repo, n)
    (repo / "migrations" / "versions" / "0002_bulk.py").write_text(BULK)
    sumfile.write_sum(repo)
    bench_scale.git(repo, "add", "-A")
    bench_scale.git(repo, "-c", "user.name=bench", "-c", "user.email=b@b", "commit", "-q",
                    "--amend", "-m", "tables")
    start = time.perf_counter()
    first = api.apply(repo, actor="user:bench")
    took = time.perf_counter() - start
    if not first.ok:
        raise SystemExit(f"first apply at {n} tables failed: {first.error}")
    change = repo.parent / f"{repo.name}-change.yaml"
    change.write_text(bench_scale.definition("t00005", "  - {name: rank, type: integer}\n"))
    proposed = api.propose(repo, file=change, actor="user:bench")
    if not proposed.ok:
        raise SystemExit(f"propose at {n} tables failed: {proposed.error}")
    return took


def timed_apply(repo: Path) -> tuple[float, dict[str, float]]:
    """The whole apply's time and the time between each reported step and the next."""
    from schemactl import api

    marks: list[tuple[float, str]] = []

    def progress(step: str, done: int, total: int | None) -> None:
        marks.append((time.perf_counter(), step.split(":")[0]))

    start = time.perf_counter()
    result = api.apply(repo, actor="user:bench", progress=progress)
    end = time.perf_counter()
    if not result.ok:
        raise SystemExit(f"apply failed: {result.error}")
    steps: dict[str, float] = {}
    at, step = start, "start"
    for when, name in [*marks, (end, "end")]:
        if name != step:
            steps[step] = steps.get(step, 0.0) + when - at
            at, step = when, name
    return end - start, steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--large", type=int, default=1000)
    opts = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="schemactl-apply-scale-"))
    repos = [base / f"r{opts.small}", base / f"r{opts.large}"]
    try:
        print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; "
              f"{bench_scale.load()}", flush=True)
        totals = []
        for repo, n in zip(repos, (opts.small, opts.large), strict=True):
            first = prepare(repo, n)
            total, steps = timed_apply(repo)
            totals.append(total)
            parts = ", ".join(f"{k} {v:.2f}" for k, v in steps.items() if v >= 0.005)
            print(f"{n} tables: first apply {first:.1f} s; apply of one column {total:.2f} s "
                  f"({parts})", flush=True)
        print(f"ratio {totals[1] / totals[0]:.1f}x; {bench_scale.load()}")
    finally:
        for repo in repos:
            if repo.exists():
                subprocess.run([sys.executable, "-m", "schemactl.cli", "db", "stop"], cwd=repo,
                               capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
