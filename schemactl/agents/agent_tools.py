"""The agent tools: one list, used by `schemactl tools` and the MCP server.

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
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from schemactl.results import Result

DRAFT = "https://json-schema.org/draft/2020-12/schema"

# The whole arguments object of one call; the definition itself is bounded by
# [limits] max_definition_bytes through SC406, like a file.
MAX_ARGUMENT_BYTES = 1024 * 1024

_COMMANDS = {"schema_validate": "validate", "schema_propose": "propose",
             "schema_revert": "propose", "schema_plan": "plan",
             "schema_apply": "apply", "schema_rollback": "rollback", "schema_status": "status",
             "schema_history": "history"}


@dataclass(frozen=True)
class ToolSpec:
    """One tool: what `tools --json` publishes and the MCP server lists."""

    name: str
    description: str
    input_schema: dict[str, Any]
    read_only: bool = False
    idempotent: bool = True
    destructive: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "input_schema": self.input_schema}


@dataclass(frozen=True)
class ToolContext:
    """Where and as whom tools run: the server's repository, database and actor."""

    repo: str | None
    database_url: str | None
    actor: str


@dataclass(frozen=True)
class ToolsResult(Result):
    """`schemactl tools`: the tool definitions."""

    tools: list[dict[str, Any]] = field(default_factory=list)


# -- input schemas ------------------------------------------------------------------------


@cache
def _definition_parts() -> tuple[dict[str, Any], dict[str, Any]]:
    """The published definition schema split into (schema of `definition`, its $defs)."""
    from schemactl.api import definition_schema

    schema = definition_schema()
    defs = dict(schema.pop("$defs", {}))  # type: ignore[call-overload]
    for key in ("$schema", "$id", "title"):
        schema.pop(key, None)
    schema["description"] = (
        "The whole desired state of one dynamic table (the content of "
        "dynamic_schema/<table>.yaml), as a JSON object. Send every column the table keeps: "
        "a column left out is a removed column (refused by SC102).")
    return schema, defs


def _object(properties: dict[str, Any], required: list[str] | None = None,
            with_definition: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"$schema": DRAFT, "type": "object", "properties": properties,
                              "additionalProperties": False}
    if required:
        schema["required"] = required
    if with_definition:
        # `$ref`s of the definition schema point at #/$defs: hoist them to the root.
        schema["$defs"] = _definition_parts()[1]
    return schema


_ADD_BASE = {"type": "boolean", "default": False,
             "description": "Insert the configured base fields (id, created_at, updated_at, "
                            "is_deleted, created_by by default) the definition lacks, at its "
                            "start, so you can send only your own columns."}


