"""Git objects read with plain git processes, no GitPython: folder trees, blobs, ids.

The offline read paths (validate, propose, check through the parse cache) use these:
one small process for a tree id, one `ls-tree` or `diff-tree` listing, one
`cat-file --batch` for many objects. Writing history stays in `schemactl.adapters.gitops`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from schemactl.errors import BadInputError

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any


def run_git(root: Path, *args: str, input: bytes | None = None) -> bytes:
    """Run plain git (no GitPython): the read paths of validate must start fast.

    Raises:
        BadInputError: git failed (its message).
    """
    import subprocess

    proc = subprocess.run(["git", "-C", str(root), *args], input=input, capture_output=True)
    if proc.returncode != 0:
        raise BadInputError(f"git {args[0]}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def folder_tree(root: Path, rev: str, folder: str) -> str | None:
    """The id of the tree ``folder`` has at ``rev`` (None: no such folder, or no commit yet).

    One small git process when the folder exists: a cache keyed by this id needs no listing.

    Raises:
        BadInputError: ``rev`` does not name a commit.
    """
    import subprocess

    probe = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "-q",
                            f"{rev}^{{commit}}:{folder}"], capture_output=True)
    if probe.returncode == 0:
        return probe.stdout.decode().strip()
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "-q",
                             f"{rev}^{{commit}}"], capture_output=True)
    if commit.returncode != 0 and rev != "HEAD":
        raise BadInputError(f"unknown git revision {rev!r}")
    return None  # the folder is absent, or HEAD has no commit yet


class BatchReader:
    """One `git cat-file --batch` process answering object requests in turn.

    A small repository's definitions at a revision cost this one process (commit, folder
    tree, blobs), not one per step. It is started with ``os.posix_spawnp`` where there is
    one: ``import subprocess`` (threading, selectors, signal, locale) cost a cold
    `validate` more than this process does.
    """

    def __init__(self, root: Path) -> None:
        argv = ["git", "-C", str(root), "cat-file", "--batch"]
        self.pid: int | None = None
        self.proc: Any = None
        spawned = _spawn(argv)
        if spawned is None:
            import subprocess

            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL)
            self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        else:
            self.pid, self.stdin, self.stdout = spawned

    def get(self, names: list[str]) -> list[tuple[str, str, bytes] | None]:
        """(id, type, bytes) per object name (any revision syntax), None when missing."""
        self.stdin.write("".join(f"{n}\n" for n in names).encode())
        self.stdin.flush()
        out: list[tuple[str, str, bytes] | None] = []
        for _ in names:
            header = self.stdout.readline().split()
            if len(header) != 3:
                out.append(None)
                continue
            size = int(header[2])
            data = self.stdout.read(size + 1)[:size]
            out.append((header[0].decode(), header[1].decode(), data))
        return out

    def close(self) -> None:
        self.stdin.close()
        self.stdout.close()
        if self.proc is not None:
            self.proc.wait()
        elif self.pid is not None:
            os.waitpid(self.pid, 0)


def _spawn(argv: list[str]) -> tuple[int, Any, Any] | None:
    """(pid, its stdin, its stdout) of ``argv`` started with pipes and stderr to /dev/null,
    or None where subprocess should do it (no posix_spawnp; a pipe end among fds 0-2, which
    a dup2 onto itself would leave close-on-exec)."""
    if not hasattr(os, "posix_spawnp"):
        return None
    import signal

    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    fds = (r_in, w_in, r_out, w_out)
    if min(fds) <= 2:
        for fd in fds:
            os.close(fd)
        return None
    actions = [(os.POSIX_SPAWN_DUP2, r_in, 0), (os.POSIX_SPAWN_DUP2, w_out, 1),
               (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
    try:
        # Python ignores SIGPIPE and SIGXFSZ; the child gets the defaults back, as
        # subprocess gives them.
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions,
                              setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    os.close(r_in)
    os.close(w_out)
    return pid, open(w_in, "wb"), open(r_out, "rb")


def parse_tree(data: bytes, id_len: int) -> list[tuple[str, str]]:
    """(name, blob id) of the files in a raw tree object (sub-folders left out)."""
    out = []
    pos = 0
    while pos < len(data):
        space = data.index(b" ", pos)
        nul = data.index(b"\0", space)
        mode = data[pos:space]
        obj = data[nul + 1: nul + 1 + id_len].hex()
        if not mode.startswith(b"4") and not mode.startswith(b"16"):  # not a tree or submodule
            out.append((data[space + 1:nul].decode(), obj))
        pos = nul + 1 + id_len
    return out


def folder_at(reader: BatchReader, rev: str, folder: str
              ) -> tuple[str | None, list[tuple[str, str]]]:
    """(tree id, (name, blob id) entries) of ``folder`` at ``rev``; (None, []) without it.

    Raises:
        BadInputError: ``rev`` does not name a commit.
    """
    commit, tree = reader.get([f"{rev}^{{commit}}", f"{rev}^{{commit}}:{folder}"])
    if commit is None:
        if rev != "HEAD":
            raise BadInputError(f"unknown git revision {rev!r}")
        return None, []
    if tree is None or tree[1] != "tree":
        return None, []
    return tree[0], parse_tree(tree[2], len(tree[0]) // 2)


def tree_blobs(root: Path, tree: str) -> list[tuple[str, str]]:
    """(name, blob id) of every file directly in a tree: one `git ls-tree`, nothing read."""
    out = []
    for item in run_git(root, "ls-tree", "-z", tree).split(b"\0"):
        if item:
            meta, raw_name = item.split(b"\t", 1)
            _mode, kind, obj = meta.split()
            if kind == b"blob":
                out.append((raw_name.decode(), obj.decode()))
    return out


def tree_changes(root: Path, old: str, new: str) -> list[tuple[str, str | None]]:
    """(name, new blob id or None when removed) of the files that differ between two trees."""
    out: list[tuple[str, str | None]] = []
    fields = run_git(root, "diff-tree", "-z", "--no-renames", old, new).split(b"\0")
    for meta, raw_name in zip(fields[0::2], fields[1::2], strict=False):
        if not meta.startswith(b":"):
            continue
        parts = meta.split()
        new_mode, new_obj = parts[1], parts[3].decode()
        if new_mode.startswith(b"04"):
            continue  # a sub-folder: definitions live directly in the folder
        out.append((raw_name.decode(), None if set(new_obj) == {"0"} else new_obj))
    return out


def read_blobs(root: Path, blobs: Iterable[str]) -> dict[str, bytes]:
    """The bytes of git blobs by id, read with one `git cat-file --batch`."""
    wanted = list(dict.fromkeys(blobs))
    if not wanted:
        return {}
    batch = run_git(root, "cat-file", "--batch",
                    input="".join(f"{o}\n" for o in wanted).encode())
    out: dict[str, bytes] = {}
    pos = 0
    for obj in wanted:
        header_end = batch.index(b"\n", pos)
        header = batch[pos:header_end].split()
        if len(header) < 3:  # "<id> missing"
            pos = header_end + 1
            continue
        size = int(header[2])
        out[obj] = batch[header_end + 1: header_end + 1 + size]
        pos = header_end + 1 + size + 1
    return out


def blob_id(data: bytes) -> str:
    """The id git gives these bytes as a blob (``git hash-object``), computed here."""
    import hashlib

    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
