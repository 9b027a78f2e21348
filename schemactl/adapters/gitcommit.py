"""A commit of a few paths built with git plumbing: its cost follows the change, not the tree.

`git add` + `git commit --only` rewrite and re-read the whole index twice and compare the
whole tree, which in a repository of 10,000 definitions costs far more than the change.
Here the changed paths are staged with one `git update-index` (which writes their blobs
and nothing else), the new tree is HEAD's tree with only the changed entries replaced
(`git mktree` for each changed folder, bottom up), the commit is `git commit-tree`, and
the branch moves with `git update-ref <ref> <new> <old>`: compare-and-swap, so a commit
made by someone else meanwhile is never lost (this commit is built again on top of it, or,
with an expected parent, refused).

What `git commit --no-verify -m` would do differently is not taken here: a repository with
a prepare-commit-msg or post-commit hook, commit signing, no commit yet, a detached HEAD
or a folder among the paths gets `git commit` itself (schemactl.adapters.gitops).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from schemactl.errors import ConflictError, EnvironmentError_

FALLBACK_NAME = "schemactl"
FALLBACK_EMAIL = "schemactl@localhost"
_HOOKS = ("prepare-commit-msg", "post-commit")  # what `git commit --no-verify` still runs


class RefMoved(ConflictError):
    """The branch is no longer at the expected parent: nothing was committed."""


class IndexLocked(EnvironmentError_):
    """Another git process holds the index (``index.lock``): nothing was committed."""


@dataclass(frozen=True)
class Head:
    """Where a plumbing commit goes: the branch, its commit, and who commits."""

    ref: str
    sha: str
    env: Mapping[str, str]


def _run(root: Path, *args: str, input: bytes | None = None,
         env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(root), *args], input=input, capture_output=True,
                          env={**os.environ, **env} if env else None)


def _failed(what: str, proc: subprocess.CompletedProcess[bytes]) -> EnvironmentError_:
    text = proc.stderr.decode("utf-8", errors="replace")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    first = next((ln for ln in lines if ln.startswith(("fatal:", "error:"))),
                 lines[0] if lines else f"git {what} exited {proc.returncode}")
    cls = IndexLocked if "index.lock" in text else EnvironmentError_
    return cls(f"git commit failed: {first}", hint="check the repository state with `git status`")


def plumbing_head(root: Path, paths: list[str]) -> Head | None:
    """The branch to commit to with plumbing, or None when `git commit` must do it (a hook
    it would run, signing, no commit yet, a detached HEAD, a folder among the paths)."""
    if any((root / p).is_dir() for p in paths):
        return None
    proc = _run(root, "rev-parse", "--path-format=absolute", "--git-common-dir",
                "HEAD", "--symbolic-full-name", "HEAD")
    lines = proc.stdout.decode().split()
    if proc.returncode != 0 or len(lines) != 3 or not lines[2].startswith("refs/heads/"):
        return None
    common, sha, ref = lines
    config = _run(root, "config", "-z", "--get-regexp",
                  r"^(commit\.gpgsign|core\.hookspath|user\.name|user\.email)$")
    values: dict[str, str] = {}
    for item in config.stdout.decode("utf-8", errors="replace").split("\0"):
        key, _, value = item.partition("\n")
        if key:
            values[key.lower()] = value
    if values.get("commit.gpgsign", "false").lower() in ("true", "yes", "on", "1"):
        return None
    hooks = values.get("core.hookspath")
    folder = (root / os.path.expanduser(hooks)) if hooks else Path(common) / "hooks"
    if any(os.access(folder / h, os.X_OK) for h in _HOOKS):
        return None
    env: dict[str, str] = {}
    if not (os.environ.get("GIT_AUTHOR_NAME") or "user.name" in values):
        env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = FALLBACK_NAME
    if not (os.environ.get("GIT_AUTHOR_EMAIL") or "user.email" in values):
        env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = FALLBACK_EMAIL
    return Head(ref=ref, sha=sha, env=env)


def stage(root: Path, paths: list[str]) -> dict[str, tuple[str, str]]:
    """Stage ``paths`` as they are in the work tree (added, changed or removed) and return
    path → (mode, blob id) of those still there; only these index entries change.

    Raises:
        IndexLocked: another git process holds the index.
        EnvironmentError_: git refused.
    """
    proc = _run(root, "update-index", "--add", "--remove", "-z", "--stdin",
                input="".join(f"{p}\0" for p in paths).encode())
    if proc.returncode != 0:
        raise _failed("update-index", proc)
    listing = _run(root, "ls-files", "-s", "-z", "--", *paths)
    if listing.returncode != 0:
        raise _failed("ls-files", listing)
    out: dict[str, tuple[str, str]] = {}
    for item in listing.stdout.split(b"\0"):
        if item:
            meta, name = item.split(b"\t", 1)
            mode, blob, _stage = meta.decode().split()
            out[name.decode()] = (mode, blob)
    return out


def _is_tree(mode: bytes) -> bool:
    return mode.lstrip(b"0") == b"40000"


def _entries(data: bytes, oid_len: int) -> Iterator[tuple[int, int, bytes, bytes]]:
    """(start, end, mode, name) of each entry of a raw tree object, in order."""
    pos = 0
    while pos < len(data):
        space = data.index(b" ", pos)
        nul = data.index(b"\0", space)
        end = nul + 1 + oid_len
        yield pos, end, data[pos:space], data[space + 1:nul]
        pos = end


def _splice(data: bytes, oid_len: int, changes: Mapping[bytes, tuple[bytes, bytes] | None]
            ) -> bytes:
    """A raw tree with the entries named in ``changes`` replaced by (mode, raw id), or
    removed (None), or inserted in git's order; the rest is copied as it is, and the scan
    stops once every change is placed."""
    def key(name: bytes, mode: bytes) -> bytes:
        return name + b"/" if _is_tree(mode) else name  # git sorts a folder as "name/"

    pending = sorted((key(n, e[0]), e[0] + b" " + n + b"\0" + e[1])
                     for n, e in changes.items() if e is not None)
    unseen = set(changes)
    out = bytearray()
    copied = 0
    pos, size, find = 0, len(data), data.find
    while pos < size and (pending or unseen):
        space = find(b" ", pos)
        nul = find(b"\0", space)
        end = nul + 1 + oid_len
        name = data[space + 1:nul]
        if pending and pending[0][0] <= name + b"/":  # cheap bound before the exact key
            k = key(name, data[pos:space])
            while pending and pending[0][0] < k:
                out += data[copied:pos]
                copied = pos
                out += pending.pop(0)[1]
        if name in unseen:
            unseen.discard(name)
            out += data[copied:pos]
            copied = end
            if pending and pending[0][0] == key(name, data[pos:space]):
                out += pending.pop(0)[1]
        pos = end
    out += data[copied:]
    for _k, raw in pending:
        out += raw
    return bytes(out)


class _Trees:
    """Tree objects read with one `git cat-file --batch`, written with one
    `git hash-object`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pending: list[tuple[str, bytes]] = []
        self.read = subprocess.Popen(["git", "-C", str(root), "cat-file", "--batch"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)

    def get(self, name: str) -> tuple[str, bytes]:
        """The id and raw bytes of a tree (any revision syntax)."""
        assert self.read.stdin is not None and self.read.stdout is not None
        self.read.stdin.write(f"{name}\n".encode())
        self.read.stdin.flush()
        header = self.read.stdout.readline().split()
        if len(header) != 3 or header[1] != b"tree":
            raise EnvironmentError_(f"git commit failed: cannot read tree {name}")
        size = int(header[2])
        return header[0].decode(), self.read.stdout.read(size + 1)[:size]

    def put(self, data: bytes, oid_len: int) -> str:
        """The id of a new tree object; written by :meth:`flush`, all in one process."""
        import hashlib

        algo = hashlib.sha1 if oid_len == 20 else hashlib.sha256
        oid = algo(b"tree %d\0" % len(data) + data).hexdigest()
        self.pending.append((oid, data))
        return oid

    def flush(self) -> None:
        """Write the new trees with one `git hash-object -w --stdin-paths` (which checks
        each is a well-formed tree) and make sure git gave them the ids computed here."""
        import tempfile

        if not self.pending:
            return
        with tempfile.TemporaryDirectory(prefix="schemactl-tree-") as tmp:
            names = []
            for i, (_oid, data) in enumerate(self.pending):
                names.append(f"{tmp}/{i}")
                Path(names[-1]).write_bytes(data)
            proc = _run(self.root, "hash-object", "-w", "-t", "tree", "--stdin-paths",
                        input="".join(f"{n}\n" for n in names).encode())
        if proc.returncode != 0:
            raise _failed("hash-object", proc)
        if proc.stdout.decode().split() != [oid for oid, _ in self.pending]:
            raise EnvironmentError_("git commit failed: git gave a new tree another id")
        self.pending.clear()

    def close(self) -> None:
        for stream in (self.read.stdin, self.read.stdout):
            if stream is not None:
                stream.close()
        self.read.wait()


def _build(trees: _Trees, tree: str | None, changes: dict[str, tuple[str, str] | None],
           oid_len: int) -> str | None:
    """The id of ``tree`` with ``changes`` (relative path → (mode, id), None: removed);
    None when nothing is left in it. Only the folders on the changed paths are read, and
    their unchanged entries are copied as bytes."""
    data = trees.get(tree)[1] if tree else b""
    nested: dict[bytes, dict[str, tuple[str, str] | None]] = {}
    direct: dict[bytes, tuple[bytes, bytes] | None] = {}
    for path, entry in changes.items():
        head, sep, rest = path.partition("/")
        if sep:
            nested.setdefault(head.encode(), {})[rest] = entry
        else:
            direct[head.encode()] = None if entry is None else (
                entry[0].lstrip("0").encode(), bytes.fromhex(entry[1]))
    if nested:
        old = {name: data[end - oid_len:end].hex()
               for _start, end, mode, name in _entries(data, oid_len)
               if name in nested and _is_tree(mode)}
        for folder, inner in nested.items():
            sub = _build(trees, old.get(folder), inner, oid_len)
            direct[folder] = None if sub is None else (b"40000", bytes.fromhex(sub))
    spliced = _splice(data, oid_len, direct)
    return trees.put(spliced, oid_len) if spliced else None


def commit(root: Path, head: Head, paths: list[str], message: str,
           parent: str | None = None) -> str:
    """Commit ``paths`` (staged by :func:`stage`) on ``head``'s branch; returns the sha.

    With ``parent``, the branch must still be at that commit (else :class:`RefMoved`);
    without, a branch moved by another writer gets this commit on top of its new head.

    Raises:
        RefMoved: the branch moved away from ``parent``.
        EnvironmentError_: nothing to commit, or git refused.
    """
    staged = stage(root, paths)
    changes = {p: staged.get(p) for p in paths}
    base = head.sha
    for _attempt in range(5):
        if parent is not None and base != parent:
            raise RefMoved("the branch moved while the commit was prepared",
                           hint="another writer committed; run again", code="parent_moved")
        trees = _Trees(root)
        try:
            old_tree = trees.get(f"{base}^{{tree}}")[0]
            new_tree = _build(trees, old_tree, changes, len(old_tree) // 2)
            if new_tree != old_tree:
                trees.flush()
        finally:
            trees.close()
        if new_tree is None or new_tree == old_tree:
            raise EnvironmentError_("git commit failed: nothing to commit",
                                    hint="the paths are as they are in HEAD")
        made = _run(root, "commit-tree", new_tree, "-p", base, input=message.encode(),
                    env=head.env)
        if made.returncode != 0:
            raise _failed("commit-tree", made)
        sha = made.stdout.decode().strip()
        subject = message.splitlines()[0] if message else ""
        moved = _run(root, "update-ref", "-m", f"commit: {subject}", head.ref, sha, base)
        if moved.returncode == 0:
            return sha
        now = _run(root, "rev-parse", "--verify", "-q", head.ref).stdout.decode().strip()
        if not now or now == base:
            raise _failed("update-ref", moved)
        base = now  # another writer committed meanwhile: build on top of it
    raise RefMoved("the branch kept moving while the commit was prepared",
                   hint="another writer commits to this repository; run again",
                   code="parent_moved")


def clean_message(message: str) -> str:
    """The message as `git commit -m` stores it (its default "whitespace" cleanup):
    trailing spaces cut, runs of blank lines made one, none at either end."""
    lines = [ln.rstrip() for ln in message.splitlines()]
    out: list[str] = []
    for ln in lines:
        if ln or (out and out[-1]):
            out.append(ln)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n" if out else ""
