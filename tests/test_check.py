"""Issue 7: `schemactl check --base REF`, the CI gate of schema pull requests.

Each test works in a repository made by `init`: a `base` branch holding two proposed
tables, and a pull-request branch `pr` made with git commands (propose, or edits by hand).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from schemactl import api
from schemactl.adapters.database import Target
from tests.conftest import REPO_ROOT

BASE = """\
  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false, default: now()}
  - {name: updated_at, type: timestamptz, nullable: false, default: now()}
  - {name: is_deleted, type: boolean, nullable: false, default: false}
  - {name: created_by, type: bigint}
"""
PROJECTS = f"table: projects\ncolumns:\n{BASE}  - {{name: title, type: varchar(200)}}\n"
NOTES = f"table: notes\ncolumns:\n{BASE}  - {{name: body, type: text}}\n"
ACTOR = "user:test"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def propose(repo: Path, text: str) -> dict[str, Any]:
    result = api.propose(repo, stdin=text, actor=ACTOR)
    assert result.ok, result
    return result.to_json()


def codes(result: Any) -> set[str]:
    return {v["rule"] for v in result.to_json()["violations"]}


@pytest.fixture
def pr(repo: Path) -> Path:
    """Base branch `base` with projects and notes; HEAD on a new branch `pr`."""
    propose(repo, PROJECTS)
    propose(repo, NOTES)
    git(repo, "branch", "base")
    git(repo, "checkout", "-q", "-b", "pr")
    return repo


def versions(repo: Path) -> list[Path]:
    return sorted((repo / "migrations" / "versions").glob("*.py"))


def test_safe_pr_made_with_propose_passes(pr: Path, cli: Any) -> None:
    propose(pr, PROJECTS.replace("varchar(200)}", "varchar(200)}\n  - {name: budget, type: "
                                                  "integer}\n"))
    propose(pr, f"table: ideas\ncolumns:\n{BASE}  - {{name: text, type: text}}\n"
                "indexes:\n  - {columns: [text]}\n")
    res = cli("check", "--base", "base", "--json", cwd=pr)
    assert res.code == 0, res
    data = res.json
    assert data["ok"] and data["violations"] == []
    assert data["changed_tables"] == ["ideas", "projects"]
    assert len(data["migrations_added"]) == 2
    assert "ALTER TABLE projects ADD COLUMN" in data["plan_sql"]
    assert data["merge_base"] == git(pr, "rev-parse", "base")
    assert data["sum"]["ok"] is True
    assert {"SC601", "SC602", "SC603", "SC604"} <= set(data["rules_run"])


def test_deleted_table_file_is_sc101(pr: Path) -> None:
    git(pr, "rm", "-q", "dynamic_schema/notes.yaml")
    git(pr, "commit", "-q", "-m", "drop notes")
    result = api.check(pr, base="base")
    assert not result.ok and "SC101" in codes(result)


def test_dropped_column_is_sc102_with_its_line(pr: Path) -> None:
    path = pr / "dynamic_schema" / "projects.yaml"
    path.write_text(path.read_text().replace("  - {name: title, type: varchar(200)}\n", ""))
    commit_all(pr, "drop title")
    result = api.check(pr, base="base")
    found = [v for v in result.to_json()["violations"] if v["rule"] == "SC102"]
    assert found and found[0]["column"] == "title"
    assert found[0]["source"] == "dynamic_schema/projects.yaml" and found[0]["line"] > 1


def test_edited_merged_migration_is_sc601(pr: Path) -> None:
    old = versions(pr)[1]
    old.write_text(old.read_text() + "\n# tweak\n")
    commit_all(pr, "edit a merged migration")
    result = api.check(pr, base="base")
    found = [v for v in result.to_json()["violations"] if v["rule"] == "SC601"]
    assert found and any(old.name in v["message"] for v in found)
    assert any(v["source"] == f"migrations/versions/{old.name}" for v in found)


def test_definition_changed_without_migration_is_sc602(pr: Path) -> None:
    path = pr / "dynamic_schema" / "notes.yaml"
    path.write_text(path.read_text() + "  - {name: pinned, type: boolean}\n")
    commit_all(pr, "pinned, by hand")
    result = api.check(pr, base="base")
    found = [v for v in result.to_json()["violations"] if v["rule"] == "SC602"]
    assert [(v["table"], v["column"]) for v in found] == [("notes", "pinned")]
    assert codes(result) == {"SC602"}


HAND_WRITTEN = '''"""hand-written"""
import sqlalchemy as sa
from alembic import op

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
{body}


def downgrade() -> None:
    pass
'''


def head_revision(repo: Path) -> str:
    from schemactl.adapters.migrator import head
    from schemactl.model.repo import SchemaRepo

    rev = head(SchemaRepo.open(repo))
    assert rev is not None
    return rev


def test_hand_written_operation_without_definition_change_is_sc604(pr: Path) -> None:
    body = '    op.add_column("notes", sa.Column("secret", sa.Text()))'
    (pr / "migrations" / "versions" / "0004_hand.py").write_text(
        HAND_WRITTEN.format(rev="0004_hand", down=head_revision(pr), body=body))
    commit_all(pr, "hand-written migration")
    result = api.check(pr, base="base")
    found = [v for v in result.to_json()["violations"] if v["rule"] == "SC604"]
    assert [(v["table"], v["column"]) for v in found] == [("notes", "secret")]
    assert found[0]["source"] == "migrations/versions/0004_hand.py"
    assert codes(result) == {"SC604"}


def test_hand_written_drop_column_is_caught_by_the_operation_rules(pr: Path) -> None:
    body = '    op.drop_column("notes", "body")'
    (pr / "migrations" / "versions" / "0004_hand.py").write_text(
        HAND_WRITTEN.format(rev="0004_hand", down=head_revision(pr), body=body))
    commit_all(pr, "drop body")
    result = api.check(pr, base="base")
    assert {"SC102", "SC604"} <= codes(result)


def test_two_heads_is_sc603(pr: Path) -> None:
    first = versions(pr)[1]  # projects' migration: its parent gets a second child
    from schemactl.adapters.migrator import parse_header

    rev, _ = parse_header(first.read_bytes())
    (pr / "migrations" / "versions" / "0003_other.py").write_text(
        HAND_WRITTEN.format(rev="0003_other", down=rev, body="    pass"))
    commit_all(pr, "a second line")
    result = api.check(pr, base="base")
    assert "SC603" in codes(result)


def test_rollback_recorded_by_schemactl_is_not_rewriting_history(pr: Path, db: Target) -> None:
    from schemactl.codegen import sumfile

    assert api.apply(pr, database_url=db.url, actor=ACTOR).ok
    rolled = api.rollback(pr, database_url=db.url, actor=ACTOR)
    assert rolled.ok, rolled
    assert sumfile.verify(pr) == []  # the sum file follows the removed migration
    data = api.check(pr, base="base").to_json()
    assert data["ok"] and data["violations"] == [], data["violations"]
    assert [r["commit"] for r in data["rollbacks"]] == [git(pr, "rev-parse", "HEAD")]
    assert data["sum"]["ok"] is True
    # A migration removed by hand, under a copied trailer, is still rewriting merged history.
    git(pr, "reset", "-q", "--hard", "HEAD~1")
    versions(pr)[-1].unlink()
    git(pr, "add", "-A")
    git(pr, "commit", "-q", "-m", "undo notes\n\nSchemactl-Action: rollback")
    assert "SC601" in codes(api.check(pr, base="base"))


def test_two_branches_merged_is_sc603_on_the_branch_migration(pr: Path) -> None:
    git(pr, "checkout", "-q", "base")
    propose(pr, f"table: ideas\ncolumns:\n{BASE}")
    git(pr, "checkout", "-q", "pr")
    mine = propose(pr, f"table: tags\ncolumns:\n{BASE}")["migration"]["path"]
    subprocess.run(["git", "-C", str(pr), "merge", "-q", "--no-edit", "base"],
                   capture_output=True)  # the sum file conflicts, as it should
    git(pr, "checkout", "--theirs", "migrations/schemactl.sum")
    commit_all(pr, "merge base")
    found = [v for v in api.check(pr, base="base").to_json()["violations"]
             if v["rule"] == "SC603"]
    assert len(found) == 1 and found[0]["source"] == mine, found
    assert "dynamic_schema/tags.yaml" in found[0]["hint"] and "propose" in found[0]["hint"]


def test_bad_input_exits_2(pr: Path, tmp_path: Path, cli: Any) -> None:
    res = cli("check", "--base", "no-such-branch", "--json", cwd=pr)
    assert res.code == 2 and res.json["error"]["code"] == "bad_input"
    res = cli("check", "--base", "main", cwd=tmp_path)
    assert res.code == 2 and "Traceback" not in res.stderr
    res = cli("check", cwd=pr)
    assert res.code == 2  # --base is required


def test_reporters(pr: Path, cli: Any) -> None:
    path = pr / "dynamic_schema" / "projects.yaml"
    path.write_text(path.read_text().replace("  - {name: title, type: varchar(200)}\n", "")
                    + "  - {name: rank, type: integer}\n")
    commit_all(pr, "unsafe")
    md = cli("check", "--base", "base", "--format", "markdown", cwd=pr)
    assert md.code == 1 and md.stdout.startswith("## schemactl check: ❌ failed")
    assert "| ❌ | SC102 no-drop-column |" in md.stdout and "keep the column" in md.stdout
    gh = cli("check", "--base", "base", "--format", "github", cwd=pr)
    assert gh.code == 1
    line = next(ln for ln in gh.stdout.splitlines() if "SC102" in ln)
    assert line.startswith("::error file=dynamic_schema/projects.yaml,line=")
    assert "title=SC102 no-drop-column::" in line
    ju = cli("check", "--base", "base", "--format", "junit", cwd=pr)
    import xml.etree.ElementTree as ET

    root = ET.fromstring(ju.stdout)
    failed = [c.get("name") for c in root.iter("testcase") if c.find("failure") is not None]
    assert "SC102 no-drop-column" in failed and "SC602 migration-missing" in failed
    assert int(root.get("tests", 0)) >= 25


def test_sarif_validates_against_the_sarif_2_1_0_schema(pr: Path, cli: Any) -> None:
    import jsonschema

    path = pr / "dynamic_schema" / "projects.yaml"
    path.write_text(path.read_text().replace("  - {name: title, type: varchar(200)}\n", ""))
    commit_all(pr, "unsafe")
    old = versions(pr)[1]
    old.write_text(old.read_text() + "\n# tweak\n")
    commit_all(pr, "edit")
    res = cli("check", "--base", "base", "--format", "sarif", cwd=pr)
    assert res.code == 1
    doc = json.loads(res.stdout)
    schema = json.loads((Path(__file__).parent / "data" / "sarif-2.1.0.schema.json").read_text())
    jsonschema.Draft4Validator(schema).validate(doc)
    run = doc["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert rules["SC102"]["name"] == "no-drop-column" and rules["SC102"]["help"]["text"]
    sc102 = next(r for r in run["results"] if r["ruleId"] == "SC102")
    loc = sc102["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "dynamic_schema/projects.yaml"
    assert loc["region"]["startLine"] > 1
    assert sc102["ruleIndex"] == list(rules).index("SC102")


def test_round_trip_on_a_database(pr: Path, db: Target, cli: Any) -> None:
    propose(pr, PROJECTS.replace("varchar(200)}", "varchar(200)}\n  - {name: budget, type: "
                                                  "integer, default: 0}\n"))
    res = cli("check", "--base", "base", "--json", "--database-url", db.url, cwd=pr)
    assert res.code == 0, res
    rt = res.json["round_trip"]
    assert rt["ok"] and [s["step"] for s in rt["steps"]] == [
        "upgrade to base", "upgrade to head", "downgrade to base", "upgrade to head again"]
    assert db.url not in res.stdout  # no password in output


def test_round_trip_on_an_ephemeral_embedded_database(pr: Path, cli: Any) -> None:
    """--ephemeral: a fresh embedded server in a temporary folder, gone afterwards."""
    import tempfile

    propose(pr, PROJECTS.replace("varchar(200)}", "varchar(200)}\n  - {name: budget, type: "
                                                  "integer, default: 0}\n"))
    # A temporary folder of its own (short: the server's socket lives there), so that other
    # processes' folders meanwhile are not taken for leftovers.
    tmp = Path(tempfile.mkdtemp(prefix="sc-eph-"))
    try:
        res = cli("check", "--base", "base", "--json", "--ephemeral", cwd=pr,
                  env={"TMPDIR": str(tmp)})
        assert res.code == 0, res
        rt = res.json["round_trip"]
        assert rt["ok"] and len(rt["steps"]) == 4
        assert not (pr / ".schemactl" / "pgdata").exists()  # the repository's server untouched
        assert list(tmp.iterdir()) == []  # the ephemeral server's folder is gone
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def test_round_trip_failure_reports_the_sql(pr: Path, db: Target) -> None:
    body = '    op.execute("ALTER TABLE notes ADD COLUMN broken no_such_type")'
    (pr / "migrations" / "versions" / "0004_hand.py").write_text(
        HAND_WRITTEN.format(rev="0004_hand", down=head_revision(pr), body=body))
    commit_all(pr, "broken")
    result = api.check(pr, base="base", database_url=db.url)
    rt = result.to_json()["round_trip"]
    assert not result.ok and not rt["ok"]
    assert rt["failed"]["step"] == "upgrade to head" and "no_such_type" in rt["failed"]["sql"]


def test_sum_file_written_by_init_and_propose(pr: Path) -> None:
    from schemactl.codegen import sumfile

    assert sumfile.verify(pr) == []
    recorded = sumfile.read_sum(pr)
    assert recorded is not None and recorded.consistent
    assert [n for n, _ in recorded.entries] == [p.name for p in versions(pr)]
    versions(pr)[0].write_text(versions(pr)[0].read_text() + "# x\n")
    assert any("changed after" in p for p in sumfile.verify(pr))


def test_check_passes_on_this_repository(cli: Any) -> None:
    """From the commit before the reference schema: its migrations are what is analysed."""
    added = git(REPO_ROOT, "log", "--diff-filter=A", "--format=%H", "--",
                "migrations/versions/0002_fdc722fb_add_table_projects.py").split()
    assert added, "the reference schema's first migration is in the history"
    res = cli("check", "--base", f"{added[-1]}^", "--json", cwd=REPO_ROOT)
    assert res.code == 0, res
    assert res.json["ok"] and res.json["violations"] == []
    on_disk = sorted(p.name for p in (REPO_ROOT / "migrations" / "versions").glob("*.py")
                     if not p.name.startswith("0001_"))
    assert res.json["migrations_added"] == on_disk
    assert set(res.json["changed_tables"]) == {p.stem for p in
                                               (REPO_ROOT / "dynamic_schema").glob("*.yaml")}


def test_check_passes_on_a_clone_of_this_repository_since_its_first_commit(
        tmp_path: Path, cli: Any) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True)
    first = git(clone, "rev-list", "--max-parents=0", "HEAD").splitlines()[0]
    res = cli("check", "--base", first, "--json", cwd=clone)
    assert res.code == 0, res
    assert res.json["violations"] == []


def test_self_referencing_foreign_key_on_an_existing_table_passes(pr: Path, cli: Any) -> None:
    """notes.parent_id references notes.id, proposed on the existing notes table."""
    propose(pr, NOTES + "  - {name: parent_id, type: uuid, references: notes.id}\n")
    res = cli("check", "--base", "base", "--json", cwd=pr)
    assert res.code == 0, res
    assert res.json["violations"] == []
    assert res.json["changed_tables"] == ["notes"]
