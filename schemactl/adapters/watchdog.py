"""The client's bound on a frozen peer: a wait for an answer that a live server would have sent.

TCP keepalives and ``tcp_user_timeout`` end a session whose peer vanished, but not one whose
peer keeps acknowledging and never answers (a hung proxy or load balancer, a stopped server
process whose kernel still acks). psycopg's waits take no deadline, and a cancel request
travels the same frozen path. So one daemon thread watches this process's connections: when
one has been waiting for an answer longer than ``stall_after_s``, it asks the server over a
fresh connection whether that session is still working. A server that answers and shows the
session active is a long statement (a lock wait, an index build): left alone. A server that
cannot be reached within the probe's connect timeout, or that shows the session idle since
before the wait began (its answer was lost), or gone: the socket is shut down, so the waiting
call fails at once with a connection error (exit 3) and the run's journal recovers it.
A libpq child (pg_dump) is watched by the same probe: while it runs, a server that cannot be
reached within the probe's bound ends the child, so the step fails instead of hanging.
"""
from __future__ import annotations

import math
import os
import socket
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any


def _seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment; anything else is the default
    (a bound is never turned off, nor made a traceback, by a mistyped variable)."""
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if math.isfinite(value) and value > 0 else default


STALL_AFTER_S = _seconds("SCHEMACTL_STALL_AFTER_S", 30.0)
PROBE_CONNECT_TIMEOUT_S = max(1, round(_seconds("SCHEMACTL_STALL_PROBE_TIMEOUT_S", 10.0)))
_POLL_S = 1.0


@dataclass
class _Watched:
    conn: weakref.ref[Any]
    url: str
    pid: int
    waiting_since: float | None = None   # monotonic: first seen waiting for an answer
    wall_since: float | None = None      # time.time() of the same moment
    next_probe: float = field(default=0.0)


@dataclass
class _Child:
    proc: Any          # subprocess.Popen
    url: str
    next_probe: float


_watched: dict[int, _Watched] = {}
_children: dict[int, _Child] = {}
_lock = threading.Lock()
_thread: threading.Thread | None = None


def watch(conn: Any, url: str) -> None:
    """Watch a psycopg connection to ``url`` (libpq form, password included) until it closes."""
    try:
        pid = int(conn.info.backend_pid)
    except Exception:  # noqa: BLE001 - a connection that cannot say its pid is not watched
        return
    with _lock:
        _watched[id(conn)] = _Watched(weakref.ref(conn), url, pid)
        _start()


def watch_process(proc: Any, url: str) -> None:
    """Watch a running libpq child (a ``subprocess.Popen``) connected to ``url``."""
    with _lock:
        _children[id(proc)] = _Child(proc, url, time.monotonic() + STALL_AFTER_S)
        _start()


def _start() -> None:
    global _thread
    if _thread is None or not _thread.is_alive():
        _thread = threading.Thread(target=_run, name="schemactl-watchdog", daemon=True)
        _thread.start()


def _waiting(conn: Any) -> bool:
    """Whether the connection has sent a command and waits for its answer."""
    import psycopg.pq

    return bool(conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.ACTIVE)


def _run() -> None:
    while True:
        time.sleep(_POLL_S)
        with _lock:
            items = list(_watched.items())
        for key, w in items:
            conn = w.conn()
            if conn is None or conn.closed:
                with _lock:
                    _watched.pop(key, None)
                continue
            try:
                _check(conn, w)
            except Exception:  # noqa: BLE001 - the watchdog never ends the run by itself failing
                continue
        with _lock:
            children = list(_children.items())
        for key, c in children:
            if c.proc.poll() is not None:
                with _lock:
                    _children.pop(key, None)
            elif time.monotonic() >= c.next_probe:
                if _reachable(c.url):
                    c.next_probe = time.monotonic() + STALL_AFTER_S
                elif c.proc.poll() is None:
                    c.proc.kill()


def _check(conn: Any, w: _Watched) -> None:
    now = time.monotonic()
    if not _waiting(conn):
        w.waiting_since = w.wall_since = None
        return
    if w.waiting_since is None:
        w.waiting_since, w.wall_since = now, time.time()
        w.next_probe = now + STALL_AFTER_S
        return
    if now < w.next_probe:
        return
    if _session_alive(w):
        # Measure the next window afresh: a run of short statements shows up as one wait.
        w.next_probe, w.wall_since = time.monotonic() + STALL_AFTER_S, time.time()
        return
    _cut(conn)


def _probe(url: str, pid: int) -> tuple[Any, ...] | None:
    """The session ``pid``'s (state, state_change) as the server sees it, over a fresh connection.

    Raises:
        psycopg.Error: the server cannot be reached and answer within the probe's bound.
    """
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=PROBE_CONNECT_TIMEOUT_S,
                         application_name="schemactl-probe") as probe:
        return probe.execute("select state, extract(epoch from state_change) "
                             "from pg_stat_activity where pid = %s", (pid,)).fetchone()


def _reachable(url: str) -> bool:
    try:
        _probe(url, 0)
    except Exception:  # noqa: BLE001 - unreachable within the bound: the peer is frozen
        return False
    return True


def _session_alive(w: _Watched) -> bool:
    """Whether the server shows the watched session still working on something."""
    try:
        row = _probe(w.url, w.pid)
    except Exception:  # noqa: BLE001 - unreachable within the bound: the peer is frozen
        return False
    if row is None:
        return False            # the server ended the session: nothing will answer
    state, changed = row
    if state == "active":
        return True
    # Idle since after the wait began: the poll may have missed the gap between two
    # commands; the next window tells.
    return changed is not None and w.wall_since is not None and float(changed) > w.wall_since


def _cut(conn: Any) -> None:
    """Shut the socket down: the waiting call sees the connection end (a connection error)."""
    try:
        fd = os.dup(conn.pgconn.socket)
    except Exception:  # noqa: BLE001
        return
    sock = socket.socket(fileno=fd)
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()
