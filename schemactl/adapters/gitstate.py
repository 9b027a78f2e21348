"""Repository states a commit depends on: in-progress operations, write access, locks.

schemactl checks these before it changes anything (a run whose DDL is done must be able to
commit), serialises its own writers of one repository with an ``flock`` that cannot go
stale, and removes a ``.git/index.lock`` that a killed git process left behind.
Plain git and the standard library only (no GitPython): these run on every write path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from schemactl.errors import BadInputError, ConflictError, EnvironmentError_


def _git_dir(root: Path) -> Path | None:
    import subprocess

    proc = subprocess.run(["git", "-C", str(root), "rev-parse", "--absolute-git-dir"],
                          capture_output=True, text=True)
    return Path(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else None


def _writable(folder: Path) -> OSError | None:
    """None when a file can be created in ``folder``, else the error (EROFS, EACCES...)."""
    probe = folder / f".schemactl-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        os.unlink(probe)
    except FileExistsError:
        return None
    except OSError as exc:
        return exc
    return None


def ensure_committable(root: Path) -> None:
    """Refuse, before anything changes, a repository state in which a commit would fail.

    A merge, rebase, cherry-pick or revert in progress, a detached HEAD (exit 4: finish or
    abort it first), or a repository or work tree that cannot be written (exit 3).

    Raises:
        ConflictError: the repository is in the middle of something (code ``git_state``).
        EnvironmentError_: it is read-only (code ``git_state``).
    """
    import subprocess

    git_dir = _git_dir(root)
    if git_dir is None:
        raise BadInputError(f"{root} is not a git repository",
                            hint="run `schemactl init DIR` to make a schema repository")
    busy = [(git_dir / "MERGE_HEAD", "a merge", "git merge --continue` or `git merge --abort"),
            (git_dir / "rebase-merge", "a rebase", "git rebase --continue` or "
                                                   "`git rebase --abort"),
            (git_dir / "rebase-apply", "a rebase or am", "git rebase --continue` or "
                                                         "`git rebase --abort"),
            (git_dir / "CHERRY_PICK_HEAD", "a cherry-pick", "git cherry-pick --continue` or "
                                                            "`git cherry-pick --abort"),
            (git_dir / "REVERT_HEAD", "a revert", "git revert --continue` or "
                                                  "`git revert --abort")]
    for marker, what, how in busy:
        if marker.exists():
            raise ConflictError(
                f"{what} is in progress in {root}: schemactl could not commit, so nothing was "
                "changed", hint=f"finish it or abort it (`{how}`), then run again",
                code="git_state")
    probe = subprocess.run(["git", "-C", str(root), "symbolic-ref", "-q", "HEAD"],
                           capture_output=True)
    if probe.returncode != 0:
        raise ConflictError(
            f"HEAD is detached in {root}: schemactl commits to a branch, so nothing was changed",
            hint="check out a branch (`git switch main`), then run again", code="git_state")
    for folder in (git_dir, root):
        err = _writable(folder)
        if err is not None:
            reason = err.strerror or type(err).__name__
            raise EnvironmentError_(
                f"the repository is read-only ({folder}: {reason}): schemactl could not "
                "commit, so nothing was changed",
                hint="run where the repository can be written", code="git_state")


def _common_dir(root: Path) -> Path:
    import subprocess

    proc = subprocess.run(["git", "-C", str(root), "rev-parse", "--path-format=absolute",
                           "--git-common-dir"], capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise BadInputError(f"{root} is not a git repository",
                            hint="run `schemactl init DIR` to make a schema repository")
    return Path(proc.stdout.strip())


@contextmanager
def repository_lock(root: Path, wait: float, what: str = "propose") -> Iterator[None]:
    """Serialise schemactl's writers of one repository (read HEAD → write → commit).

    An ``flock`` on ``<git common dir>/schemactl.lock``: the kernel drops it when the holder
    dies, so it can never go stale. Waits up to ``wait`` seconds (polling).

    Raises:
        ConflictError: still held after ``wait`` seconds (code ``repository_locked``, exit 4).
        EnvironmentError_: the lock file cannot be made (a read-only repository).
    """
    import fcntl
    import time

    path = _common_dir(root) / "schemactl.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise EnvironmentError_(
            f"cannot lock the repository ({path}: {exc.strerror or type(exc).__name__})",
            hint="run where the repository can be written", code="git_state") from exc
    deadline = time.monotonic() + max(0.0, wait)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ConflictError(
                        f"another schemactl process is writing to {root} (waited "
                        f"{wait:g} s to {what})", code="repository_locked",
                        hint="retry when it is done, or wait longer (--wait SECONDS)") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _held_open(path: Path) -> bool:
    """Whether a process on this machine has ``path`` open (Linux /proc; else assume so)."""
    proc = Path("/proc")
    if not (proc / "self" / "fd").exists():
        return True
    target = str(path)
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(proc / pid / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(proc / pid / "fd" / fd) == target:
                    return True
            except OSError:
                continue
    return False


def clear_stale_index_lock(root: Path, min_age: float = 2.0, max_age: float = 60.0) -> bool:
    """Remove ``.git/index.lock`` left by a git process that died; True when removed.

    Stale: older than ``min_age`` seconds and open by no process, or older than ``max_age``.
    """
    import time

    git_dir = _git_dir(root)
    if git_dir is None:
        return False
    lock = git_dir / "index.lock"
    try:
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return False
    if age < min_age or (age < max_age and _held_open(lock)):
        return False
    lock.unlink(missing_ok=True)
    return True
