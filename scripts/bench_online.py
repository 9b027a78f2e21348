#!/usr/bin/env python
"""Benchmark of online changes (expand, backfill, contract) on a large table under load.

    python scripts/bench_online.py [--rows 1000000] [--clients 4] [--database-url URL]

1. pgbench off: `score2 integer → bigint` on ``--rows`` rows; backfill throughput (rows/s).
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
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_apply import LockWatcher, _pgbench  # noqa: E402

from schemactl import api  # noqa: E402
from schemactl.adapters.database import Target, connect  # noqa: E402
from schemactl.errors import SchemactlError  # noqa: E402

BASE = """  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
  - {name: n, type: bigint}
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
        from urllib.parse import unquote, urlsplit

        self.work = Path(tempfile.mkdtemp(prefix="bench-online-pgbench-"))
        (self.work / "rw.sql").write_text(PGBENCH_SCRIPT.format(rows=rows))
        parts = urlsplit(target.url)
        env = {"PGPASSWORD": unquote(parts.password or ""), "PATH": "/usr/bin:/bin"}
        self.proc = subprocess.Popen(
            [str(_pgbench()), "-n", "-c", str(clients), "-j", str(min(clients, 2)), "-T",
             str(seconds), "-f", "rw.sql", "-l", f"--log-prefix={self.work / 'pgb'}",
             "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432),
             "-U", parts.username or "postgres", parts.path.lstrip("/")],
            env=env, cwd=self.work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

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
           bench: Pgbench | None) -> dict[str, Any]:
    """Propose and apply one online change; the figures of its run."""
    before = checksum(target, check_col)
    cols[key] = new
    res = api.propose(repo, stdin=definition(cols), actor="user:bench")
    assert res.ok, res
    rates: list[float] = []

    def progress(step: str, _done: int, _total: int | None) -> None:
        m = re.search(r"(\d+) rows/s", step)
        if m:
            rates.append(float(m.group(1)))

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
                           "backfill_rows_per_s": int(rates[-1]) if rates else 0}
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
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--database-url", default=None,
                        help="a superuser URL of a server to use (a database is created)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-online-"))
    server = None
    try:
        if args.database_url:
            admin = Target(args.database_url)
        else:
            from schemactl.adapters.embedded import EmbeddedServer

            server = EmbeddedServer(tmp / "pg" / ".schemactl")
            server.start()
            admin = Target(server.secret_url())
        with connect(admin) as conn:
            conn.execute("DROP DATABASE IF EXISTS schemactl_bench_online WITH (FORCE)")
            conn.execute("CREATE DATABASE schemactl_bench_online")
            version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        target = admin.with_database("schemactl_bench_online")
        repo = tmp / "repo"
        api.init(repo, actor="user:bench")
        cols = dict(COLUMNS)
        assert api.propose(repo, stdin=definition(cols), actor="user:bench").ok
        api.apply(repo, database_url=target.url, actor="user:bench")
        start = time.perf_counter()
        load(target, args.rows)
        print(f"PostgreSQL {version}; {args.rows} rows loaded in "
              f"{time.perf_counter() - start:.1f} s", flush=True)

        # The ceiling, side by side: one bare UPDATE of every row into a scratch column (no
        # batches, no trigger, one long transaction holding every row lock).
        with connect(target) as conn:
            conn.execute("ALTER TABLE events ADD COLUMN scratch bigint")
            conn.commit()
            start = time.perf_counter()
            conn.execute("UPDATE events SET scratch = score2")
            conn.commit()
            bare = args.rows / (time.perf_counter() - start)
            conn.execute("ALTER TABLE events DROP COLUMN scratch")
            conn.execute("VACUUM events")
            conn.commit()
        quiet = change(repo, target, cols, "score2", "{name: score2, type: bigint}",
                       "score2", "score2", None, None)
        quiet["bare_update_rows_per_s"] = int(bare)
        quiet["ratio_to_bare_update"] = round(quiet["backfill_rows_per_s"] / bare, 2)
        print(f"pgbench off  integer → bigint      {quiet}", flush=True)

        bench = Pgbench(target, args.rows, args.clients, seconds=900)
        watcher = LockWatcher(target, "public.events")
        watcher.start()
        time.sleep(6)
        runs = [
            ("rename title → headline", "title",
             "{name: headline, type: varchar(200), renamed_from: title}", "title", "headline"),
            ("integer → bigint", "score", "{name: score, type: bigint}", "score", "score"),
        ]
        results = []
        for label, key, new, before_col, after_col in runs:
            results.append((label, change(repo, target, cols, key, new, before_col, after_col,
                                          watcher, bench)))
            print(f"pgbench on   {label:24} {results[-1][1]}", flush=True)
        with connect(target) as conn:  # one value that does not fit varchar(100)
            conn.execute("UPDATE events SET label = repeat('x', 150) WHERE n = %s",
                         (args.rows // 2,))
        refused = change(repo, target, cols, "label", "{name: label, type: varchar(100)}",
                         "label", "label", watcher, bench)
        print(f"pgbench on   {'varchar(100), one too long':24} {refused}", flush=True)
        with connect(target) as conn:
            conn.execute("UPDATE events SET label = 'label ' || n WHERE n = %s",
                         (args.rows // 2,))
        # the refused proposal is still the head: apply it again now that the value fits
        for label, key, new, before_col, after_col in [
                ("varchar(200) → (100)", "label", "{name: label, type: varchar(100)}", "label",
                 "label"),
                ("NOT NULL, backfill ''", "body",
                 "{name: body, type: text, nullable: false, backfill: ''}",
                 "coalesce(body, '')", "body")]:
            if key == "label":
                before = checksum(target, "label")
                t0 = time.time()
                holds_before = len(watcher.holds)
                start = time.perf_counter()
                api.apply(repo, database_url=target.url, actor="user:bench")
                res = {"seconds": round(time.perf_counter() - start, 2),
                       "values_equal": checksum(target, "label") == before,
                       "longest_access_exclusive_ms": round(max(
                           watcher.holds[holds_before:], default=0) * 1000, 1),
                       "tps_before": round(bench.tps(t0 - 5, t0), 1),
                       "tps_during": round(bench.tps(t0, time.time()), 1)}
                cols["label"] = new
            else:
                res = change(repo, target, cols, key, new, before_col, after_col, watcher,
                             bench)
            print(f"pgbench on   {label:24} {res}", flush=True)
        bench.proc.terminate()
        out, err, code = bench.finish()
        watcher.stop.set()
        watcher.join()
        errors = [ln for ln in err.splitlines() if "error" in ln.lower()]
        print(f"pgbench: exit {code}, {len(errors)} error line(s)"
              + (f": {errors[0]}" if errors else ""))
        shutil.rmtree(bench.work, ignore_errors=True)
        with connect(admin) as conn:
            conn.execute("DROP DATABASE IF EXISTS schemactl_bench_online WITH (FORCE)")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
