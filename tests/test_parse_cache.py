"""The parse cache never changes a verdict: cold, warm, stale, corrupt or foreign.

Every definition case of tests/rules/cases/ is replayed through a real git repository
(``before`` committed, ``after`` in the work tree) with the cache forced on, and must
give the same violations as the rules over the parsed definitions, whatever state the
cache file is in.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from schemactl.model.cache import CACHE_DIR, CACHE_FILE, DefinitionCache
from schemactl.model.definitions import Column, Index, TableDef
from schemactl.model.parsing import dump_definition, parse_definition
from schemactl.model.records import from_record, model_schema, to_record
from schemactl.rules.validation import build_proposal, check_definitions, validate_proposal
from tests.rules.helpers import make_config, tables
from tests.rules.test_rule_cases import CASES

DEF_CASES = [(i, c) for i, c in CASES if "repo" not in c and "ops" not in c]
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                   env={**os.environ, **GIT_ENV})


def write_defs(root: Path, defs: dict[str, TableDef]) -> None:
    folder = root / "dynamic_schema"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        if old.stem not in defs:
            old.unlink()
    for name, tdef in defs.items():
        path = folder / f"{name}.yaml"
        text = dump_definition(tdef)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def found(report: Any) -> list[tuple[str, str | None, str | None, str]]:
    return sorted((v.rule, v.table, v.column, v.message) for v in report.violations)


def db_path(root: Path) -> Path:
    return root / CACHE_DIR / CACHE_FILE


def _corrupt_file(root: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{db_path(root)}{suffix}").unlink(missing_ok=True)
    db_path(root).write_bytes(b"this is not a database" * 100)


def _corrupt_rows(root: Path) -> None:
    with sqlite3.connect(db_path(root)) as db:
        db.execute("UPDATE blobs SET model = '{\"table\": \"elsewhere\"'")
        db.execute("UPDATE blobs SET names = '[]'")


def _foreign(root: Path) -> None:
    with sqlite3.connect(db_path(root)) as db:
        db.execute("UPDATE meta SET value = '0.0.0/0000/1' WHERE key = 'version'")
        db.execute("DELETE FROM tree_names")


DAMAGE = {"corrupt file": _corrupt_file, "corrupt rows": _corrupt_rows, "foreign": _foreign}


@pytest.fixture()
def cache_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEMACTL_PARSE_CACHE", "on")


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for _, c in DEF_CASES], ids=[i for i, _ in DEF_CASES])
def test_rule_case_through_the_cache(case: dict[str, Any], tmp_path: Path,
                                     cache_on: None) -> None:
    config = make_config(case.get("config"))
    before = tables(case.get("before"))
    after = tables(case["after"]) if "after" in case else dict(before)
    expected = check_definitions(before, after, config)
    assert {v.rule for v in expected.violations} == set(case["expect"])

    root = tmp_path
    git(root, "init", "-q")
    (root / "README").write_text("cases\n")
    write_defs(root, before)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "before")
    write_defs(root, after)

    def verdict() -> list[tuple[str, str | None, str | None, str]]:
        return found(validate_proposal(build_proposal(root, config), config))

    want = found(expected)
    assert verdict() == want, "cold"
    assert verdict() == want, "warm"
    for name, damage in DAMAGE.items():
        if db_path(root).exists():
            damage(root)
        assert verdict() == want, name
        assert verdict() == want, f"after {name}, rebuilt"


def test_record_round_trip_is_generic() -> None:
    tdef = TableDef(table="t", columns=(Column("id", "uuid", primary_key=True, nullable=False),
                                        Column("n", "numeric(10,2)", default=1.5,
                                               has_default=True)),
                    indexes=(Index(("n",), unique=True, name="ix_n"),), comment="c",
                    source="dynamic_schema/t.yaml", size=10, text="table: t\n")
    data = json.loads(json.dumps(to_record(tdef)))
    back = from_record(TableDef, data)
    assert back == tdef and back.text == tdef.text
    # Every dataclass field is in the record: a new field needs no cache change.
    assert set(data) == {f for f in TableDef.__dataclass_fields__}
    with pytest.raises(ValueError):
        from_record(TableDef, {**data, "extra": 1})
    assert len(model_schema()) == 16
    import schemactl
    from schemactl.model.cache import cache_version

    assert cache_version().startswith(f"{schemactl.__version__}/{model_schema()}/")


def _big_repo(root: Path, n: int) -> None:
    git(root, "init", "-q")
    folder = root / "dynamic_schema"
    folder.mkdir()
    for i in range(n):
        (folder / f"t{i:03d}.yaml").write_text(
            f"table: t{i:03d}\ncolumns:\n  - {{name: id, type: uuid, primary_key: true}}\n"
            f"  - {{name: ref, type: uuid, references: t{max(i - 1, 0):03d}.id}}\n"
            "indexes:\n  - {columns: [ref]}\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "many")


def test_stale_work_tree_file_is_read_again(tmp_path: Path, cache_on: None) -> None:
    """A file rewritten behind the cache (same size, mtime put back) is hashed again."""
    _big_repo(tmp_path, 3)
    config = make_config(None)
    path = tmp_path / "dynamic_schema" / "t001.yaml"
    old = path.stat()
    # Recorded long after it was written: the stat entry is trusted from now on.
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns - 10_000_000_000))
    assert build_proposal(tmp_path, config).changed == frozenset()
    text = path.read_text().replace("t000.id", "t002.id")
    st = path.stat()
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    proposal = build_proposal(tmp_path, config)
    assert proposal.changed == frozenset({"t001"})
    assert proposal.proposed["t001"].column("ref").references == "t002.id"  # type: ignore


def test_committed_state_is_indexed_not_walked(tmp_path: Path, cache_on: None) -> None:
    """A warm cache answers the whole-state questions by key: facts match the files."""
    _big_repo(tmp_path, 5)
    config = make_config(None)
    one = tmp_path / "one.yaml"
    one.write_text("table: x\ncolumns:\n  - {name: id, type: uuid, primary_key: true}\n"
                   "  - {name: ref, type: uuid, references: t004.id}\n"
                   "indexes:\n  - {columns: [id], name: ix_t003_ref}\n")
    first = found(validate_proposal(build_proposal(tmp_path, config, files=[str(one)]),
                                    config))
    proposal = build_proposal(tmp_path, config, files=[str(one)])
    current = proposal.current
    assert type(current).__name__ == "CachedTables"
    assert current.owners_of("ix_t003_ref") == {"t003"}  # type: ignore[attr-defined]
    assert current.owners_of("pk_t001") == {"t001"}  # type: ignore[attr-defined]
    assert found(validate_proposal(proposal, config)) == first
    assert [v[0] for v in first] == ["SC405"] and "ix_t003_ref" in first[0][3]
    # Nothing but the referenced table was decoded.
    assert set(current.cache.models) <= {current.identity("t004")}  # type: ignore


def test_cache_built_from_git_matches_a_fresh_parse(tmp_path: Path, cache_on: None) -> None:
    """A new commit's tree is derived from the last one through git diff-tree."""
    from schemactl.model.loading import tables_at_rev

    _big_repo(tmp_path, 4)
    first = tables_at_rev(tmp_path)
    assert sorted(first) == ["t000", "t001", "t002", "t003"]
    (tmp_path / "dynamic_schema" / "t001.yaml").unlink()
    (tmp_path / "dynamic_schema" / "t009.yaml").write_text(
        "table: t009\ncolumns:\n  - {name: id, type: uuid, primary_key: true}\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "next")
    second = tables_at_rev(tmp_path)
    assert sorted(second) == ["t000", "t002", "t003", "t009"]
    assert second.owners_of("ix_t002_ref") == {"t002"}
    assert second.owners_of("ix_t001_ref") == frozenset()
    assert second["t009"] == parse_definition(
        (tmp_path / "dynamic_schema" / "t009.yaml").read_bytes(), "dynamic_schema/t009.yaml")
    assert len(second) == 4 and second.index.depth == 1  # type: ignore[attr-defined]
    assert DefinitionCache(tmp_path).fetch("SELECT count(*) FROM tree_tables WHERE tree = ?",
                                           [second.tree])[0][0] == 2  # type: ignore


def test_duplicate_table_in_a_new_commit_is_refused(tmp_path: Path, cache_on: None) -> None:
    from schemactl.model.definitions import DefinitionError
    from schemactl.model.loading import tables_at_rev

    _big_repo(tmp_path, 3)
    tables_at_rev(tmp_path)
    (tmp_path / "dynamic_schema" / "zz.yaml").write_text(
        "table: t001\ncolumns:\n  - {name: id, type: uuid, primary_key: true}\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "dup")
    with pytest.raises(DefinitionError, match="t001"):
        tables_at_rev(tmp_path)


def test_validate_imports_nothing_heavy(tmp_path: Path) -> None:
    """The cold path of `validate FILE` (cache in use) imports none of the heavy stack, and
    the program's lean path not even click."""
    _big_repo(tmp_path, 70)
    (tmp_path / "migrations").mkdir()
    (tmp_path / "schemactl.toml").write_text("")
    one = tmp_path / "one.yaml"
    one.write_text("table: x\ncolumns:\n  - {name: id, type: uuid, primary_key: true}\n")
    # The click command line, then the program's lean path (schemactl.entry), without click.
    for module, heavy in (("schemactl.cli", "'sqlalchemy', 'alembic', 'git', 'jsonschema', "
                                            "'rich', 'psycopg'"),
                          ("schemactl", "'click', 'sqlalchemy', 'alembic', 'git', "
                                        "'jsonschema', 'rich', 'psycopg'")):
        # The lean path ends with os._exit once its output is flushed: list the modules then.
        code = ("import os, runpy, sys\n"
                "sys.argv = ['schemactl', 'validate', 'one.yaml', '--json']\n"
                f"heavy = ({heavy})\n"
                "def loaded():\n"
                "    print(sorted(m for m in sys.modules if m.split('.')[0] in heavy), "
                "flush=True)\n"
                "end = os._exit\n"
                "os._exit = lambda code: (loaded(), end(code))\n"
                f"try:\n    runpy.run_module({module!r}, run_name='__main__')\n"
                "except SystemExit:\n    loaded()\n")
        for _ in range(2):  # cold cache, then warm
            proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path,
                                  capture_output=True, text=True,
                                  env={k: v for k, v in os.environ.items()
                                       if k != "SCHEMACTL_PARSE_CACHE"})
            assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr
            assert '"command": "validate"' in proc.stdout
    assert db_path(tmp_path).exists()


def test_delta_chain_answers_like_a_fresh_parse(tmp_path: Path, cache_on: None) -> None:
    """Commits recorded as deltas (edit in place, move, remove, re-add) give the same
    tables, definitions and relation owners as parsing the tree from git."""
    from schemactl.model.loading import _listing, _parse_blobs, tables_at_rev

    _big_repo(tmp_path, 6)
    folder = tmp_path / "dynamic_schema"
    tables_at_rev(tmp_path)
    steps = [
        lambda: (folder / "t002.yaml").write_text((folder / "t002.yaml").read_text().replace(
            "columns: [ref]", "columns: [id, ref], name: ix_moved")),
        lambda: (folder / "t003.yaml").rename(folder / "z_t003.yaml"),
        lambda: (folder / "t004.yaml").unlink(),
        lambda: (folder / "t004.yaml").write_text(
            "table: t004\ncolumns:\n  - {name: id, type: uuid, primary_key: true}\n"),
    ]
    for step in steps:
        step()
        git(tmp_path, "add", "-A")
        git(tmp_path, "commit", "-q", "-m", "step")
        cached = tables_at_rev(tmp_path)
        tree = cached.tree  # type: ignore[attr-defined]
        fresh = _parse_blobs(tmp_path, _listing(tmp_path, tree))
        assert sorted(cached) == sorted(fresh) and len(cached) == len(fresh)
        assert cached.paths() == fresh.paths()
        names = {n for t in fresh for n in (t, "ix_moved", f"ix_{t}_ref", f"pk_{t}")}
        for name in names:
            assert cached.owners_of(name) == fresh.owners_of(name), name
        for t in fresh:
            assert cached[t] == fresh[t] and cached[t].source == fresh[t].source
    assert cached.index.depth == len(steps)  # type: ignore[attr-defined]


def test_check_diagram_reads_only_the_neighbourhood(tmp_path: Path, cache_on: None) -> None:
    """The changed tables' diagram is the one the whole schema gives, from the index."""
    from schemactl.ci.check import changed_diagram
    from schemactl.codegen.diagram import mermaid
    from schemactl.codegen.metadata import build_metadata
    from schemactl.model.loading import tables_at_rev

    _big_repo(tmp_path, 6)
    heads = tables_at_rev(tmp_path)
    assert heads.referrers("t002") == {"t003"} and heads.referrers("t000") == {"t000", "t001"}
    whole = build_metadata(dict(heads), include_deprecated=True)
    for changed in (["t002"], ["t000"], ["t005", "t001"]):
        assert changed_diagram(tables_at_rev(tmp_path), changed) == mermaid(whole, changed)


@pytest.mark.parametrize("damage", [None, *DAMAGE])
def test_every_definition_from_the_cache_equals_parsing_them(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             damage: str | None) -> None:
    """What apply's drift, policy and `load_metadata` read (every definition, at a commit
    and in the work tree) is what parsing every file gives, with the cache warm, damaged
    or behind an edit."""
    from schemactl.model import loading

    monkeypatch.setenv("SCHEMACTL_PARSE_CACHE", "on")
    root = tmp_path / "r"
    root.mkdir()
    git(root, "init", "-q")
    cols = (Column(name="id", type="bigint", primary_key=True, nullable=False),
            Column(name="n", type="text"))
    write_defs(root, {f"t{i}": TableDef(table=f"t{i}", columns=cols, source="") for i in range(5)})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "defs")
    folder = root / "dynamic_schema"
    assert loading.load_at_rev(root, "HEAD") == loading.load_dir(folder, root)
    assert loading.load_worktree(root) == loading.load_dir(folder, root)
    if damage:
        DAMAGE[damage](root)
    (folder / "t1.yaml").write_text(dump_definition(
        TableDef(table="t1", columns=(*cols, Column(name="m", type="integer")), source="")))
    (folder / "t2.yaml").unlink()
    parsed = loading.load_dir(folder, root)
    assert loading.load_worktree(root) == parsed and "m" in parsed["t1"].column_names
    assert loading.load_worktree(root) == parsed  # the second time from recorded stats
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "edit")
    assert loading.load_at_rev(root, "HEAD") == parsed
    assert sorted(loading.load_at_rev(root, "HEAD~1")) == ["t0", "t1", "t2", "t3", "t4"]
