"""The agent tools: calling one (their list and schemas: :mod:`schemactl.agents.tool_specs`).

Each tool is a name, a description that says what it does and when it refuses,
and an input JSON Schema (draft 2020-12). :func:`call` runs one tool over the
engine API (`schemactl.api`) and returns the same JSON object the CLI prints with
``--json``; it never raises: hostile input (wrong types, unknown fields, huge
payloads) and every failure come back as ``{"ok": false, "error": {code, message,
hint}}`` so that an agent can correct itself from the hint alone.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from schemactl.agents.tool_specs import (
    ToolSpec,
    ToolsResult,
    tool_definitions,
    tool_specs,
    tools_result,
)

__all__ = ["MAX_ARGUMENT_BYTES", "ToolContext", "ToolSpec", "ToolsResult", "agent_actor", "call",
           "tool_definitions", "tool_specs", "tools_result"]

# The whole arguments object of one call; the definition itself is bounded by
# [limits] max_definition_bytes through SC406, like a file.
MAX_ARGUMENT_BYTES = 1024 * 1024

_COMMANDS = {"schema_validate": "validate", "schema_propose": "propose",
             "schema_revert": "propose", "schema_plan": "plan",
             "schema_apply": "apply", "schema_rollback": "rollback", "schema_status": "status",
             "schema_history": "history"}


@dataclass(frozen=True)
class ToolContext:
    """Where and as whom tools run: the server's repository, database and actor."""

    repo: str | None
    database_url: str | None
    actor: str


# -- the actor of an MCP caller -------------------------------------------------------------

_NOT_ACTOR_CHARS = re.compile(r"[^A-Za-z0-9_.@/+-]+")


def agent_actor(explicit: str | None = None, client_name: str | None = None) -> str:
    """The actor of an MCP caller: always ``agent:<name>``.

    The operator's choice wins over what the client says about itself: ``--actor``
    (prefixed with ``agent:`` when it lacks it), then ``$SCHEMACTL_ACTOR`` when it starts
    with ``agent:``, then the client's name from the MCP handshake, then ``agent:mcp``.
    """
    if explicit:
        name = explicit if explicit.startswith("agent:") else f"agent:{explicit}"
        return _clean_actor(name)
    env = os.environ.get("SCHEMACTL_ACTOR", "")
    if env.startswith("agent:"):
        return _clean_actor(env)
    if client_name:
        return _clean_actor(f"agent:{client_name}")
    return "agent:mcp"


def _clean_actor(name: str) -> str:
    rest = _NOT_ACTOR_CHARS.sub("-", name[len("agent:"):]).strip("-")[:90]
    return f"agent:{rest or 'mcp'}"


# -- calling a tool ---------------------------------------------------------------------------


def _error(command: str, code: str, message: str, hint: str,
           violations: list[Any] | None = None) -> dict[str, Any]:
    return {"ok": False, "command": command, "violations": violations or [],
            "error": {"code": code, "message": message, "hint": hint}}


def _shallow(schema: dict[str, Any]) -> dict[str, Any]:
    """The tool schema with `definition` checked as an object only.

    The engine parses the definition itself and says what is wrong with a hint
    (the same message the CLI gives); here only the arguments' shape is checked.
    """
    props = {k: ({"type": "object"} if k == "definition" else v)
             for k, v in schema.get("properties", {}).items()}
    out = {k: v for k, v in schema.items() if k not in ("$defs", "properties")}
    out["properties"] = props
    return out


