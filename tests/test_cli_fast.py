"""The lean path of a plain `schemactl validate FILE... [--json]` (schemactl.entry).

It must print what the click command line prints, byte for byte, with the same exit code,
for good, rejected, unparsable and missing files, and never import click or the heavy stack.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from schemactl.entry import plain_validate

GOOD = """table: notes
columns:
  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
  - {name: title, type: text}
"""
# No base fields, a reserved word and a type outside the allowed list: rejected (exit 1).
REJECTED = "table: select\ncolumns:\n  - {name: x, type: money}\n"
UNPARSABLE = "table: [unclosed\n"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("SCHEMACTL_ACTOR", "SCHEMACTL_DEBUG", "COLUMNS")}


def _run(module: str, args: list[str], cwd: Path) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True,
                          text=True, env=_env(), timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def files(repo: Path) -> Path:
    (repo / "good.yaml").write_text(GOOD)
    (repo / "rejected.yaml").write_text(REJECTED)
    (repo / "unparsable.yaml").write_text(UNPARSABLE)
    (repo / "a folder").mkdir()
    return repo


@pytest.mark.parametrize("args, code", [
    (["good.yaml"], 0),
    (["rejected.yaml"], 1),
    (["good.yaml", "rejected.yaml"], 1),
    (["unparsable.yaml"], 2),
    (["missing.yaml"], 2),
    ([], 0),
    (["a folder"], 2),  # click's usage error: the lean path leaves it to click
])
@pytest.mark.parametrize("json_flag", [True, False])
def test_lean_path_prints_what_click_prints(files: Path, args: list[str], code: int,
                                            json_flag: bool) -> None:
    argv = ["validate", *args] + (["--json"] if json_flag else [])
    lean = _run("schemactl", argv, files)
    code_, out, err = _run("schemactl.cli", argv, files)
    # Only the program's name in click's usage lines differs between the two modules.
    assert lean == (code_, out, err.replace("python -m schemactl.cli", "schemactl"))
    assert lean[0] == code, lean
    if json_flag:
        assert lean[1].startswith("{") and lean[1].count('"command": "validate"') == 1
    assert "Traceback" not in lean[2]


def test_only_a_plain_validate_takes_the_lean_path(tmp_path: Path) -> None:
    folder = tmp_path / "defs"
    folder.mkdir()
    assert plain_validate(["validate", "a.yaml", "--json"]) == ["a.yaml"]
    assert plain_validate(["validate", "--json", "a.yaml", "b.yaml"]) == ["a.yaml", "b.yaml"]
    assert plain_validate(["validate"]) == []
    for argv in (["propose", "a.yaml"], ["--json", "validate", "a.yaml"],
                 ["validate", "-"], ["validate", "a.yaml", "--base", "main"],
                 ["validate", "--repo", ".", "a.yaml"], ["validate", "--help"],
                 ["validate", "a.yaml", "--json", "--json"], ["validate", str(folder)], []):
        assert plain_validate(argv) is None, argv


def test_lean_path_imports_neither_click_nor_the_heavy_stack(files: Path) -> None:
    # The lean path ends with os._exit once its output is flushed: list the modules then.
    # From the second run on (schemactl.toml's parsed copy kept), not even typing, tomllib
    # or subprocess: each is milliseconds of a cold start.
    code = ("import os, runpy, sys\n"
            "sys.argv = ['schemactl', 'validate', 'good.yaml', '--json']\n"
            "heavy = ('click', 'sqlalchemy', 'alembic', 'git', 'jsonschema', 'rich', 'psycopg',\n"
            "         'typing', 'tomllib', 'subprocess', 'pkgutil')\n"
            "end = os._exit\n"
            "def loaded(code):\n"
            "    print(sorted(m for m in sys.modules if m.split('.')[0] in heavy), flush=True)\n"
            "    end(code)\n"
            "os._exit = loaded\n"
            "runpy.run_module('schemactl', run_name='__main__')\n")
    for _attempt in ("first", "second"):
        proc = subprocess.run([sys.executable, "-c", code], cwd=files, capture_output=True,
                              text=True, env=_env(), timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert '"ok": true' in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr


def test_lean_path_ends_git_and_keeps_the_parse_cache(files: Path) -> None:
    """Ending with os._exit loses nothing: the parse cache the first run wrote is whole and
    answers the second run as a run without the cache does, and git's batch reader ends."""
    import sqlite3

    from schemactl.model.repo import CACHE_PATH

    def validate(cache: str) -> tuple[int, str]:
        proc = subprocess.run([sys.executable, "-m", "schemactl", "validate", "rejected.yaml",
                               "--json"], cwd=files, capture_output=True, text=True,
                              env={**_env(), "SCHEMACTL_PARSE_CACHE": cache}, timeout=120)
        return proc.returncode, proc.stdout

    first, second, without = validate("on"), validate("on"), validate("off")
    assert first == second == without and first[0] == 1
    with sqlite3.connect(files / CACHE_PATH) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM meta").fetchone()[0] >= 1
    deadline = time.monotonic() + 10  # git sees its input end and exits: give it a moment
    while f"git -C {files} cat-file" in subprocess.run(["ps", "-eo", "args"],
                                                       capture_output=True, text=True).stdout:
        assert time.monotonic() < deadline, "git cat-file outlived the validate"
        time.sleep(0.05)


def test_lean_path_with_standard_input_closed(files: Path) -> None:
    """git's pipes then take the lowest descriptors (0 among them), which a spawn cannot
    hand on as they are: the reader falls back to subprocess and answers the same."""
    code = ("import os, runpy, sys\n"
            "os.close(0)\n"
            "sys.argv = ['schemactl', 'validate', 'good.yaml', 'rejected.yaml', '--json']\n"
            "runpy.run_module('schemactl', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=files, capture_output=True,
                          text=True, env=_env(), timeout=120)
    want = _run("schemactl.cli", ["validate", "good.yaml", "rejected.yaml", "--json"], files)
    assert (proc.returncode, proc.stdout) == want[:2]
    assert proc.returncode == 1 and '"SC301"' in proc.stdout


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_spawned_git_gets_the_default_signals_back() -> None:
    """Python ignores SIGPIPE and SIGXFSZ; a child started by the batch reader's spawn must
    not inherit that (git killed by a closed pipe, not writing on into it)."""
    from schemactl.adapters.gitobjects import _spawn

    spawned = _spawn(["sh", "-c", "grep SigIgn /proc/self/status"])
    assert spawned is not None
    pid, stdin, stdout = spawned
    stdin.close()
    line = stdout.read().decode()
    stdout.close()
    os.waitpid(pid, 0)
    ignored = int(line.split()[1], 16)
    for signum in (13, 25):  # SIGPIPE, SIGXFSZ on Linux
        assert not ignored & (1 << (signum - 1)), line
