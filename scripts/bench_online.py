#!/usr/bin/env python
"""Benchmark of online changes (expand, backfill, contract) on a large table under load.

    python scripts/bench_online.py [--rows 1000000] [--clients 4] [--database-url URL]

1. pgbench off: `score2 integer → bigint` on ``--rows`` rows; backfill throughput (rows/s)
   beside a bare one-statement `UPDATE` of the same table, run just before and just after
   (the ratio is to their mean: the machine's load drifts).
2. pgbench on (a read/write load on the same table, ``--clients`` clients): a rename
   (title → headline), integer → bigint, varchar(200) → varchar(100) refused while one value
   does not fit and then done, and NOT NULL with a backfill. For each: pgbench errors, the
   longest ACCESS EXCLUSIVE hold on the table (pg_locks polled about every millisecond from
   a separate session), backfill rows/s, the pgbench tps during the change against the tps
   just before it, and a checksum of the changed column's values before and after.

Without --database-url an embedded PostgreSQL is started in a temporary directory. pgbench
comes from the wheel's bin directory or /usr/lib/postgresql/*/bin. A benchmark, not a test:
it prints figures (and says when a checksum differs or pgbench failed).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import (  # noqa: E402
    BASE_COLUMNS,
    LockWatcher,
    load_average,
    scratch_databases,
    start_pgbench,
)

from schemactl import api  # noqa: E402
from schemactl.adapters.database import Target, connect  # noqa: E402
from schemactl.errors import SchemactlError  # noqa: E402

BASE = BASE_COLUMNS + """  - {name: n, type: bigint}
  - {name: hits, type: integer, nullable: false, default: 0}
