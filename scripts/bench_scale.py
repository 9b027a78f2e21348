"""Benchmark: offline commands at 10 and at 10,000 tables, side by side in one run.

    .venv/bin/python scripts/bench_scale.py [--small 10] [--large 10000] [--runs 7]
    .venv/bin/python scripts/bench_scale.py --only cold [--runs 15]   # the cold line only
    .venv/bin/python scripts/bench_scale.py --only cold --also OTHER/.venv/bin/python

Builds two repositories in a temporary folder (`schemactl init`, N committed definitions,
one bulk migration, the sum file), then measures as new processes, after one warm-up run
each, alternating small and large:

- `schemactl validate FILE --json`, FILE a change to one existing table;
- `schemactl propose FILE --json`, FILE a new table (each run commits);
- `schemactl check --base base --json` of a branch proposing a change to one table;
- cold `schemactl validate one.yaml --json` (small repository; `python -m schemactl`, the
  console script's program) against `python -c pass`, bytecode compiled first, saying
  whether schemactl is an editable install (its path finder runs in both processes) or a
  wheel; `--also PYTHON` measures other interpreters (another checkout's or a wheel's
  virtual environment) in the same interleaved loop;
- the offline parts of `apply` of a one-table change, each in a new process (a database
  of 10,000 tables is not built here): the agent policy (`unsafe_findings`: the rules
  over the change from the database's revision to HEAD) and the definitions drift
  compares with (`load_at_rev`, every definition, from the parse cache), beside parsing
  every file (`load_dir`) as before the cache;
- the MCP server (`schemactl mcp`) on each repository, warm: schema_validate and
  schema_propose medians, and the server's resident memory afterwards.

The load average is printed before and after: the machine may be shared.

Prints the medians and the ratios; the targets (docs/performance.md): each large/small
ratio <= 1.5, cold validate <= 3.5x `python -c pass`, MCP schema_validate <= 20 ms,
schema_propose <= 150 ms, MCP RSS < 300 MB. Exits 1 when one is missed.
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASE = """\
  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
"""


def definition(name: str, extra: str = "", ref: str | None = None) -> str:
    link = f"  - {{name: parent_id, type: uuid, references: {ref}.id}}\n" if ref else ""
    return (f"table: {name}\ncolumns:\n{BASE}  - {{name: title, type: varchar(200)}}\n"
            f"  - {{name: body, type: text}}\n{link}{extra}indexes:\n  - {{columns: [title]}}\n")


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def build(repo: Path, n: int) -> None:
    """N definitions (every tenth references the previous one), a bulk migration, committed."""
    from schemactl import api
    from schemactl.codegen import sumfile

    api.init(repo, actor="user:bench")
    folder = repo / "dynamic_schema"
    for i in range(n):
        ref = f"t{i - 1:05d}" if i % 10 == 1 else None
        (folder / f"t{i:05d}.yaml").write_text(definition(f"t{i:05d}", ref=ref))
    (repo / "migrations" / "versions" / "0002_bulk.py").write_text(
        '"""bulk"""\nrevision = "0002_bulk"\ndown_revision = "0001_core"\n'
        "branch_labels = None\ndepends_on = None\n\n\ndef upgrade() -> None:\n    pass\n\n\n"
        "def downgrade() -> None:\n    pass\n")
    sumfile.write_sum(repo)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=bench", "-c", "user.email=b@b", "commit", "-q", "-m", "tables")


def run(repo: Path, *args: str, ok: tuple[int, ...] = (0,)) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "schemactl.cli", *args], cwd=repo,
                          capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(args)} in {repo.name}: exit {proc.returncode}\n"
                         f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return took


APPLY_PARTS = """
import sys, time
from pathlib import Path
from schemactl.model.repo import SchemaRepo
from schemactl.model import loading
from schemactl.verbs import policy
repo, part, revision = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
sr = SchemaRepo.open(repo)
start = time.perf_counter()
if part == "policy":
    assert policy.unsafe_findings(sr, revision) == []
elif part == "definitions":
    loading.load_at_rev(repo, "HEAD")
else:
    loading.load_dir(repo / "dynamic_schema", repo)
