"""The agent tools' published shape: names, descriptions and input JSON Schemas.

One list (:func:`tool_specs`), used by `schemactl tools` and the MCP server; the calls
themselves are in :mod:`schemactl.agents.agent_tools`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from schemactl.results import Result

DRAFT = "https://json-schema.org/draft/2020-12/schema"


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
            "with `nullable: false, backfill: <literal>`; rename a table with top-level "
            "`renamed_from: old` (the old name stays a view until you propose the table "
            "without it); `online_steps` lists their steps "
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
