"""Benchmark `schemactl check`: a pull request touching 10 tables in a 1,000-table repository.

    python scripts/bench_check.py [--tables 1000] [--changed 10] [--runs 3]

The base branch holds N table definitions and one migration creating them (its body is
never run by check: only migrations added on the branch are analysed). The pull request
proposes a new column on each of the changed tables with `schemactl propose`, so it
holds M real migrations. Timed: `schemactl check --base base --json` as a process (what
CI runs, interpreter start included), without the round trip. Target: under 5 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASE = """\
  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
"""


def definition(i: int, extra: str = "") -> str:
    return (f"table: t{i:04d}\ncolumns:\n{BASE}  - {{name: title, type: varchar(200)}}\n"
            f"  - {{name: body, type: text}}\n{extra}indexes:\n  - {{columns: [title]}}\n")


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def build(tmp: Path, tables: int, changed: int) -> Path:
    from schemactl import api
    from schemactl.codegen import sumfile

    repo = tmp / "repo"
    api.init(repo, actor="user:bench")
    for i in range(tables):
        (repo / "dynamic_schema" / f"t{i:04d}.yaml").write_text(definition(i))
    (repo / "migrations" / "versions" / "0002_bulk.py").write_text(
        '"""bulk"""\nrevision = "0002_bulk"\ndown_revision = "0001_core"\n'
        "branch_labels = None\ndepends_on = None\n\n\ndef upgrade() -> None:\n    pass\n\n\n"
        "def downgrade() -> None:\n    pass\n")
    sumfile.write_sum(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base: many tables")
    git(repo, "branch", "base")
    git(repo, "checkout", "-q", "-b", "pr")
    step = max(1, tables // changed)
    for i in range(0, step * changed, step):
        res = api.propose(repo, stdin=definition(i, "  - {name: rank, type: integer}\n"),
                          actor="user:bench")
        assert res.ok, res
    return repo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--changed", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="schemactl-bench-check-") as tmp:
        t0 = time.perf_counter()
        repo = build(Path(tmp), args.tables, args.changed)
        print(f"setup: {args.tables} tables, {args.changed} proposed changes "
              f"in {time.perf_counter() - t0:.1f} s")
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "schemactl.cli", "check", "--base",
                                   "base", "--json"], cwd=repo, capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                print(proc.stdout[-3000:], proc.stderr[-3000:])
                raise SystemExit(f"check failed with exit {proc.returncode}")
        from schemactl import api

        t0 = time.perf_counter()
        result = api.check(repo, base="base")
        in_process = time.perf_counter() - t0
        assert result.ok and len(result.changed_tables) == args.changed
        print(f"check --base base (process): median {statistics.median(times):.2f} s, "
              f"min {min(times):.2f} s over {args.runs} runs")
        print(f"api.check (in process, imports warm): {in_process:.2f} s")


if __name__ == "__main__":
    main()
