"""Git, through GitPython: the only module that imports it.

Commits made by schemactl carry a readable subject and machine trailers
(`Schemactl-Action:`, `Schemactl-Revision:`, `Schemactl-Backup:`,
`Schemactl-Actor:`) so the history can be read back by people and tools.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from schemactl.adapters.gitobjects import read_blobs, run_git, tree_blobs
from schemactl.adapters.gitstate import clear_stale_index_lock
from schemactl.errors import BadInputError, EnvironmentError_

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    import git

# Used only when neither the repository nor the user configured an identity (fresh CI machines).
FALLBACK_NAME = "schemactl"
FALLBACK_EMAIL = "schemactl@localhost"


def _repo(root: Path) -> git.Repo:
    import git

    try:
        return git.Repo(root)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise BadInputError(f"{root} is not a git repository",
                            hint="run `schemactl init DIR` to make a schema repository") from exc


def _identity_env(repo: git.Repo) -> dict[str, str]:
    env: dict[str, str] = {}
    reader = repo.config_reader()
    if not (os.environ.get("GIT_AUTHOR_NAME") or reader.has_option("user", "name")):
        env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = FALLBACK_NAME
    if not (os.environ.get("GIT_AUTHOR_EMAIL") or reader.has_option("user", "email")):
        env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = FALLBACK_EMAIL
    return env


def init(root: Path) -> None:
    """`git init` with `main` as the first branch."""
    import git

    try:
        git.Repo.init(root, initial_branch="main")
    except git.GitCommandError as exc:
        raise EnvironmentError_(f"git init failed: {exc.stderr.strip()}") from exc


TRAILER_PREFIX = "Schemactl-"


def trailers_of(message: str) -> dict[str, str]:
    """The ``Schemactl-*`` trailers of a commit message (what :func:`format_message` wrote)."""
    out: dict[str, str] = {}
    for line in message.splitlines():
        line = line.strip()
        if line.startswith(TRAILER_PREFIX) and ": " in line:
            key, value = line.split(": ", 1)
            out[key] = value
    return out


def format_message(subject: str, trailers: Mapping[str, str | None], body: str = "",
                   extra_trailers: Iterable[tuple[str, str]] = ()) -> str:
    """Subject, body and one trailer block; ``extra_trailers`` may repeat a key (a fleet run's
    ``Schemactl-Target:`` lines)."""
    lines = [subject.strip()]
    if body.strip():
        lines += ["", body.strip()]
    trailer_lines = [f"{k}: {v}" for k, v in trailers.items() if v]
    trailer_lines += [f"{k}: {v}" for k, v in extra_trailers if v]
    if trailer_lines:
        lines += ["", *trailer_lines]
    return "\n".join(lines) + "\n"


def commit(root: Path, paths: Iterable[str | Path], subject: str,
           trailers: Mapping[str, str | None] | None = None, body: str = "",
           extra_trailers: Iterable[tuple[str, str]] = (), parent: str | None = None) -> str:
    """Stage ``paths`` (additions, edits and deletions) and commit only them.

    Other staged or unstaged work in the repository is left as it was. The commit is
    built with plumbing (`schemactl.adapters.gitcommit`: its cost follows the change)
    unless `git commit` would do more (hooks, signing, a first commit).

    Args:
        parent: the commit the branch must still be at (else RefMoved, nothing committed);
            without it the commit goes on top of whatever the branch holds.

    Returns:
        The new commit's sha.

    Raises:
        RefMoved: the branch is no longer at ``parent``.
        EnvironmentError_: git refused (hook failure, nothing to commit, ...).
    """
    import time

    from schemactl.adapters import gitcommit

    rel = [str(Path(p).resolve().relative_to(root.resolve())) if Path(p).is_absolute() else str(p)
           for p in paths]
    message = format_message(subject, trailers or {}, body, extra_trailers)
    # A git process killed mid-commit leaves index.lock behind: wait for it to go, or for
    # it to be stale (open by nobody), then remove it.
    deadline = time.monotonic() + 5.0
    head = gitcommit.plumbing_head(root, rel)
    if head is not None:
        while True:
            clear_stale_index_lock(root)
            try:
                return gitcommit.commit(root, head, rel, gitcommit.clean_message(message),
                                        parent)
            except gitcommit.IndexLocked:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)
    import git

    repo = _repo(root)
    if parent is not None and head_sha(root) != parent:
        raise gitcommit.RefMoved("the branch moved while the commit was prepared",
                                 hint="another writer committed; run again",
                                 code="parent_moved")
    env = _identity_env(repo)
    while True:
        clear_stale_index_lock(root)
        try:
            with repo.git.custom_environment(**env):
                repo.git.add("-A", "--", *rel)
                if repo.head.is_valid():
                    repo.git.commit("-q", "--no-verify", "-m", message, "--only", "--", *rel)
                else:
                    repo.git.commit("-q", "--no-verify", "-m", message)
            break
        except git.GitCommandError as exc:
            text = str(exc.stderr or exc)
            if "index.lock" in text and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            raise EnvironmentError_(f"git commit failed: {_first_line(text)}",
                                    hint="check the repository state with `git status`") \
                from exc
    return repo.head.commit.hexsha


def find_commit(root: Path, trailer: str, value: str, max_count: int = 200) -> str | None:
    """The newest commit (of the last ``max_count``) whose message has ``trailer: value``."""
    import subprocess

    proc = subprocess.run(["git", "-C", str(root), "log", f"-n{max_count}", "--format=%H",
                           "--fixed-strings", f"--grep={trailer}: {value}"],
                          capture_output=True, text=True)
    out = proc.stdout.split() if proc.returncode == 0 else []
    return out[0] if out else None


def _first_line(stderr: str) -> str:
    """The line of git's stderr that says what went wrong (fatal:/error:, else the first)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith(("fatal:", "error:")):
            return ln
    return lines[0] if lines else "unknown error"