@cache
def tool_specs() -> tuple[ToolSpec, ...]:
    """Every agent tool, in the order an agent uses them."""
    definition = _definition_parts()[0]
    return (
        ToolSpec(
            "schema_validate",
            "Check a dynamic table definition against the format and every safety rule, "
            "offline (no database, nothing written). Returns `violations`, each with `rule`, "
            "`message` and a `hint` saying how to make the change safely; ok is false when "
            "an error remains. Agents get no waivers. Without `definition` it checks the "
            "repository's uncommitted dynamic_schema/ against git HEAD. Call it before "
            "schema_propose.",
            _object({"definition": definition, "add_base_fields": _ADD_BASE},
                    with_definition=True),
            read_only=True),
        ToolSpec(
            "schema_propose",
            "Propose a change to one dynamic table: validate the definition, write "
            "dynamic_schema/<table>.yaml and its generated migration, and commit both to git "
            "(`migration: {revision, path, sql}`, `commit`). Nothing touches the database. "
            "Refuses (ok false, `violations` with hints) when a safety rule rejects the "
            "change, e.g. dropping a column or table, a bare rename, NOT NULL without a "
            "default. Online changes are proposed like any other: rename a column with "
            "`{name: new, type: T, renamed_from: old}`, retype along the whitelist "
            "(smallint→integer→bigint→numeric, real→double precision, numeric widening, "
            "varchar(n)→varchar(m<n) or text→varchar(n) when every value fits), tighten "
            "with `nullable: false, backfill: <literal>`; `online_steps` lists their steps "
            "with the lock each takes (read it with dry_run). Idempotent: proposing a "
            "definition identical to HEAD returns ok with no migration and no commit. "
            "`dry_run` shows the migration and its SQL without writing. With `replace` "
            "the definition replaces the head migration instead of following it (the way "
            "out of a proposal that failed at apply, e.g. a unique index over duplicate "
            "rows): allowed only when no database has applied that migration (the audit "
            "file and every configured database are asked; otherwise code `applied`, "
            "nothing changed). The result names it in `replaced`.",
            _object({"definition": definition, "add_base_fields": _ADD_BASE,
                     "dry_run": {"type": "boolean", "default": False,
                                 "description": "Show the plan and its SQL; write nothing."},
                     "replace": {"type": "boolean", "default": False,
                                 "description": "Replace the head migration, which no "
                                                "database has applied, instead of adding "
                                                "one after it."}},
                    required=["definition"], with_definition=True)),
        ToolSpec(
            "schema_revert",
            "Take back the head migration `revision` that no database has applied (a "
            "proposal that fails at every apply, or one you no longer want): its migration "
            "file goes and its table's definition comes back as before the proposal, in "
            "one git commit (`reverted`, `commit`). Nothing touches a database. Refused "
            "with code `applied` (nothing changed) when the audit file or a configured "
            "database says it is, or may be, applied: roll it back with schema_rollback "
            "instead. Idempotent: a revision already reverted returns ok with no commit. "
            "Only the head can be reverted (`not_head`); take it from schema_status.",
            _object({"revision": {"type": "string", "minLength": 1, "maxLength": 64,
                                  "pattern": "^[A-Za-z0-9_]+$",
                                  "description": "The head migration's revision."},
                     "dry_run": {"type": "boolean", "default": False,
                                 "description": "Say what would happen; write nothing."}},
                    required=["revision"])),
        ToolSpec(
            "schema_plan",
            "Show the SQL schema_apply would run against the database: `pending` revisions "
            "and `sql`. Read only. Fails (ok false) when the database cannot be reached or "
            "is at a revision git does not know.",
            _object({}), read_only=True),
        ToolSpec(
            "schema_apply",
            "Apply the pending migrations to the database: lock, drift check, backup, "
            "upgrade, verify, audit entry and git commit, all recorded under your agent "
            "name. Idempotent: with nothing pending it applies nothing. Refused with error "
            "code `policy` (nothing changed) when schemactl.toml sets agent_apply = "
            "\"never\", or under \"safe\" when the change does not pass every rule without "
            "a waiver. Fails with code `conflict` when another apply holds the lock (unless "
            "`wait_seconds`) or the database drifted from git. An online change (rename, "
            "retype, NOT NULL with backfill) runs whole in this call: expand, batched "
            "backfill, then the short contract; old readers keep working until the contract. "
            "If the call dies mid-way, call schema_apply again: it resumes after the last "
            "committed batch. Fails with code `online_stopped` (nothing changed, rows named) "
            "when a value does not fit the new type.",
            _object({"wait_seconds": {
                "type": "number", "minimum": 0, "maximum": 600, "default": 0,
                "description": "Wait up to this long for another apply to finish instead of "
                               "failing at once with a conflict (0: do not wait)."}})),
        ToolSpec(
            "schema_rollback",
            "Roll the database back to revision `to`, undoing every dynamic migration after "
            "it, without losing data: tables and columns are moved to the archive schema, "
            "never dropped. Takes a backup and writes an audit entry and a git commit per "
            "undone migration. Idempotent: when the database is already at `to` nothing "
            "happens (which is why `to` is required: a retried call never undoes one "
            "migration too many), except that an online change whose apply died mid-way is "
            "undone (the old shape back with every value, the migration pending again); "
            "take `to` from schema_status or schema_history. Refused "
            "with error code `policy` when schemactl.toml sets agent_apply = \"never\"; "
            "fails for the core schema's migration or a hand-written one, and with "
            "`conflict` when `to` is not behind the database's revision or another apply "
            "holds the lock. Agents never restore backups or force.",
            _object({"to": {"type": "string", "minLength": 1, "maxLength": 64,
                            "pattern": "^[A-Za-z0-9_]+$",
                            "description": "The revision to leave the database at (the "
                                           "parent of the migration to undo)."}},
                    required=["to"]),
            destructive=True),
        ToolSpec(
            "schema_status",
            "Where things stand: `git_head`, the database's `db_revision`, `pending` "
            "migrations, `drift` between the live schema and git, the last backup, and any "
            "interrupted apply. Read only.",
            _object({}), read_only=True),
        ToolSpec(
            "schema_history",
            "Audit entries, newest first: who (`actor`) applied or rolled back which "
            "revision, when, from which commit, with which status. Read only.",
            _object({"limit": {"type": "integer", "minimum": 1, "maximum": 500,
                               "default": 50, "description": "How many entries."}}),
            read_only=True),
    )


def tool_definitions() -> list[dict[str, Any]]:
    """``[{name, description, input_schema}]`` for any agent framework's function calling."""
    import copy

    # Copies: the specs are cached and shared.
    return [copy.deepcopy(t.to_json()) for t in tool_specs()]


def tools_result() -> ToolsResult:
    """The result of `schemactl tools`."""
    return ToolsResult(command="tools", tools=tool_definitions())


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
