"""Fault campaign: kill -9, server stop -m immediate, a TCP proxy that cuts or freezes.

    python scripts/chaos.py                 # 54 runs (the 8 kinds in turn), seed 12
    python scripts/chaos.py --runs 12 --seed 3 --rows 5000 --kinds kill-step,proxy-cut

Each run: a repository with two pending proposals (a column, a concurrent index) over a
table with rows; one fault during apply, rollback, rollback --restore-backup or a fleet
apply --all over two targets; then status, the next apply, and the invariants of
tests/chaos_engine.py. Prints one line per run (with what status said after the fault)
and the totals (figures for docs/reliability.md). Exit 1 when any run wedged or lost rows.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.chaos_engine import KINDS, Campaign  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=54)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--pg-bin", default=None, help="PostgreSQL binaries (default: the wheel's)")
    args = ap.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="schemactl-chaos-"))
    campaign = Campaign(work, rows=args.rows, bin_dir=Path(args.pg_bin) if args.pg_bin else None)
    outcomes = []
    started = time.monotonic()
    try:
        for i in range(args.runs):
            kind = kinds[i % len(kinds)]
            o = campaign.run(kind, rng)
            outcomes.append(o)
            mark = "WEDGED" if o.wedged else "ok"
            print(f"{i + 1:3d} {kind:14s} {o.point:38s} exit={o.first_exit!s:4s} "
                  f"{mark} {o.seconds:5.1f}s status: {o.status_said} "
                  f"{'; '.join(o.problems)}", flush=True)
    finally:
        campaign.close()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    by_kind = Counter(o.kind for o in outcomes)
    wedged = [o for o in outcomes if o.wedged]
    lost = sum(o.rows_lost for o in outcomes)
    points = sorted({o.point.split(" at ")[-1] if "step" in o.point else o.kind
                     for o in outcomes})
    print(f"runs {len(outcomes)} in {time.monotonic() - started:.0f} s; faults "
          + ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items()))
          + f"; kill points {len(points)}; wedged {len(wedged)}; rows lost {lost}")
    said: Counter[str] = Counter()
    for o in outcomes:  # a fleet run says one thing per target
        for part in o.status_said.split("; "):
            said[part.split(": ", 1)[-1].split(":")[0] if o.kind == "kill-fleet"
                 else part.split(":")[0]] += 1
    print("status after the fault: " + ", ".join(f"{k} {n}" for k, n in sorted(said.items())))
    return 1 if wedged or lost else 0


if __name__ == "__main__":
    sys.exit(main())