def head_sha(root: Path) -> str | None:
    """HEAD's commit, None before the first commit (plain git: on every write path).

    Raises:
        BadInputError: ``root`` is not a git repository.
    """
    import subprocess

    proc = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "-q",
                           "HEAD^{commit}"], capture_output=True, text=True)
    if proc.returncode == 0:
        return proc.stdout.strip()
    if subprocess.run(["git", "-C", str(root), "rev-parse", "--git-dir"],
                      capture_output=True).returncode != 0:
        raise BadInputError(f"{root} is not a git repository",
                            hint="run `schemactl init DIR` to make a schema repository")
    return None


def current_branch(root: Path) -> str | None:
    repo = _repo(root)
    try:
        return repo.active_branch.name
    except TypeError:  # detached HEAD
        return None


def user_name(root: Path) -> str | None:
    try:
        reader = _repo(root).config_reader()
        if reader.has_option("user", "name"):
            return str(reader.get_value("user", "name"))
    except BadInputError:
        return None
    return None


@dataclass(frozen=True)
class TreeFile:
    """A file of a commit's tree: its path and bytes."""

    path: str
    data: bytes


def git_text(root: Path, *args: str) -> str:
    """The output of a plain git command as text (see `gitobjects.run_git`).

    Raises:
        BadInputError: git failed (an unknown revision, not a repository).
    """
    return run_git(root, *args).decode("utf-8", errors="replace")


def files_at(root: Path, rev: str, folder: str) -> list[TreeFile]:
    """Every file directly under ``folder`` in the tree of ``rev`` (empty if none).

    Raises:
        BadInputError: ``rev`` does not name a commit.
    """
    import subprocess

    probe = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "-q",
                            f"{rev}^{{commit}}"], capture_output=True)
    if probe.returncode != 0:
        if rev == "HEAD":
            return []  # a repository without commits has no definitions yet
        raise BadInputError(f"unknown git revision {rev!r}")
    sha = probe.stdout.decode().strip()
    if not _has_path(root, sha, folder):
        return []
    entries = tree_blobs(root, f"{sha}:{folder}")
    data = read_blobs(root, [obj for _, obj in entries])
    return [TreeFile(path=f"{folder}/{name}", data=data[obj]) for name, obj in entries]


def _has_path(root: Path, sha: str, folder: str) -> bool:
    import subprocess

    return subprocess.run(["git", "-C", str(root), "cat-file", "-e", f"{sha}:{folder}"],
                          capture_output=True).returncode == 0


def read_at(root: Path, rev: str, path: str) -> bytes | None:
    """One file's bytes at ``rev``, or None when it does not exist there."""
    import git

    repo = _repo(root)
    try:
        return bytes(repo.commit(rev).tree[path].data_stream.read())
    except (KeyError, git.BadName, ValueError):
        return None


