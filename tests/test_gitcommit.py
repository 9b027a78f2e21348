"""Commits built with git plumbing (schemactl.adapters.gitcommit) do what `git commit --only`
did: only the given paths, the index updated for them, trailers, identity, and never a lost
commit when another writer moves the branch meanwhile."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from schemactl.adapters import gitcommit, gitops
from schemactl.errors import EnvironmentError_


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout


def test_commit_takes_only_its_paths_and_leaves_the_index_clean(repo: Path) -> None:
    before = git(repo, "rev-parse", "HEAD").strip()
    (repo / "dynamic_schema" / "a.yaml").write_text("table: a\n")
    (repo / "deep" / "er").mkdir(parents=True)
    (repo / "deep" / "er" / "b.txt").write_text("b\n")
    (repo / "schemactl.toml").write_text((repo / "schemactl.toml").read_text() + "\n# edited\n")
    (repo / "alembic.ini").unlink()
    # Someone else's work: staged and unstaged, neither committed.
    (repo / "other.txt").write_text("staged\n")
    git(repo, "add", "other.txt")
    (repo / "unstaged.txt").write_text("x\n")
    assert gitcommit.plumbing_head(repo, ["dynamic_schema/a.yaml"]) is not None
    sha = gitops.commit(repo, ["dynamic_schema/a.yaml", "deep/er/b.txt", "schemactl.toml",
                               "alembic.ini"], "subject line  ",
                        {"Schemactl-Action": "propose", "Schemactl-Actor": "agent:x"},
                        body="- one\n\n\n- two  ")
    assert git(repo, "rev-parse", "HEAD").strip() == sha
    assert git(repo, "rev-parse", "HEAD^").strip() == before
    assert git(repo, "log", "-1", "--format=%B", sha) == \
        "subject line\n\n- one\n\n- two\n\nSchemactl-Action: propose\nSchemactl-Actor: agent:x\n\n"
    changed = git(repo, "diff-tree", "-r", "--name-status", "--no-commit-id", sha).split("\n")
    assert sorted(filter(None, changed)) == ["A\tdeep/er/b.txt", "A\tdynamic_schema/a.yaml",
                                             "D\talembic.ini", "M\tschemactl.toml"]
    assert git(repo, "status", "--porcelain").splitlines() == ["A  other.txt",
                                                               "?? unstaged.txt"]
    assert git(repo, "fsck", "--no-dangling").strip() == ""
    assert "commit: subject line" in git(repo, "reflog", "-1")
    assert git(repo, "log", "-1", "--format=%an", sha).strip()  # an identity, never empty


def test_nothing_to_commit_is_refused(repo: Path) -> None:
    with pytest.raises(EnvironmentError_, match="nothing to commit"):
        gitops.commit(repo, ["schemactl.toml"], "no change")


def test_a_branch_moved_meanwhile_is_built_upon_or_refused(repo: Path) -> None:
    """Another writer commits between reading HEAD and moving the branch: with an expected
    parent the commit is refused (nothing lost, nothing committed); without, it goes on
    top of the other commit."""
    head = gitcommit.plumbing_head(repo, ["x.txt"])
    assert head is not None
    (repo / "theirs.txt").write_text("theirs\n")
    git(repo, "add", "theirs.txt")
    git(repo, "-c", "user.name=o", "-c", "user.email=o@o", "commit", "-q", "-m", "theirs")
    theirs = git(repo, "rev-parse", "HEAD").strip()
    (repo / "x.txt").write_text("mine\n")
    with pytest.raises(gitcommit.RefMoved):
        gitcommit.commit(repo, head, ["x.txt"], "mine\n", parent=head.sha)
    assert git(repo, "rev-parse", "HEAD").strip() == theirs
    sha = gitcommit.commit(repo, head, ["x.txt"], "mine\n")
    assert git(repo, "rev-parse", "HEAD^").strip() == theirs
    assert git(repo, "show", f"{sha}:theirs.txt") == "theirs\n"
    assert git(repo, "show", f"{sha}:x.txt") == "mine\n"


def test_a_post_commit_hook_gets_git_commit(repo: Path) -> None:
    """What `git commit --no-verify` still runs (post-commit here) keeps running."""
    hook = repo / ".git" / "hooks" / "post-commit"
    hook.write_text("#!/bin/sh\necho ran > \"$(git rev-parse --git-dir)/hook-ran\"\n")
    hook.chmod(0o755)
    assert gitcommit.plumbing_head(repo, ["y.txt"]) is None
    (repo / "y.txt").write_text("y\n")
    gitops.commit(repo, ["y.txt"], "with a hook")
    assert (repo / ".git" / "hook-ran").exists()
    assert git(repo, "status", "--porcelain") == ""


def test_signing_and_folders_get_git_commit(repo: Path) -> None:
    git(repo, "config", "commit.gpgsign", "true")
    assert gitcommit.plumbing_head(repo, ["y.txt"]) is None
    git(repo, "config", "commit.gpgsign", "false")
    assert gitcommit.plumbing_head(repo, ["y.txt"]) is not None
    assert gitcommit.plumbing_head(repo, ["migrations"]) is None


def test_identity_falls_back_when_none_is_configured(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home), GIT_CONFIG_NOSYSTEM="1")
    subprocess.run(["git", "-C", str(repo), "config", "--unset-all", "user.name"],
                   capture_output=True)
    subprocess.run(["git", "-C", str(repo), "config", "--unset-all", "user.email"],
                   capture_output=True)
    (repo / "z.txt").write_text("z\n")
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        sha = gitops.commit(repo, ["z.txt"], "no identity")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert git(repo, "log", "-1", "--format=%an <%ae>", sha).strip() == \
        "schemactl <schemactl@localhost>"