print(time.perf_counter() - start)
"""


def apply_part(repo: Path, part: str, revision: str) -> float:
    """Seconds of one offline part of apply, timed inside a new process (imports excluded)."""
    proc = subprocess.run([sys.executable, "-c", APPLY_PARTS, str(repo), part, revision],
                          cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{part} in {repo.name}: {proc.stderr[-2000:]}")
    return float(proc.stdout.split()[-1])


def previous_revision(repo: Path) -> str:
    """The revision of the proposal before HEAD's: from it to HEAD is a one-table change."""
    out = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%B", "HEAD~1"],
                         capture_output=True, text=True, check=True).stdout
    return next(ln.split(": ", 1)[1] for ln in out.splitlines()
                if ln.startswith("Schemactl-Revision: "))


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def side_by_side(label: str, runs: int, small: Any, large: Any) -> tuple[float, float]:
    """Warm-up once each, then alternate; medians."""
    small(-1)
    large(-1)
    a, b = [], []
    for i in range(runs):
        a.append(small(i))
        b.append(large(i))
    ms, ml = statistics.median(a), statistics.median(b)
    print(f"| {label} | {ms:.3f} | {ml:.3f} | {ml / ms:.2f} |", flush=True)
    return ms, ml


def mcp_figures(repo: Path, runs: int) -> tuple[float, float, float]:
    """Medians (s) of schema_validate and schema_propose on a warm server, its RSS (MB)."""
    import anyio
    import mcp.types as types
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    change = {"table": "t00007", "columns": [
        {"name": "title", "type": "varchar(200)"}, {"name": "body", "type": "text"},
        {"name": "rank", "type": "integer"}], "indexes": [{"columns": ["title"]}]}

    def new_table(i: int) -> dict[str, Any]:
        return {"table": f"mcp_{i + 1:03d}", "columns": [
            {"name": "title", "type": "varchar(200)"},
            {"name": "parent_id", "type": "uuid", "references": "t00000.id"}]}

    async def main() -> tuple[float, float, float]:
        params = StdioServerParameters(command=sys.executable, args=[
            "-m", "schemactl.cli", "mcp", "--repo", str(repo)], cwd=str(repo))
        async with stdio_client(params, errlog=open(os.devnull, "w")) as (read, write):
            async with ClientSession(read, write, client_info=types.Implementation(
                    name="bench", version="1")) as session:
                await session.initialize()

                async def timed(name: str, args: dict[str, Any]) -> float:
                    start = time.perf_counter()
                    res = await session.call_tool(name, args)
                    took = time.perf_counter() - start
                    data = json.loads(res.content[0].text)  # type: ignore[union-attr]
                    assert data["ok"], data
                    return took

                vargs = {"definition": change, "add_base_fields": True}
                await timed("schema_validate", vargs)
                validate = [await timed("schema_validate", vargs) for _ in range(runs * 3)]
                await timed("schema_propose", {"definition": new_table(-1),
                                               "add_base_fields": True})
                propose = [await timed("schema_propose", {"definition": new_table(i),
                                                          "add_base_fields": True})
                           for i in range(runs)]
                rss = _server_rss()
        return statistics.median(validate), statistics.median(propose), rss

    return anyio.run(main)


def _server_rss() -> float:
    """The resident memory (MB) of this process's `schemactl mcp` child."""
    me = str(os.getpid())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[1] == me and b"mcp" in cmd:
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    return float("nan")


def install_kind(python: str = sys.executable) -> str:
    """How an interpreter finds schemactl: an editable install's finder (loaded at every
    start, `python -c pass` included) or the installed files of a wheel."""
    probe = subprocess.run([python, "-c", "import sys; print(any(m.startswith("
                            "'__editable___schemactl') for m in sys.modules))"],
                           capture_output=True, text=True, check=True).stdout
    return "editable install" if probe.strip() == "True" else "wheel install"


