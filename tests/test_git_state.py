"""Issue 12, wedge 3: apply refuses before any DDL when git cannot take its commit."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from schemactl.adapters.database import Target
from tests.apply_helpers import add_column, add_notes, audit_rows, commit_all, git, revision_of
from tests.conftest import git_log


def _start_merge(repo: Path) -> None:
    """A merge stopped on a conflict in a file schemactl does not own."""
    (repo / "NOTES.txt").write_text("base\n")
    commit_all(repo, "notes file")
    git(repo, "checkout", "-q", "-b", "other")
    (repo / "NOTES.txt").write_text("theirs\n")
    commit_all(repo, "theirs")
    git(repo, "checkout", "-q", "main")
    (repo / "NOTES.txt").write_text("ours\n")
    commit_all(repo, "ours")
    proc = subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@e",
                           "merge", "other"], capture_output=True, text=True)
    assert proc.returncode != 0 and (repo / ".git" / "MERGE_HEAD").exists(), proc


@pytest.mark.parametrize("state", ["merge", "detached"])
def test_apply_refuses_before_ddl_when_git_cannot_commit(repo: Path, db: Target, cli,  # type: ignore[no-untyped-def]
                                                         state: str) -> None:
    add_notes(repo)
    assert cli("apply", "--json", "--database-url", db.url, cwd=repo).code == 0
    add_column(repo, "0003_tags", "0002_notes", "tags")
    if state == "merge":
        _start_merge(repo)
    else:
        git(repo, "checkout", "-q", "--detach")
    rows = len(audit_rows(db))
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert res.code == 4, res
    assert res.json["ok"] is False and res.json["error"]["code"] == "git_state", res.json
    assert "\n" not in res.json["error"]["message"] and "Traceback" not in res.stderr
    assert ("merge" if state == "merge" else "detached") in res.json["error"]["message"]
    assert revision_of(db) == "0002_notes"
    assert len(audit_rows(db)) == rows
    assert "audit.jsonl" not in git(repo, "diff", "--cached", "--name-only")
    if state == "merge":
        (repo / "NOTES.txt").write_text("merged\n")
        commit_all(repo, "merge other")
    else:
        git(repo, "checkout", "-q", "main")
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert res.code == 0 and res.json["applied"] == ["0003_tags"], res
    assert git(repo, "status", "--porcelain") == ""
    assert "Schemactl-Revision: 0003_tags" in git_log(repo)[0]


def _readonly(repo: Path, *args: str, ro: str) -> subprocess.CompletedProcess[str]:
    """Run schemactl with ``ro`` (a folder in repo) bind-mounted read-only, in its own mount
    namespace (nothing leaks to the machine)."""
    script = ('mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && '
              'exec "$@"')
    return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(repo / ro),
                           sys.executable, "-m", "schemactl.cli", *args], cwd=repo,
                          capture_output=True, text=True, timeout=120)


def _can_mount_readonly(tmp: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    (tmp / "probe").mkdir()
    proc = subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind "$1" "$1" && mount -o '
                           'remount,bind,ro "$1" "$1" && ! touch "$1/x"', "sh",
                           str(tmp / "probe")], capture_output=True)
    return proc.returncode == 0


def test_read_only_repository_is_refused_before_ddl(repo: Path, db: Target, cli,  # type: ignore[no-untyped-def]
                                                    tmp_path: Path) -> None:
    if not _can_mount_readonly(tmp_path):
        pytest.skip("needs a read-only bind mount (root and unshare)")
    add_notes(repo)
    assert cli("apply", "--json", "--database-url", db.url, cwd=repo).code == 0
    add_column(repo, "0003_tags", "0002_notes", "tags")
    res = _readonly(repo, "apply", "--json", "--database-url", db.url, ro=".git")
    assert res.returncode == 3, res
    import json

    out = json.loads(res.stdout)
    assert out["error"]["code"] == "git_state" and "read-only" in out["error"]["message"], out
    assert "Traceback" not in res.stderr
    assert revision_of(db) == "0002_notes"
    res2 = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert res2.code == 0 and res2.json["applied"] == ["0003_tags"], res2


def test_commit_failing_after_ddl_is_recorded_by_the_next_apply(repo: Path, db: Target,  # type: ignore[no-untyped-def]
                                                                cli) -> None:
    """A commit refused after the DDL ran (here: a hook-less failure, an index.lock that
    never goes) says the database was migrated; the next apply records it, once."""
    add_notes(repo)
    assert cli("apply", "--json", "--database-url", db.url, cwd=repo).code == 0
    add_column(repo, "0003_tags", "0002_notes", "tags")
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo,
              env={"SCHEMACTL_TEST_FAIL_COMMIT": "1"})
    assert res.code == 3, res
    msg = res.json["error"]["message"]
    assert "migrated" in msg and "next apply" in msg, msg
    assert revision_of(db) == "0003_tags"
    st = cli("status", "--json", "--database-url", db.url, cwd=repo)
    assert "not yet committed" in (st.json["interrupted"] or ""), st.json
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert res.code == 0 and res.json["recovered"], res
    assert git(repo, "status", "--porcelain") == ""
    commits = [m for m in git_log(repo) if "Schemactl-Revision: 0003_tags" in m]
    assert len(commits) == 1, commits
    ok = [r for r in audit_rows(db) if r["details"]["revision"] == "0003_tags"  # type: ignore[index]
          and r["status"] == "success"]
    assert len(ok) == 1


def test_recovery_counts_an_audit_line_committed_by_hand_as_done(repo: Path, db: Target,  # type: ignore[no-untyped-def]
                                                                 cli) -> None:
    """Someone committed the staged audit line with their merge: "nothing to commit" is done."""
    add_notes(repo)
    assert cli("apply", "--json", "--database-url", db.url, cwd=repo).code == 0
    add_column(repo, "0003_tags", "0002_notes", "tags")
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo,
              env={"SCHEMACTL_TEST_FAIL_COMMIT": "1"})
    assert res.code == 3, res
    commit_all(repo, "merge, with the audit line")
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert res.code == 0, res
    st = cli("status", "--json", "--database-url", db.url, cwd=repo)
    assert st.json["interrupted"] is None, st.json
    assert git(repo, "status", "--porcelain") == ""
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert res.code == 0 and res.json["applied"] == [], res
