"""Benchmark `schemactl propose` (offline: no database involved).

    .venv/bin/python scripts/bench_propose.py [--tables 1000] [--runs 5]

Measures, in temporary repositories made by `schemactl init`:
- warm: api.propose of a new table in-process, after one proposal has loaded the imports;
- cli: `schemactl propose FILE --json` as a new process (cold imports included);
- large: the same in-process calls on a repository already holding N dynamic tables
  (committed definitions plus one migration creating them), for a new table and for a
  change to an existing table.
Prints a markdown table; exits 1 when a budget is missed (warm < 1 s, large < 2 s).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = """\
  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
"""


def definition(name: str, extra: str = "") -> str:
    return (f"table: {name}\ncolumns:\n{BASE}"
            f"  - {{name: title, type: varchar(200), nullable: false}}\n"
            f"  - {{name: body, type: text}}\n{extra}"
            f"indexes:\n  - {{columns: [title]}}\n")


def timed(fn: object, *args: object, **kw: object) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kw)  # type: ignore[operator]
    return time.perf_counter() - start, result


def seed_large(repo: Path, n: int) -> None:
    """N definitions and one migration creating them, committed (fast: no N proposals)."""
    from schemactl.adapters import gitops, migrator
    from schemactl.codegen.planner import build_plan
    from schemactl.codegen.render import render_migration
    from schemactl.model.parsing import dump_definition, parse_definition
    from schemactl.model.repo import SchemaRepo

    defs = {f"t{i:04d}": parse_definition(definition(f"t{i:04d}")) for i in range(n)}
    paths = []
    for name, tdef in defs.items():
        rel = f"dynamic_schema/{name}.yaml"
        (repo / rel).write_text(dump_definition(tdef))
        paths.append(rel)
    plan = build_plan({}, defs)
    parent = migrator.head(SchemaRepo.open(repo))
    rendered = render_migration(plan, "0002_bulk", parent)
    rel = f"migrations/versions/{rendered.filename}"
    (repo / rel).write_text(rendered.source)
    gitops.commit(repo, [*paths, rel], f"seed {n} tables")


def main() -> int:
    parser = argparse.ArgumentParser(description="benchmark schemactl propose")
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from schemactl import api

    rows: list[tuple[str, float, float]] = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="schemactl-bench-") as tmp:
        small = Path(tmp) / "small"
        api.init(small, actor="bench")
        api.propose(small, stdin=definition("warmup"), actor="bench")
        times = []
        for i in range(args.runs):
            t, res = timed(api.propose, small, stdin=definition(f"w{i}"), actor="bench")
            assert res.ok and res.commit, res  # type: ignore[attr-defined]
            times.append(t)
        rows.append(("warm, new table (1 process, with commit)", statistics.median(times),
                     max(times)))
        failed |= statistics.median(times) >= 1.0
        dry = [timed(api.propose, small, stdin=definition(f"d{i}"), actor="bench",
                     dry_run=True)[0] for i in range(args.runs)]
        rows.append(("warm, new table, --dry-run", statistics.median(dry), max(dry)))

        cli = []
        for i in range(max(2, args.runs // 2)):
            path = Path(tmp) / f"c{i}.yaml"
            path.write_text(definition(f"c{i}"))
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "schemactl.cli", "propose", str(path),
                                   "--json"], cwd=small, capture_output=True)
            cli.append(time.perf_counter() - start)
            assert proc.returncode == 0, proc.stderr
        rows.append(("cli process, new table (cold imports)", statistics.median(cli), max(cli)))

        large = Path(tmp) / "large"
        api.init(large, actor="bench")
        t_seed, _ = timed(seed_large, large, args.tables)
        api.propose(large, stdin=definition("warmup"), actor="bench")
        new = [timed(api.propose, large, stdin=definition(f"n{i}"), actor="bench")[0]
               for i in range(args.runs)]
        rows.append((f"{args.tables} tables, new table", statistics.median(new), max(new)))
        alter = []
        for i in range(args.runs):
            extra = "".join(f"  - {{name: extra{j}, type: integer}}\n" for j in range(i + 1))
            t, res = timed(api.propose, large, stdin=definition(f"t{i:04d}", extra),
                           actor="bench")
            assert res.ok and res.migration, res  # type: ignore[attr-defined]
            alter.append(t)
        rows.append((f"{args.tables} tables, add column + index to one", statistics.median(alter),
                     max(alter)))
        failed |= max(statistics.median(new), statistics.median(alter)) >= 2.0

    print("| case | median s | max s |")
    print("| --- | ---: | ---: |")
    for name, med, worst in rows:
        print(f"| {name} | {med:.3f} | {worst:.3f} |")
    print(f"\n(seeding {args.tables} tables took {t_seed:.1f} s; budgets: warm < 1 s, "
          f"{args.tables} tables < 2 s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