"""
COLUMNS = {"title": "{name: title, type: varchar(200)}",
           "score": "{name: score, type: integer}",
           "score2": "{name: score2, type: integer}",
           "label": "{name: label, type: varchar(200)}",
           "body": "{name: body, type: text}"}
INDEX = "indexes:\n  - {columns: [n]}\n"

# Writers touch `hits` and insert rows; readers read the columns being changed.
PGBENCH_SCRIPT = """\\set r random(1, {rows})
UPDATE events SET hits = hits + 1 WHERE n = :r;
SELECT score, label, body FROM events WHERE n = :r;
INSERT INTO events (n, body) VALUES (-:r, 'new');
"""


def definition(cols: dict[str, str]) -> str:
    return ("table: events\ncolumns:\n" + BASE + "".join(f"  - {c}\n" for c in cols.values())
            + INDEX)


def checksum(target: Target, col: str) -> str:
    with connect(target) as conn:
        row = conn.execute(f"SELECT md5(string_agg(coalesce({col}::text, '<null>'), ',' "
                           f"ORDER BY id)) FROM events WHERE n > 0").fetchone()
    return str(row[0]) if row else ""


def load(target: Target, rows: int) -> None:
    with connect(target) as conn:
        conn.execute(
            "INSERT INTO events (n, title, score, score2, label, body) SELECT g, 'title ' || g, "
            "g, g, 'label ' || g, CASE WHEN g %% 10 = 0 THEN NULL ELSE 'body ' || g END "
            "FROM generate_series(1, %s) g", (rows,))
        conn.execute("VACUUM ANALYZE events")


class Pgbench:
    """pgbench running the read/write script for the whole phase, logging each transaction."""

    def __init__(self, target: Target, rows: int, clients: int, seconds: int) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="bench-online-pgbench-"))
        (self.work / "rw.sql").write_text(PGBENCH_SCRIPT.format(rows=rows))
        self.proc = start_pgbench(target, self.work / "rw.sql", clients, seconds,
                                  self.work / "pgb")

    def finish(self) -> tuple[str, str, int]:
        out, err = self.proc.communicate(timeout=3600)
        return out, err, self.proc.returncode

    def tps(self, t0: float, t1: float) -> float:
        n = 0
        for path in self.work.glob("pgb*"):
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 6 and t0 <= int(parts[4]) + int(parts[5]) / 1e6 <= t1:
                    n += 1
        return n / max(t1 - t0, 1e-6)


def change(repo: Path, target: Target, cols: dict[str, str], key: str, new: str,
           check_col: str, after_col: str, watcher: LockWatcher | None,
           bench: Pgbench | None, propose: bool = True) -> dict[str, Any]:
    """Propose (unless the head already is the change) and apply one online change; the
    figures of its run."""
    before = checksum(target, check_col)
    cols[key] = new
    if propose:
        res = api.propose(repo, stdin=definition(cols), actor="user:bench")
        assert res.ok, res
    rates: list[float] = []
    window: list[float] = []  # the backfill's first batch and its end

    def progress(step: str, _done: int, _total: int | None) -> None:
        m = re.search(r"(\d+) rows/s", step)
        if m:
            rates.append(float(m.group(1)))
            if not window:
                window.append(time.time())
        elif step.endswith("backfill done") and len(window) == 1:
            window.append(time.time())

    holds_before = len(watcher.holds) if watcher else 0
    t0 = time.time()
    start = time.perf_counter()
    error = None
    try:
        api.apply(repo, database_url=target.url, actor="user:bench", progress=progress)
    except SchemactlError as exc:
        error = exc.message
    seconds = time.perf_counter() - start
    t1 = time.time()
    out: dict[str, Any] = {"seconds": round(seconds, 2),
                           "backfill_rows_per_s": int(rates[-1]) if rates else 0,
                           "load": round(os.getloadavg()[0], 1)}
    if error:
        out["stopped"] = error[:160]
        out["values_equal"] = checksum(target, check_col) == before
        cols[key] = COLUMNS.get(key, cols[key])
        return out
    out["values_equal"] = checksum(target, after_col) == before
    if watcher is not None:
        time.sleep(0.05)
        holds = watcher.holds[holds_before:]
        out["longest_access_exclusive_ms"] = round(max(holds, default=0) * 1000, 1)
        out["access_exclusive_holds"] = len(holds)
    if bench is not None:
        out["tps_before"] = round(bench.tps(t0 - 5, t0), 1)
        out["tps_during"] = round(bench.tps(t0, t1), 1)
        if len(window) == 2:
            out["tps_during_backfill"] = round(bench.tps(window[0], window[1]), 1)
    return out


def bare_update(target: Target, rows: int) -> float:
    """rows/s of one bare UPDATE of every row into a scratch column (no batches, no trigger,
    one long transaction holding every row lock): the ceiling."""
    with connect(target) as conn:
        conn.execute("ALTER TABLE events ADD COLUMN scratch bigint")
        conn.commit()
        start = time.perf_counter()
        conn.execute("UPDATE events SET scratch = score2")
        conn.commit()
        rate = rows / (time.perf_counter() - start)
        conn.execute("ALTER TABLE events DROP COLUMN scratch")
        conn.execute("VACUUM events")
        conn.commit()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--database-url", default=None,
                        help="a superuser URL of a server to use (a database is created)")
    parser.add_argument("--only", choices=("quiet", "varchar"), default=None,
                        help="only the pgbench-off backfill, or only the varchar cases")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-online-"))
    try:
        with scratch_databases(args.database_url, tmp, "schemactl_bench_online") as (
                _, dbs, version):
            run(dbs[0], tmp / "repo", version, args.rows, args.clients, args.only)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(target: Target, repo: Path, version: str, rows: int, clients: int,
        only: str | None) -> None:
    api.init(repo, actor="user:bench")
    cols = dict(COLUMNS)
    assert api.propose(repo, stdin=definition(cols), actor="user:bench").ok
    api.apply(repo, database_url=target.url, actor="user:bench")
    start = time.perf_counter()
    load(target, rows)
    print(f"PostgreSQL {version}; {rows} rows loaded in {time.perf_counter() - start:.1f} s; "
          f"{load_average()}", flush=True)

    if only in (None, "quiet"):
        # The ceiling, side by side: a bare UPDATE just before and just after the backfill.
        bare = [bare_update(target, rows)]
        quiet = change(repo, target, cols, "score2", "{name: score2, type: bigint}",
                       "score2", "score2", None, None)
        bare.append(bare_update(target, rows))
        quiet["bare_update_rows_per_s"] = [int(b) for b in bare]
        quiet["ratio_to_bare_update"] = round(quiet["backfill_rows_per_s"] / (sum(bare) / 2), 2)
        print(f"pgbench off  integer → bigint      {quiet}; {load_average()}", flush=True)
        if only == "quiet":
            return

    bench = Pgbench(target, rows, clients, seconds=1800)
    watcher = LockWatcher(target, "public.events")
    watcher.start()
    time.sleep(6)
    runs = [
        ("rename title → headline", "title",
         "{name: headline, type: varchar(200), renamed_from: title}", "title", "headline"),
        ("integer → bigint", "score", "{name: score, type: bigint}", "score", "score"),
    ]
    if only == "varchar":
        runs = []
    for label, key, new, before_col, after_col in runs:
        res = change(repo, target, cols, key, new, before_col, after_col, watcher, bench)
        print(f"pgbench on   {label:24} {res}", flush=True)
    with connect(target) as conn:  # one value that does not fit varchar(100)
        conn.execute("UPDATE events SET label = repeat('x', 150) WHERE n = %s", (rows // 2,))
    refused = change(repo, target, cols, "label", "{name: label, type: varchar(100)}",
                     "label", "label", watcher, bench)
    print(f"pgbench on   {'varchar(100), one too long':24} {refused}", flush=True)
    cols["label"] = "{name: label, type: varchar(100)}"
    with connect(target) as conn:
        conn.execute("UPDATE events SET label = 'label ' || n WHERE n = %s", (rows // 2,))
    # the refused proposal is still the head: apply it again now that the value fits
    res = change(repo, target, cols, "label", "{name: label, type: varchar(100)}", "label",
                 "label", watcher, bench, propose=False)
    print(f"pgbench on   {'varchar(200) → (100)':24} {res}", flush=True)
    if only != "varchar":
        res = change(repo, target, cols, "body",
                     "{name: body, type: text, nullable: false, backfill: ''}",
                     "coalesce(body, '')", "body", watcher, bench)
        print(f"pgbench on   {'NOT NULL, backfill ' + repr(''):24} {res}", flush=True)
    bench.proc.terminate()
    out, err, code = bench.finish()
    watcher.stop.set()
    watcher.join()
    errors = [ln for ln in err.splitlines() if "error" in ln.lower()]
    print(f"pgbench: exit {code}, {len(errors)} error line(s)"
          + (f": {errors[0]}" if errors else "") + f"; {load_average()}")
    shutil.rmtree(bench.work, ignore_errors=True)


if __name__ == "__main__":
    main()