def merge_base(root: Path, a: str, b: str = "HEAD") -> str:
    import git

    repo = _repo(root)
    try:
        bases = repo.merge_base(a, b)
    except git.GitCommandError as exc:
        raise BadInputError(f"unknown git revision {a!r}") from exc
    if not bases:
        raise BadInputError(f"{a} and {b} have no common ancestor")
    return bases[0].hexsha


def log(root: Path, max_count: int = 50, paths: Iterable[str] = ()) -> list[dict[str, str]]:
    """Recent commits (sha, subject, trailers) newest first."""
    repo = _repo(root)
    if not repo.head.is_valid():
        return []
    out = []
    for c in repo.iter_commits(max_count=max_count, paths=list(paths) or ""):
        message = str(c.message)
        trailers = trailers_of(message)
        out.append({"sha": c.hexsha, "subject": message.splitlines()[0] if message else "",
                    **trailers})
    return out


def commit_adding(root: Path, path: str) -> str | None:
    """The sha of the commit that first added ``path`` (None if never committed)."""
    repo = _repo(root)
    if not repo.head.is_valid():
        return None
    out = repo.git.log("--diff-filter=A", "--format=%H", "--", path).split()
    return out[-1] if out else None


def is_dirty(root: Path, paths: Iterable[str]) -> bool:
    """Whether ``paths`` have staged, unstaged or untracked changes (`git status`)."""
    return bool(git_text(root, "status", "--porcelain", "--", *paths).strip())


def unstage(root: Path, paths: Iterable[str]) -> None:
    """Reset the index entries of ``paths`` to HEAD (undo a `git add` of a failed commit)."""
    wanted = [p for p in paths]
    if not wanted:
        return
    import subprocess

    has_head = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "-q", "HEAD"],
                              capture_output=True).returncode == 0
    args = ["reset", "-q", "--", *wanted] if has_head else ["rm", "-q", "--cached",
                                                             "--ignore-unmatch", "--", *wanted]
    subprocess.run(["git", "-C", str(root), *args], capture_output=True)


def commit_contents(root: Path, paths: Iterable[str | Path], contents: Mapping[str, bytes],
                    subject: str, trailers: Mapping[str, str | None] | None = None,
                    extra_trailers: Iterable[tuple[str, str]] = ()) -> str:
    """Like :func:`commit`, but the files named in ``contents`` are committed with that
    content instead of the work tree's (which is left as it is, its extra lines then show
    as an uncommitted change). Built on a private index: other staged work is untouched.

    Returns:
        The new commit's sha.

    Raises:
        EnvironmentError_: git refused.
    """
    import subprocess
    import tempfile

    rel = [str(Path(p).resolve().relative_to(root.resolve())) if Path(p).is_absolute() else str(p)
           for p in paths]
    rel += [p for p in contents if p not in rel]
    env = {**os.environ, **_identity_env(_repo(root))}

    def run(*args: str, data: bytes | None = None, index: str | None = None) -> str:
        proc = subprocess.run(["git", "-C", str(root), *args], input=data, capture_output=True,
                              env={**env, "GIT_INDEX_FILE": index} if index else env)
        if proc.returncode != 0:
            raise EnvironmentError_(
                f"git commit failed: {_first_line(proc.stderr.decode(errors='replace'))}",
                hint="check the repository state with `git status`")
        return proc.stdout.decode().strip()

    parent = run("rev-parse", "--verify", "-q", "HEAD")
    with tempfile.TemporaryDirectory(prefix="schemactl-index-") as tmp:
        index = str(Path(tmp) / "index")
        run("read-tree", parent, index=index)
        for path in rel:
            if path in contents:
                blob = run("hash-object", "-w", "--stdin", data=contents[path])
                run("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", index=index)
            elif (root / path).exists():
                run("update-index", "--add", "--", path, index=index)
            else:
                run("update-index", "--force-remove", "--", path, index=index)
        tree = run("write-tree", index=index)
    if tree == run("rev-parse", f"{parent}^{{tree}}"):
        return parent  # nothing of the run's own to commit
    message = format_message(subject, trailers or {}, "", extra_trailers)
    sha = run("commit-tree", tree, "-p", parent, data=message.encode())
    run("update-ref", "-m", f"commit: {subject}", "HEAD", sha, parent)
    # The real index follows the new commit for these paths (nothing else staged changes).
    subprocess.run(["git", "-C", str(root), "reset", "-q", "--", *rel], capture_output=True,
                   env=env)
    return sha
