"""`schemactl mcp --http HOST:PORT`: the same MCP server over the Streamable HTTP transport.

The tools, the policy and the one-call-at-a-time rule are those of the stdio server
(`schemactl.agents.mcp_server.build_server`); this module only serves them: the ``mcp``
package's streamable HTTP app (its session manager, at ``/mcp``) under uvicorn.

- Loopback by default (``127.0.0.1``), with the package's DNS-rebinding protection (Host
  and Origin must be loopback too).
- A bearer token from ``$SCHEMACTL_MCP_TOKEN``: required to bind any other address, and
  checked on every request whenever it is set (``Authorization: Bearer <token>``,
  compared in constant time); anything else gets 401 before the MCP layer sees it.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import socket
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from schemactl.errors import BadInputError, EnvironmentError_

TOKEN_ENV = "SCHEMACTL_MCP_TOKEN"
PATH = "/mcp"
DEFAULT_HOST = "127.0.0.1"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Bind:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_bind(text: str) -> Bind:
    """``HOST:PORT``, ``[v6]:PORT``, ``:PORT`` or ``PORT`` (loopback); port 0 picks a free one.

    Raises:
        BadInputError: not an address and port (exit 2).
    """
    host, sep, port_text = text.strip().rpartition(":")
    if not sep:
        host, port_text = "", text.strip()
    host = host.strip("[]") or DEFAULT_HOST
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535 or not host:
        raise BadInputError(f"--http {text!r}: expected HOST:PORT (e.g. 127.0.0.1:8765)",
                            hint="the port is a number from 0 (any free port) to 65535")
    return Bind(host, port)


def token_for(bind: Bind) -> str | None:
    """The bearer token from the environment; None on loopback without one.

    Raises:
        BadInputError: a non-loopback bind without a token, or a token too short (exit 2).
    """
    token = os.environ.get(TOKEN_ENV) or None
    if token is None and not bind.loopback:
        raise BadInputError(
            f"--http {bind.host}:{bind.port} is reachable from other machines: set "
            f"${TOKEN_ENV} to a bearer token first",
            hint=f'export {TOKEN_ENV}="$(python -c \'import secrets; '
                 "print(secrets.token_urlsafe(32))')\"; clients send it as "
                 "'Authorization: Bearer <token>'")
    if token is not None and len(token) < 16:
        raise BadInputError(f"${TOKEN_ENV} is too short ({len(token)} characters, at least 16)",
                            hint="use a random token, e.g. python -c 'import secrets; "
                                 "print(secrets.token_urlsafe(32))'")
    return token


def require_token(app: ASGIApp, token: str) -> ASGIApp:
    """An ASGI wrapper answering 401 to an HTTP request without ``Bearer <token>``."""
    expected = f"Bearer {token}".encode()

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = b""
            for name, value in scope.get("headers") or []:
                if name.lower() == b"authorization":
                    given = value
            if not hmac.compare_digest(given, expected):
                body = b'{"error": "unauthorized", "message": "missing or wrong bearer token"}'
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"www-authenticate", b'Bearer realm="schemactl"'),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded


def build_app(repo: str | None, database_url: str | None, actor: str | None,
              bind: Bind, token: str | None) -> ASGIApp:
    """The ASGI app: the MCP server's streamable HTTP app, behind the token when set."""
    from mcp.server.transport_security import TransportSecuritySettings

    from schemactl.agents.mcp_server import build_server

    server = build_server(repo, database_url, actor)
    security = None
    if not bind.loopback:
        # Reached by other names than loopback ones: the token is the guard, not Host.
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app: ASGIApp = server.streamable_http_app(streamable_http_path=PATH, host=bind.host,
                                              transport_security=security)
    return require_token(app, token) if token else app


def _listen(bind: Bind) -> socket.socket:
    family = socket.AF_INET6 if ":" in bind.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bind.host, bind.port))
    except OSError as exc:
        sock.close()
        raise EnvironmentError_(f"cannot listen on {bind.host}:{bind.port}: "
                                f"{exc.strerror or exc}",
                                hint="pick another port, or :0 for any free one") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def run(repo: str | None, database_url: str | None, actor: str | None, address: str) -> None:
    """Serve until interrupted (SIGINT or SIGTERM); prints the endpoint URL on stderr.

    Raises:
        BadInputError: a bad address, or a non-loopback one without a token (exit 2).
        EnvironmentError_: the address cannot be bound (exit 3).
    """
    import uvicorn

    from schemactl.model.repo import SchemaRepo

    bind = parse_bind(address)
    token = token_for(bind)
    root = SchemaRepo.open(repo)
    _ = root.config  # an invalid schemactl.toml fails here, not on the first call
    app = build_app(str(root.root), database_url, actor, bind, token)
    sock = _listen(bind)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    sys.stderr.write(f"schemactl MCP server on http://{shown}:{port}{PATH} "
                     f"({'bearer token required' if token else 'loopback, no token'})\n")
    sys.stderr.flush()
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
