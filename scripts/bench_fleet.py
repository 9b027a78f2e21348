"""Benchmark: a one-column change applied to a fleet of databases on one server.

On a throwaway embedded PostgreSQL (a temporary folder, removed at the end): a schema
repository with 50 target databases, all first brought to ``0002_notes``. Then, side by side
in one run:

- ``schemactl apply --all --parallel 4`` (one process, one commit) for ``0003_tags``;
- 50 sequential ``schemactl apply --database-url ...`` processes for ``0004_mood``;
- ``api.apply_fleet(parallel=1)`` in process for ``0005_rank``: each target's time, from the
  end of the one before, split into its steps (probe and lock, drift check, backup =
  pg_dump, DDL, verify, audit and commit hand-off); the overhead is everything but the
  backup and the DDL.

The load average of the shared machine is printed at the start and the end. The scratch
repository's commits and base fields come from ``benchkit`` (shared by the benchmarks).

    python scripts/bench_fleet.py [--targets 50] [--parallel 4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit import load_average

from tests.apply_helpers import add_column, add_notes  # the suite's notes table and columns


def cli(repo: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "schemactl.cli", *args], cwd=repo, env=env,
                          capture_output=True, text=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", type=int, default=50)
    ap.add_argument("--parallel", type=int, default=4)
    args = ap.parse_args()

    from urllib.parse import unquote, urlsplit

    from schemactl import api
    from schemactl.adapters.database import Target, connect
    from schemactl.adapters.embedded import EmbeddedServer

    tmp = Path(tempfile.mkdtemp(prefix="schemactl-bench-fleet-"))
    server = EmbeddedServer(tmp / "server" / ".schemactl", durable=False)
    try:
        server.start()
        admin = Target(server.secret_url(), embedded=True)
        parts = urlsplit(admin.url)
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",
                                                                  "SCHEMACTL_DATABASE_URL")}
        env["PGPASSWORD"] = unquote(parts.password or "")
        repo = tmp / "repo"
        api.init(repo, actor="user:bench")
        names = [f"tenant_{i:03d}" for i in range(args.targets)]
        toml = ["", "# -- fleet --"]
        with connect(admin) as conn:
            for n in names:
                conn.execute(f'CREATE DATABASE "{n}"')
                toml += [f"[targets.{n}]",
                         f'url = "postgresql://{parts.username}@127.0.0.1:{parts.port}/{n}"',
                         'group = "tenants"', ""]
        with open(repo / "schemactl.toml", "a") as fh:
            fh.write("\n".join(toml))
        add_notes(repo)  # commits the targets with it
        os.environ["PGPASSWORD"] = env["PGPASSWORD"]

        load_start = load_average()
        print(f"{args.targets} targets on one embedded PostgreSQL; bringing them to 0002_notes",
              file=sys.stderr)
        first = cli(repo, "apply", "--all", "--parallel", str(args.parallel), "--json", env=env)
        assert first.returncode == 0, first.stderr[-2000:]

        add_column(repo, "0003_tags", "0002_notes", "tags")
        t0 = time.monotonic()
        fleet = cli(repo, "apply", "--all", "--parallel", str(args.parallel), "--json", env=env)
        fleet_s = time.monotonic() - t0
        assert fleet.returncode == 0, fleet.stderr[-2000:]
        assert json.loads(fleet.stdout)["summary"]["applied"] == args.targets

        add_column(repo, "0004_mood", "0003_tags", "mood")
        t0 = time.monotonic()
        for n in names:
            url = f"postgresql://{parts.username}@127.0.0.1:{parts.port}/{n}"
            one = cli(repo, "apply", "--database-url", url, "--json", env=env)
            assert one.returncode == 0, one.stderr[-2000:]
        seq_s = time.monotonic() - t0

        add_column(repo, "0005_rank", "0004_mood", "rank")
        marks: dict[str, list[tuple[str, float]]] = {n: [] for n in names}

        def on_event(name: str, state: str) -> None:
            marks[name].append((state, time.monotonic()))

        t0 = time.monotonic()
        res = api.apply_fleet(repo, api.Selection(all=True), actor="user:bench", parallel=1,
                              on_event=on_event)
        inproc_s = time.monotonic() - t0
        assert res.ok, res.error
        print(json.dumps({"fleet_apply_s": round(fleet_s, 2),
                          "sequential_processes_s": round(seq_s, 2),
                          "in_process_parallel_1_s": round(inproc_s, 2)}), file=sys.stderr)
        steps = ("lock", "drift check", "backup", "ddl", "verify", "audit")
        per: dict[str, list[float]] = {k: [] for k in (*steps, "overhead", "total")}
        prev_end = t0
        for n in names:
            states = marks[n]
            at: dict[str, float] = {}
            for s, t in states:
                if s != "queued":
                    at.setdefault(s, t)
            end = at["applied"]
            cuts = [prev_end, at["lock"], at["drift check"], at["backup"], at["apply"],
                    at["verify"], at["audit"], end]
            # probe + lock connection, then under the lock: recovery check, plan, journal
            names_ = ("lock", "plan", "drift check", "backup", "ddl", "verify", "audit")
            spans = dict(zip(names_, [b - a for a, b in zip(cuts, cuts[1:], strict=False)],
                             strict=True))
            spans["lock"] += spans.pop("plan")
            for k in steps:
                per[k].append(spans[k])
            total = end - prev_end
            per["total"].append(total)
            per["overhead"].append(total - spans["backup"] - spans["ddl"])
            prev_end = end

        med = statistics.median
        print(json.dumps({
            "targets": args.targets, "parallel": args.parallel,
            "load_average_start": load_start, "load_average_end": load_average(),
            "fleet_apply_s": round(fleet_s, 2),
            "sequential_processes_s": round(seq_s, 2),
            "speedup": round(seq_s / fleet_s, 2),
            "in_process_parallel_1_s": round(inproc_s, 2),
            "per_target_median_s": {k: round(med(v), 3) for k, v in per.items()},
            "per_target_overhead_max_s": round(max(per["overhead"]), 3),
        }, indent=2))
        return 0
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