def _check_arguments(spec: ToolSpec, arguments: Any, command: str) -> dict[str, Any] | None:
    """An error object when the arguments do not fit the tool's schema, else None."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    if arguments is None:
        return None
    if not isinstance(arguments, Mapping):
        return _error(command, "bad_input",
                      f"the arguments of {spec.name} must be a JSON object, "
                      f"not {type(arguments).__name__}",
                      f"see the input_schema of {spec.name}")
    error = best_match(Draft202012Validator(_shallow(spec.input_schema)).iter_errors(
        dict(arguments)))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "arguments"
    allowed = ", ".join(sorted(spec.input_schema.get("properties", {}))) or "none"
    hint = f"{spec.name} takes: {allowed}"
    if error.validator == "additionalProperties":
        hint += ("; agents get no waivers and no force" if spec.name in
                 ("schema_apply", "schema_rollback", "schema_propose") else "")
    message = error.message
    if len(message) > 300:
        message = message[:300] + "…"
    return _error(command, "bad_input", f"{spec.name}: {where}: {message}", hint)


def call(name: Any, arguments: Any, ctx: ToolContext) -> dict[str, Any]:
    """Run one tool and return its JSON result; never raises.

    Args:
        name: the tool's name (anything an agent sent).
        arguments: the tool's arguments (anything an agent sent).
        ctx: the repository, database and actor the tools run with.

    Returns:
        The object the CLI prints with ``--json``: ``ok``, ``command``, the result's keys,
        ``violations`` and ``error`` (``{code, message, hint}`` when not ok).
    """
    from schemactl.errors import translate
    from schemactl.results import error_json

    specs = {t.name: t for t in tool_specs()}
    if not isinstance(name, str) or name not in specs:
        shown = str(name)[:80]
        return _error("schemactl", "unknown_tool", f"no tool named {shown!r}",
                      f"the tools are: {', '.join(specs)}")
    spec = specs[name]
    command = _COMMANDS[name]
    try:
        size = len(json.dumps(arguments, default=str).encode("utf-8", errors="replace"))
    except (TypeError, ValueError, RecursionError):
        size = MAX_ARGUMENT_BYTES + 1
    if size > MAX_ARGUMENT_BYTES:
        return _error(command, "too_large",
                      f"the arguments of {name} are {size} bytes, over the "
                      f"{MAX_ARGUMENT_BYTES}-byte limit",
                      "send one table's definition at a time; keep rare attributes in a jsonb "
                      "column (SC406)")
    problem = _check_arguments(spec, arguments, command)
    if problem is not None:
        return problem
    args = dict(arguments or {})
    try:
        result = _HANDLERS[name](args, ctx)
        data = result.to_json() if hasattr(result, "to_json") else dict(result)
    except Exception as exc:  # noqa: BLE001 - a tool call never takes the server down
        known = translate(exc)  # an expected error, or one standing for one (ENOSPC...)
        data = error_json(command, known, getattr(known, "violations", None),
                          getattr(known, "result", None)) if known else _error(
            command, "internal", f"{type(exc).__name__}: {str(exc)[:500]}",
            "an unexpected failure; schema_status shows where things stand, and "
            "a retry is safe (every tool is idempotent or refuses)")
        data["error"].setdefault("hint", "see the message; schema_status shows the state")
    # Plain JSON, no password anywhere in it.
    from schemactl.adapters.database import scrub_urls

    text = scrub_urls(json.dumps(data, default=str))
    return dict(json.loads(text))


# -- the handlers: arguments → engine API ----------------------------------------------------


def _validate(args: dict[str, Any], ctx: ToolContext) -> Any:
    from schemactl import api

    definition = args.get("definition")
    if definition is None:
        return api.validate(ctx.repo, actor=ctx.actor)
    if args.get("add_base_fields"):
        from schemactl.model.parsing import add_base_fields, from_dict
        from schemactl.model.repo import SchemaRepo

        config = SchemaRepo.open(ctx.repo).config
        tdef = add_base_fields(from_dict(definition, source="<definition>"),
                               [f.as_column() for f in config.base_fields])
        definition = tdef.to_dict()
    text = json.dumps(definition, ensure_ascii=False, separators=(",", ":"))
    return api.validate(ctx.repo, stdin=text, actor=ctx.actor)


def _propose(args: dict[str, Any], ctx: ToolContext) -> Any:
    from schemactl import api

    return api.propose(ctx.repo, definition=args["definition"],
                       dry_run=bool(args.get("dry_run", False)), actor=ctx.actor,
                       add_base_fields=bool(args.get("add_base_fields", False)),
                       replace=bool(args.get("replace", False)),
                       database_url=ctx.database_url)


def _revert(args: dict[str, Any], ctx: ToolContext) -> Any:
    from schemactl import api

    return api.propose(ctx.repo, revert=str(args["revision"]),
                       dry_run=bool(args.get("dry_run", False)), actor=ctx.actor,
                       database_url=ctx.database_url)


def _plan(args: dict[str, Any], ctx: ToolContext) -> Any:
    from schemactl import api

    return api.plan(ctx.repo, database_url=ctx.database_url)


def _apply(args: dict[str, Any], ctx: ToolContext) -> Any:
    from schemactl import api

    wait = float(args.get("wait_seconds") or 0)
    return api.apply(ctx.repo, database_url=ctx.database_url, actor=ctx.actor,
                     wait=wait if wait > 0 else None)


def _rollback(args: dict[str, Any], ctx: ToolContext) -> Any:
    from schemactl import api

    rollback = getattr(api, "rollback", None)
    if rollback is None:
        return _NotAvailable()
    return rollback(ctx.repo, database_url=ctx.database_url, actor=ctx.actor, to=args["to"])


class _NotAvailable:
    def to_json(self) -> dict[str, Any]:
        return _error("rollback", "not_available",
                      "rollback is not available in this version of schemactl",
                      "ask a human to undo the change")


def _status(args: dict[str, Any], ctx: ToolContext) -> Any:
    from schemactl import api

    return api.status(ctx.repo, database_url=ctx.database_url)


def _history(args: dict[str, Any], ctx: ToolContext) -> Any:
    from schemactl import api

    return api.history(ctx.repo, database_url=ctx.database_url,
                       limit=int(args.get("limit", 50)))


_HANDLERS: dict[str, Callable[[dict[str, Any], ToolContext], Any]] = {
    "schema_validate": _validate, "schema_propose": _propose, "schema_revert": _revert,
    "schema_plan": _plan,
    "schema_apply": _apply, "schema_rollback": _rollback, "schema_status": _status,
    "schema_history": _history,
}
