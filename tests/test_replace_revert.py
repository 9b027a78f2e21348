"""Issue 12: the way out of a head migration no database applied (propose --replace/--revert).

A definition that validates and proposes but can never apply (here: a unique index over
rows that are not unique) used to leave a migration at HEAD that nothing could remove.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from schemactl.adapters.database import Target, connect
from schemactl.codegen import sumfile
from tests.conftest import git_log

BASE = """\
  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
"""
NOTES = f"table: notes\ncolumns:\n{BASE}  - {{name: body, type: text}}\n"
UNIQUE = NOTES + "indexes:\n  - {columns: [body], unique: true}\n"
PLAIN = NOTES + "indexes:\n  - {columns: [body]}\n"
WITH_TAG = NOTES + "  - {name: tag, type: text}\n"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def _write(repo: Path, name: str, text: str) -> Path:
    path = repo / f"{name}.yaml"
    path.write_text(text)
    return path


def _propose(cli: Any, repo: Path, text: str, *extra: str) -> Any:
    path = _write(repo.parent, "def", text)
    return cli("propose", str(path), "--json", *extra, cwd=repo)


def _api_propose(repo: Path, text: str) -> str:
    """Propose in-process (quicker than a CLI process where the CLI is not what is tested)."""
    res = _in_process(repo, text)
    assert res.ok and res.migration, res
    return str(res.migration["revision"])


def _in_process(repo: Path, text: str | None = None, **kw: Any) -> Any:
    """``api.propose`` (with ``replace``, ``revert``, ``database_url``): the same result
    object the CLI prints with --json, without a process of its own."""
    from schemactl import api

    return api.propose(repo, stdin=text, actor="user:test", **kw)


def _api_apply(repo: Path, db: Target) -> None:
    from schemactl import api

    res = api.apply(repo, database_url=db.url, actor="user:test")
    assert res.ok, res


def _snapshot(repo: Path) -> tuple[str, str, bytes, list[str]]:
    return (git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain"),
            (repo / sumfile.SUM_PATH).read_bytes(),
            sorted(p.name for p in (repo / "migrations/versions").glob("*.py")))


def _head_rev(repo: Path) -> str:
    from schemactl.adapters import migrator
    from schemactl.model.repo import SchemaRepo

    rev = migrator.head(SchemaRepo.open(repo))
    assert rev
    return rev


def _setup_notes(cli: Any, repo: Path, db: Target) -> str:
    """notes applied, with two rows whose body is the same."""
    _api_propose(repo, NOTES)
    _api_apply(repo, db)
    with connect(db) as conn:
        conn.execute("insert into notes (body) values ('same'), ('same')")
    return _head_rev(repo)


def notes_rev_commit(repo: Path, rev: str) -> str:
    return git(repo, "log", "-1", "--format=%H", f"--grep=Schemactl-Revision: {rev}",
               "--grep=Schemactl-Action: propose", "--all-match")


def _count(db: Target) -> int:
    with connect(db) as conn:
        row = conn.execute("select count(*) from notes").fetchone()
    return int(row[0]) if row else -1


@pytest.mark.slow
def test_never_applicable_head_migration_replaced_then_applied(repo: Path, db: Target,
                                                              cli: Any) -> None:
    from schemactl import api
    from schemactl.errors import SchemactlError

    notes_rev = _setup_notes(cli, repo, db)
    bad_rev = _api_propose(repo, UNIQUE)
    with pytest.raises(SchemactlError):  # the rows are not unique: it can never apply
        api.apply(repo, database_url=db.url, actor="user:test")
    # Editing the definition back is refused (SC105), as before.
    back = _in_process(repo, NOTES)
    assert not back.ok and any(v["rule"] == "SC105" for v in back.violations)
    # The way out: the head migration is replaced; the database is asked first.
    out = _propose(cli, repo, PLAIN, "--replace", "--database-url", db.url)
    assert out.code == 0, out
    js = out.json
    assert js["ok"] and js["replaced"] == bad_rev and js["commit"]
    new_rev = js["migration"]["revision"]
    assert new_rev != bad_rev
    assert js["databases_checked"] == [{"database": db.display, "revision": notes_rev,
                                         "reachable": True}]
    names = sorted(p.name for p in (repo / "migrations/versions").glob("*.py"))
    assert not any(bad_rev in n for n in names) and any(new_rev in n for n in names)
    assert sumfile.verify(repo) == []
    assert git(repo, "status", "--porcelain") == ""
    msg = git_log(repo)[0]
    assert "Schemactl-Action: replace" in msg and f"Schemactl-Replaces: {bad_rev}" in msg
    # Exactly what propose would have written on the parent had the bad one never been.
    assert (repo / "dynamic_schema/notes.yaml").read_text().count("unique") == 0
    # The same replacement again is a no-op (retries are safe).
    again = _in_process(repo, PLAIN, replace=True, database_url=db.url)
    assert again.ok and again.commit is None, again
    # And it applies cleanly, with every row.
    done = api.apply(repo, database_url=db.url, actor="user:test").to_json()
    assert done["ok"] and done["applied"] == [new_rev], done
    assert _count(db) == 2
    st = api.status(repo, database_url=db.url).to_json()
    assert st["pending"] == [] and st["drift"] == []
    # A rollback of the replacement puts back what was there before both migrations.
    notes_def = git(repo, "show", f"{notes_rev_commit(repo, notes_rev)}:dynamic_schema/notes.yaml")
    rb = api.rollback(repo, database_url=db.url, actor="user:test").to_json()
    assert rb["ok"] and rb["rolled_back"] == new_rev, rb
    assert (repo / "dynamic_schema/notes.yaml").read_text().strip() == notes_def
    assert sumfile.verify(repo) == [] and _count(db) == 2


def test_revert_restores_the_definition_and_check_accepts_it(repo: Path, db: Target,
                                                            cli: Any) -> None:
    _setup_notes(cli, repo, db)
    git(repo, "branch", "-f", "base")
    rev = _api_propose(repo, WITH_TAG)
    git(repo, "branch", "-f", "main-with-tag")
    before_def = git(repo, "show", "base:dynamic_schema/notes.yaml")
    out = cli("propose", "--revert", rev, "--json", "--database-url", db.url, cwd=repo)
    assert out.code == 0, out
    assert out.json["reverted"] == rev and out.json["migration"] is None
    assert (repo / "dynamic_schema/notes.yaml").read_text().strip() == before_def
    assert not list((repo / "migrations/versions").glob(f"*{rev}*"))
    assert sumfile.verify(repo) == []
    assert git(repo, "diff", "base", "HEAD", "--stat", "--", "dynamic_schema",
               "migrations") == ""
    from schemactl import api

    # Idempotent: reverting the same revision again changes nothing.
    again = _in_process(repo, revert=rev, database_url=db.url)
    assert again.ok and again.commit is None, again
    # check on the pull request that reverts it (base: the branch holding the migration).
    chk = api.check(repo, base="main-with-tag")
    assert chk.ok, chk
    # A replace is accepted too; then a hand-edited copy of it is not.
    git(repo, "checkout", "-q", "-b", "replacing", "main-with-tag")
    rep = _in_process(repo, NOTES + "  - {name: label, type: text}\n", replace=True)
    assert rep.ok and rep.replaced == rev, rep
    assert api.check(repo, base="main-with-tag").ok
    path = repo / rep.migration["path"]
    path.write_text(path.read_text() + "\n# edited by hand\n")
    sumfile.write_sum(repo)
    git(repo, "commit", "-q", "--amend", "-a", "--no-edit")
    edited = cli("check", "--base", "main-with-tag", "--json", cwd=repo)
    assert edited.code == 1 and any(v["rule"] == "SC601" for v in edited.json["violations"])


def test_refused_when_recorded_applied(repo: Path, db: Target, cli: Any) -> None:
    rev = _api_propose(repo, NOTES)
    _api_apply(repo, db)
    snap = _snapshot(repo)
    # No database configured at all: the committed audit line alone refuses.
    out = cli("propose", "--revert", rev, "--json", cwd=repo)
    assert out.code == 4 and out.json["error"]["code"] == "applied", out
    assert "audit.jsonl" in out.json["error"]["message"]
    from schemactl import api
    from schemactl.errors import ConflictError

    with pytest.raises(ConflictError) as refused:
        _in_process(repo, NOTES + "  - {name: x, type: text}\n", replace=True)
    assert refused.value.exit_code == 4 and refused.value.code == "applied", refused.value
    assert _snapshot(repo) == snap
    # A revert commit made by hand with the trailers gets no exemption from check.
    git(repo, "checkout", "-q", "-b", "by-hand")
    parent = git(repo, "rev-parse", "HEAD~1")
    mig = next((repo / "migrations/versions").glob(f"*{rev}*"))
    git(repo, "rm", "-q", str(mig), "dynamic_schema/notes.yaml")
    sumfile.write_sum(repo)
    git(repo, "add", sumfile.SUM_PATH)
    git(repo, "commit", "-q", "-m", f"revert\n\nSchemactl-Action: revert\n"
        f"Schemactl-Revision: {parent[:0]}0001_core\nSchemactl-Reverts: {rev}")
    chk = api.check(repo, base="master" if "master" in git(repo, "branch") else "main")
    assert not chk.ok, chk


def test_refused_when_a_configured_database_is_at_it(repo: Path, db: Target, cli: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from schemactl import api
    from schemactl.errors import ConflictError

    def refusal(**env: str) -> str:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        with pytest.raises(ConflictError) as refused:
            _in_process(repo, revert=rev)
        for key in env:
            monkeypatch.delenv(key)
        assert refused.value.exit_code == 4, refused.value
        return refused.value.message

    rev = _api_propose(repo, NOTES)
    _api_apply(repo, db)
    # Forget the apply in git (as if it ran from another clone): only the database knows.
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    snap = _snapshot(repo)
    out = cli("propose", "--revert", rev, "--json", "--database-url", db.url, cwd=repo)
    assert out.code == 4 and f"is at {rev}" in out.json["error"]["message"], out
    # A target of schemactl.toml counts as well (no --database-url).
    toml = repo / "schemactl.toml"
    text = toml.read_text()
    toml.write_text(text + '\n[targets.prod]\nurl_env = "PROD_URL"\n')
    git(repo, "commit", "-q", "-am", "targets")
    snap = _snapshot(repo)
    assert "target prod" in refusal(PROD_URL=db.url)
    # A target that cannot be asked is a doubt: refused too.
    assert "cannot be asked" in refusal()
    assert "does not answer" in refusal(PROD_URL="postgresql://nobody@127.0.0.1:1/none")
    assert _snapshot(repo) == snap
    # Once the database is rolled back, the revert goes through.
    assert api.rollback(repo, database_url=db.url, actor="user:test").ok


def test_bad_input_changes_nothing(repo: Path, cli: Any) -> None:
    rev = _api_propose(repo, NOTES)
    snap = _snapshot(repo)
    other = f"table: ideas\ncolumns:\n{BASE}"
    cases = [
        ("propose", "--revert", "0099_nosuch", "--json"),
        ("propose", "--revert", "bad;rev", "--json"),
        ("propose", str(_write(repo.parent, "other", other)), "--replace", "--json"),
        ("propose", str(_write(repo.parent, "n", NOTES)), "--revert", rev, "--json"),
        ("propose", "--json"),
    ]
    for args in cases:
        out = cli(*args, cwd=repo)
        assert out.code == 2, (args, out)
        js = json.loads(out.stdout)
        assert js["ok"] is False and js["command"] == "propose" and js["error"], js
        assert "Traceback" not in out.stderr
        assert _snapshot(repo) == snap
    # The core schema's migration is never reverted (exit 1), nor is a non-head one (4).
    assert cli("propose", "--revert", rev, "--json", cwd=repo).code == 0
    core = cli("propose", "--revert", _head_rev(repo), "--json", cwd=repo)
    assert core.code == 1 and core.json["error"]["code"] == "core_protected", core


def test_agent_tools_replace_and_revert(repo: Path, db: Target) -> None:
    from schemactl.agents import agent_tools
    from schemactl.model.parsing import parse_definition

    ctx = agent_tools.ToolContext(repo=str(repo), database_url=db.url, actor="agent:t")
    notes = parse_definition(NOTES).to_dict()
    first = agent_tools.call("schema_propose", {"definition": notes}, ctx)
    assert first["ok"], first
    tagged = parse_definition(WITH_TAG).to_dict()
    prop = agent_tools.call("schema_propose", {"definition": tagged}, ctx)
    rep = agent_tools.call("schema_propose", {"definition": parse_definition(
        NOTES + "  - {name: label, type: text}\n").to_dict(), "replace": True}, ctx)
    assert rep["ok"] and rep["replaced"] == prop["migration"]["revision"], rep
    rev = rep["migration"]["revision"]
    out = agent_tools.call("schema_revert", {"revision": rev}, ctx)
    assert out["ok"] and out["reverted"] == rev and out["commit"], out
    assert sumfile.verify(repo) == []
    # The notes table itself was applied nowhere either: it can go too; once applied, not.
    applied = agent_tools.call("schema_apply", {}, ctx)
    assert applied["ok"], applied
    refused = agent_tools.call("schema_revert", {"revision": first["migration"]["revision"]},
                               ctx)
    assert refused["ok"] is False and refused["error"]["code"] == "applied", refused
