"""`schemactl mcp --http`: the MCP tools over Streamable HTTP, driven by the real mcp client.

The server runs as a real process on 127.0.0.1 (a free port it picks and prints) and is
always stopped by the fixture, whatever the test did.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from schemactl.adapters.database import Target
from tests.apply_helpers import audit_rows, revision_of
from tests.conftest import git_log, run_cli
from tests.test_mcp import NOTES, TOOLS, call

TOKEN = "test-token-" + "x" * 24


class HttpServer:
    def __init__(self, proc: subprocess.Popen[bytes], url: str, errlog: Path) -> None:
        self.proc = proc
        self.url = url
        self.errlog = errlog


def _start(repo: Path, database_url: str | None, token: str | None) -> HttpServer:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "SCHEMACTL_DATABASE_URL", "SCHEMACTL_ACTOR",
                        "SCHEMACTL_MCP_TOKEN")}
    if token:
        env["SCHEMACTL_MCP_TOKEN"] = token
    args = [sys.executable, "-m", "schemactl.cli", "mcp", "--http", "127.0.0.1:0", "--repo",
            str(repo)]
    if database_url:
        args += ["--database-url", database_url]
    errlog = repo.parent / "mcp-http.err"
    with open(errlog, "wb") as err:
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = errlog.read_text(errors="replace")
        for word in text.split():
            if word.startswith("http://127.0.0.1:") and word.endswith("/mcp"):
                return HttpServer(proc, word, errlog)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    _stop(proc)
    raise AssertionError(f"the server did not start: {errlog.read_text(errors='replace')}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


@pytest.fixture
def server(repo: Path, db: Target) -> Iterator[HttpServer]:
    srv = _start(repo, db.url, TOKEN)
    try:
        yield srv
    finally:
        _stop(srv.proc)
    # A graceful stop: uvicorn finishes, then ends by the SIGTERM it was sent; no traceback.
    log = srv.errlog.read_text(errors="replace")
    assert srv.proc.returncode in (0, -signal.SIGTERM), log
    assert "Traceback" not in log, log


@asynccontextmanager
async def http_session(url: str, token: str | None,
                       client: str = "remote-mechanic") -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write, client_info=types.Implementation(
                    name=client, version="1.0")) as session:
                with anyio.fail_after(60):
                    await session.initialize()
                yield session


def raw_post(url: str, body: bytes, token: str | None) -> tuple[int, str]:
    """One HTTP POST outside any MCP client: (status, body)."""
    headers = {"Content-Type": "application/json",
               "Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


INIT = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {},
    "clientInfo": {"name": "raw", "version": "1"}}}).encode()


def test_agent_loop_over_http(repo: Path, db: Target, server: HttpServer) -> None:
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with http_session(server.url, TOKEN) as s:
            listed = (await s.list_tools()).tools
            assert [t.name for t in listed] == TOOLS

            unsafe = dict(NOTES, table="notes; drop table agents")
            refused = await call(s, "schema_validate",
                                 {"definition": unsafe, "add_base_fields": True})
            assert not refused["ok"] and any(v["rule"] == "SC401"
                                             for v in refused["violations"])
            checked = await call(s, "schema_validate",
                                 {"definition": NOTES, "add_base_fields": True})
            assert checked["ok"], checked

            proposed = await call(s, "schema_propose",
                                  {"definition": NOTES, "add_base_fields": True})
            assert proposed["ok"] and proposed["commit"], proposed
            applied = await call(s, "schema_apply", {})
            assert applied["ok"], applied
            assert applied["applied"] == ["0001_core", proposed["migration"]["revision"]]
            seen["revision"] = proposed["migration"]["revision"]

    anyio.run(scenario)
    assert revision_of(db) == seen["revision"]
    assert [(r["action"], r["actor"]) for r in audit_rows(db)] == [
        ("apply", "agent:remote-mechanic")]
    assert any("Schemactl-Actor: agent:remote-mechanic" in m for m in git_log(repo))


def test_missing_or_wrong_token_is_refused_and_bad_input_does_not_stop_it(
        repo: Path, server: HttpServer) -> None:
    for token in (None, "wrong-" + TOKEN[6:], TOKEN + "x", ""):
        status, body = raw_post(server.url, INIT, token)
        assert status == 401, (token, status, body)
        assert "unauthorized" in body
    status, _ = raw_post(server.url, INIT, TOKEN)
    assert status == 200

    # Garbage of every kind, with the right token: HTTP errors, the server stays up.
    for junk in (b"not json", b"{", b"[]", b'{"jsonrpc": "2.0", "method": 5}', b"\xff\xfe",
                 json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                             "params": {"name": "schema_status"}}).encode()):
        status, body = raw_post(server.url, junk, TOKEN)
        assert 400 <= status < 500, (junk, status, body)
    assert server.proc.poll() is None

    async def scenario() -> None:
        with pytest.raises(BaseException):  # noqa: B017 - the client's error for a 401
            async with http_session(server.url, "wrong-" + TOKEN):
                pass
        async with http_session(server.url, TOKEN) as s:
            out = await call(s, "schema_validate", {"definition": "notes"})
            assert out["error"]["code"] == "bad_input"
            out = await call(s, "schema_drop_everything", {})
            assert out["error"]["code"] == "unknown_tool"
            status = await call(s, "schema_status", {})
            assert status["ok"] and status["pending"] == ["0001_core"], status

    anyio.run(scenario)
    assert server.proc.poll() is None


def test_loopback_without_a_token_serves_and_other_addresses_need_one(repo: Path) -> None:
    srv = _start(repo, "postgresql://nobody@127.0.0.1:1/none", None)
    try:
        assert "loopback, no token" in srv.errlog.read_text()

        async def scenario() -> None:
            async with http_session(srv.url, None) as s:
                assert [t.name for t in (await s.list_tools()).tools] == TOOLS

        anyio.run(scenario)
        # The package's DNS-rebinding guard: a foreign Host header is refused on loopback.
        request = urllib.request.Request(srv.url, data=INIT, method="POST", headers={
            "Content-Type": "application/json", "Host": "evil.example:80",
            "Accept": "application/json, text/event-stream"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=30)
        assert err.value.code in (400, 403, 421)
    finally:
        _stop(srv.proc)

    for address in ("0.0.0.0:0", "192.0.2.1:8765"):
        res = run_cli("mcp", "--http", address, "--repo", str(repo), "--json")
        assert res.code == 2, res
        assert "SCHEMACTL_MCP_TOKEN" in res.json["error"]["message"]
    short = run_cli("mcp", "--http", "127.0.0.1:0", "--repo", str(repo),
                    env={"SCHEMACTL_MCP_TOKEN": "short"})
    assert short.code == 2 and "too short" in short.stderr
    bad = run_cli("mcp", "--http", "127.0.0.1:http", "--repo", str(repo))
    assert bad.code == 2 and "HOST:PORT" in bad.stderr and "Traceback" not in bad.stderr
