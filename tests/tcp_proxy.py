"""A small TCP proxy on 127.0.0.1 for fault tests: forwards, freezes or cuts connections."""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from urllib.parse import urlsplit

from schemactl.adapters.database import Target


class TcpProxy:
    """Forwards 127.0.0.1:<port> to (host, port).

    ``freeze()`` stops forwarding while keeping every socket open (a server that stops
    answering); ``cut()`` closes every connection at once (a network cut); ``thaw()``
    forwards again.
    """

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.frozen = threading.Event()
        self.closed = threading.Event()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        # How many more connections to forward (None: all); the rest are closed at once.
        self.allow: int | None = None
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.allow is not None:
                if self.allow <= 0:
                    client.close()
                    continue
                self.allow -= 1
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while self.frozen.is_set() and not self.closed.is_set():
                    self.closed.wait(0.05)  # hold the bytes: the peer hears nothing
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    # shutdown first: a close alone does not reach the peer while the other
                    # pump is still blocked in recv on the same socket.
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass

    def freeze(self) -> None:
        self.frozen.set()

    def thaw(self) -> None:
        self.frozen.clear()

    def cut(self) -> None:
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def close(self) -> None:
        self.closed.set()
        self.listener.close()
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def proxied(target: Target, port: int) -> Target:
    """``target`` reached through a proxy listening on 127.0.0.1:``port``."""
    parts = urlsplit(target.url)
    host = f"127.0.0.1:{port}"
    userinfo = parts.netloc.rsplit("@", 1)
    return Target(parts._replace(netloc=f"{userinfo[0]}@{host}" if len(userinfo) == 2
                                 else host).geturl())
