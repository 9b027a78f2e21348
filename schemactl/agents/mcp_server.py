"""`schemactl mcp`: the agent tools as a Model Context Protocol server over stdio.

A thin layer: the tool list and every call come from `schemactl.agents.agent_tools`, which
runs the engine API. Each result is the JSON object the CLI prints with ``--json``,
returned as text content and as structured content; a result that is not ok is
marked ``isError`` so the agent reads the error and its hint. The caller is always
an agent (``agent:<name>``), so the policy of schemactl.toml applies to it.

Calls run one at a time in a worker thread: the engine blocks (git, pg_dump,
PostgreSQL), and one server serves one agent, so ordering its calls is what it
expects; several agents (several servers) are serialised by the apply lock.
"""

from __future__ import annotations

import json
from typing import Any

from schemactl.agents import agent_tools

SERVER_NAME = "schemactl"

INSTRUCTIONS = (
    "schemactl evolves this application's dynamic PostgreSQL schema safely. Loop: "
    "schema_validate a table definition (fix what the violations' hints say), "
    "schema_propose it (a migration committed to git), schema_plan to see the SQL, "
    "schema_apply to apply it (subject to the repository's policy). A proposal that "
    "fails at apply and was applied nowhere is taken back with schema_revert (or "
    "schema_propose with replace). A definition is the "
    "whole desired state of one table: never leave a column out (it would be a drop). "
    "Results are JSON objects with ok, violations and error {code, message, hint}.")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("schemactl")
    except PackageNotFoundError:
        return "0"


def build_server(repo: str | None, database_url: str | None, actor: str | None = None) -> Any:
    """The MCP server (the ``mcp`` package's low-level ``Server``) for one repository.

    Args:
        repo: the schema repository (None: the current directory).
        database_url: the database (None: the environment, then the embedded server).
        actor: ``--actor`` given to ``schemactl mcp``; see `agent_tools.agent_actor`.
    """
    import anyio
    import mcp.types as types
    from mcp.server import Server

    from schemactl.model.loading import keep_warm

    # Parsed definitions stay in memory between calls; each call asks git only whether
    # dynamic_schema/ changed (one small process) and reads only what did.
    keep_warm()
    specs = agent_tools.tool_specs()
    tools = [types.Tool(name=s.name, description=s.description, input_schema=s.input_schema,
                        annotations=types.ToolAnnotations(
                            read_only_hint=s.read_only, idempotent_hint=s.idempotent,
                            destructive_hint=s.destructive))
             for s in specs]
    one_at_a_time = anyio.Lock()

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        client = None
        try:
            client_params = ctx.session.client_params
            client = client_params.client_info.name if client_params else None
        except Exception:  # noqa: BLE001 - an odd handshake still gets an agent actor
            client = None
        tool_ctx = agent_tools.ToolContext(repo=repo, database_url=database_url,
                                           actor=agent_tools.agent_actor(actor, client))
        async with one_at_a_time:
            data = await anyio.to_thread.run_sync(agent_tools.call, params.name,
                                                  params.arguments, tool_ctx)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(data, indent=2))],
            structured_content=data, is_error=not data.get("ok", False))

    return Server(SERVER_NAME, version=_version(), instructions=INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call_tool)


async def serve(repo: str | None, database_url: str | None, actor: str | None = None) -> None:
    """Serve the tools over stdin/stdout until the client closes the connection."""
    from mcp.server.stdio import stdio_server

    server = build_server(repo, database_url, actor)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def run(repo: str | None, database_url: str | None, actor: str | None = None) -> None:
    """Open the repository (failing fast when it is not one), then serve.

    Raises:
        BadInputError: ``repo`` is not a schema repository (exit 2), or its
            schemactl.toml is invalid.
    """
    import anyio

    from schemactl.model.repo import SchemaRepo

    root = SchemaRepo.open(repo)
    _ = root.config  # an invalid schemactl.toml fails here, not on the first call
    anyio.run(serve, str(root.root), database_url, actor)