def _timed(python: str, args: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run([python, *args], cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{python} {' '.join(args)}: exit {proc.returncode}\n"
                         f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return took


def cold_validate(repo: Path, base: Path, runs: int, also: list[str] | None = None) -> float:
    """Cold `validate one.yaml --json` against `python -c pass`, interleaved; the ratio of
    this interpreter (``also``: other interpreters, e.g. another checkout's virtual
    environment, measured in the same loop and printed beside it)."""
    import compileall

    pythons = [sys.executable, *(also or [])]
    for python in pythons:
        # The packages the measured processes import (a wheel's, or a checkout's), compiled
        # first: the figure is a cold process with bytecode, as an installed program runs.
        where = subprocess.run([python, "-c", "import schemactl, safety_rules; "
                                "print(schemactl.__file__); print(safety_rules.__file__)"],
                               cwd=repo, capture_output=True, text=True, check=True).stdout
        for init in where.split():
            compileall.compile_dir(str(Path(init).parent), quiet=1)
    tiny = base / "tiny.yaml"
    tiny.write_text(definition("tiny"))
    command = ["-m", "schemactl", "validate", str(tiny), "--json"]
    times: dict[str, tuple[list[float], list[float]]] = {p: ([], []) for p in pythons}
    for python in pythons:
        _timed(python, command, repo)
    for _ in range(runs):
        for python in pythons:
            times[python][0].append(_timed(python, ["-c", "pass"]))
            times[python][1].append(_timed(python, command, repo))
    ratios = {}
    for python in pythons:
        mb, mc = statistics.median(times[python][0]), statistics.median(times[python][1])
        ratios[python] = mc / mb
        who = "" if python == sys.executable else f" [{python}]"
        print(f"\ncold `validate one.yaml --json` ({repo.name} repository, "
              f"{install_kind(python)}, median of {runs}){who}: {mc * 1000:.1f} ms; "
              f"`python -c pass`: {mb * 1000:.1f} ms; ratio {mc / mb:.2f} (target <= 3.5)",
              flush=True)
    return ratios[sys.executable]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--large", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--also", action="append", metavar="PYTHON",
                        help="With --only cold: also measure this interpreter (another "
                             "checkout's or a wheel's virtual environment) in the same loop.")
    parser.add_argument("--only", choices=["cold"],
                        help="Measure only this part: `cold` builds the small repository "
                             "and times the cold validate against `python -c pass`.")
    opts = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="schemactl-scale-"))
    failed = False
    if opts.only == "cold":
        try:
            build(base / "small", opts.small)
            print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; {load()}")
            failed = cold_validate(base / "small", base, max(10, opts.runs), opts.also) > 3.5
            print(load())
        finally:
            shutil.rmtree(base, ignore_errors=True)
        return 1 if failed else 0
    try:
        small, large = base / "small", base / "large"
        t0 = time.perf_counter()
        build(small, opts.small)
        build(large, opts.large)
        print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; "
              f"built {opts.small} and {opts.large} tables in {time.perf_counter() - t0:.1f} s; "
              f"{load()}")
        one = base / "one.yaml"
        one.write_text(definition("t00005", "  - {name: rank, type: integer}\n"))
        t_first = run(large, "validate", str(one), "--json")
        print(f"first `validate FILE` at {opts.large} tables (builds the parse cache): "
              f"{t_first:.2f} s\n")
        print(f"| case | {opts.small} tables, s | {opts.large} tables, s | ratio |")
        print("| --- | ---: | ---: | ---: |")
        ratios = []
        ms, ml = side_by_side("`validate FILE --json` (one table changed)", opts.runs,
                              lambda i: run(small, "validate", str(one), "--json"),
                              lambda i: run(large, "validate", str(one), "--json"))
        ratios.append(ml / ms)

        def propose(repo: Path, i: int) -> float:
            path = base / f"{repo.name}_new_{i + 1}.yaml"
            path.write_text(definition(f"new_{i + 1:03d}", ref="t00000"))
            return run(repo, "propose", str(path), "--json")

        ms, ml = side_by_side("`propose FILE --json` (one new table, committed)", opts.runs,
                              lambda i: propose(small, i), lambda i: propose(large, i))
        ratios.append(ml / ms)

        change = base / "change.yaml"
        change.write_text(definition("t00003", "  - {name: rank, type: integer}\n"))
        for repo in (small, large):
            git(repo, "branch", "-f", "base", "HEAD")
            git(repo, "checkout", "-q", "-b", "pr")
            run(repo, "propose", str(change), "--json")
        ms, ml = side_by_side("`check --base base --json` (one-table PR)", opts.runs,
                              lambda i: run(small, "check", "--base", "base", "--json"),
                              lambda i: run(large, "check", "--base", "base", "--json"))
        ratios.append(ml / ms)
        failed |= any(r > 1.5 for r in ratios)

        for repo in (small, large):
            git(repo, "checkout", "-q", "main")
        revs = {repo: previous_revision(repo) for repo in (small, large)}
        ms, ml = side_by_side("apply, agent policy of a one-table change (in process)",
                              opts.runs, lambda i: apply_part(small, "policy", revs[small]),
                              lambda i: apply_part(large, "policy", revs[large]))
        ratios.append(ml / ms)
        side_by_side("apply, drift's definitions at HEAD (`load_at_rev`, cache)", 3,
                     lambda i: apply_part(small, "definitions", ""),
                     lambda i: apply_part(large, "definitions", ""))
        side_by_side("the same parsed from every file (`load_dir`, no cache)", 1,
                     lambda i: apply_part(small, "parse", ""),
                     lambda i: apply_part(large, "parse", ""))
        failed |= any(r > 1.5 for r in ratios)

        failed |= cold_validate(small, base, max(10, opts.runs * 2)) > 3.5

        for repo, n in ((small, opts.small), (large, opts.large)):
            v, p, rss = mcp_figures(repo, opts.runs)
            print(f"MCP server, warm, {n} tables: schema_validate median {v * 1000:.1f} ms "
                  f"(target <= 20), schema_propose median {p * 1000:.1f} ms (target <= 150), "
                  f"RSS {rss:.0f} MB (target < 300)")
        failed |= v > 0.020 or p > 0.150 or not rss < 300
        print(load())
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
