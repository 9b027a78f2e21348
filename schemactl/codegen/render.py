"""Render a :class:`~schemactl.codegen.planner.Plan` as a readable Alembic revision file.

The file is plain Alembic (it imports only alembic, sqlalchemy and, for vector
columns, pgvector), rendered with the jinja2 template
``schemactl/templates/migration.py.j2``. Everything in it is derived from the plan
and the revision ids, so the same proposal on the same parent gives the same bytes.

Archive naming (what downgrade() does instead of DROP; DESIGN.md, Rollback):
- a table made by revision R moves to ``schemactl_archive.<table>__<R>``;
- a column added by R is copied to ``schemactl_archive.<table>__<column>__<R>``
  (the row key columns, the column, ``revision``, ``archived_at``) and then dropped;
- a name longer than 63 bytes is cut with a hash suffix (:func:`schemactl.model.naming.short_name`);
  when the name is taken (an earlier round trip) ``_1``, ``_2``, ... is appended;
- every move is recorded in ``schemactl_archive.archive_registry`` (revision, kind,
  source_table, source_column, archive_table, row_count, archived_at), and the file's
  module-level ``ARCHIVES`` list names the intended targets.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemactl.codegen.constraint_src import constraint_source
from schemactl.codegen.migration_helpers import helper_source
from schemactl.codegen.pysource import (
    INDENT,
    alter_src,
    call_src,
    column_src,
    create_table_src,
    index_columns_src,
    index_kw_src,
    py,
)
from schemactl.errors import SchemactlError
from schemactl.model.definitions import Column, Index, TableDef
from schemactl.model.naming import ARCHIVE_SCHEMA, short_name
from schemactl.resources import TEMPLATES_DIR

if TYPE_CHECKING:
    from schemactl.codegen.planner import Plan

TEMPLATE = "migration.py.j2"


class RenderError(SchemactlError):
    """The plan holds an operation schemactl never writes into a migration (exit 1)."""

    exit_code = 1
    code = "render"


@dataclass(frozen=True)
class Archive:
    """One archive target of a downgrade: ``{"kind", "from", "to"}``."""

    kind: str
    source: str
    target: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "from": self.source, "to": self.target}


def table_archive_name(table: str, revision: str) -> str:
    """Where a table created by ``revision`` goes on downgrade (before any collision counter)."""
    return short_name(f"{table}__{revision}")


def column_archive_name(table: str, column: str, revision: str) -> str:
    """The archive table holding a column added by ``revision`` (before any counter)."""
    return short_name(f"{table}__{column}__{revision}")


def revision_id(sequence: int, parent: str | None, plan_key: str) -> str:
    """``NNNN_<hash>``: the sequence number in the chain and a hash of parent + content."""
    digest = hashlib.sha256(f"{parent or ''}\n{plan_key}".encode()).hexdigest()[:8]
    return f"{sequence:04d}_{digest}"


def slugify(message: str, limit: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")
    return slug[:limit].rstrip("_") or "change"


# -- Python source of the pieces ------------------------------------------------------


# -- the whole file --------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    """A rendered migration: its revision, file name, source text and archive targets."""

    revision: str
    down_revision: str | None
    filename: str
    source: str
    message: str
    archives: tuple[Archive, ...]


def _body(lines: list[str]) -> str:
    return "\n".join((INDENT + ln) if ln else "" for ln in lines) if lines else INDENT + "pass"


def render_migration(plan: Plan, revision: str, down_revision: str | None,
                     sources: list[str] | None = None) -> Rendered:
    """Render ``plan`` as the text of an Alembic revision file.

    Raises:
        RenderError: the plan holds a destructive or unknown operation (a Drop op, a
            primary key change): such operations never reach a migration file.
    """
    from alembic.operations import ops

    up_pre: list[str] = []       # first in the transaction, before any DDL (row checks)
    up_tx: list[str] = []        # in the migration's transaction
    up_auto: list[str] = []      # in an autocommit block, after the transaction's work
    up_after: list[str] = []     # back in a transaction, after the autocommit block
    down_auto: list[str] = []
    down_tx: list[str] = []
    archives: list[Archive] = []
    helpers: set[str] = set()
    new_tables = set(plan.new_tables)

    for change in plan.changes:
        if change.action == "change_primary_key":
            raise RenderError(f"{change.table}: the primary key cannot change",
                              hint="keep the primary key (rule SC204); add a unique index")

    for top in plan.upgrade_ops.ops:
        if isinstance(top, ops.ExecuteSQLOp) and top.info.get("schemactl") == "extension":
            ext_name = top.info.get("extension", "vector")
            if ext_name == "vector":
                up_tx += ["# pgvector: vector columns need the extension (a no-op when "
                          "installed)."]
            else:
                up_tx += [f"# {ext_name} columns need the extension (a no-op when installed)."]
            up_tx += [f"op.execute({py(str(top.sqltext))})"]
            down_tx.insert(0, f"# The {ext_name} extension stays: other tables may use it.")
        elif isinstance(top, ops.CreateTableOp):
            tdef: TableDef = top.info["definition"]
            up_tx += [f"# New table {tdef.table}: created plainly (nobody uses it yet)."]
            up_tx += create_table_src(tdef)
            target = table_archive_name(tdef.table, revision)
            archives.append(Archive("table", f"public.{tdef.table}", f"{ARCHIVE_SCHEMA}.{target}"))
            down_tx[:0] = [f"_archive_table({py(tdef.table)}, {py(target)})"]
            helpers |= {"lit", "archive_table"}
        elif type(top).__name__ == "OnlineTableRenameOp":
            from schemactl.codegen.online_table import render_calls as table_calls

            renamed: Any = top
            up, down = table_calls(renamed)
            up_tx += [f"# Online: rename table {renamed.table_name} → "
                      f"{renamed.new_table_name}; the old name stays a view until the "
                      "contract", *up]
            down_tx[:0] = down
            helpers.add("online_table")
        elif isinstance(top, ops.ModifyTableOps):
            table = top.table_name
            if table in new_tables:
                for sub in top.ops:
                    if not isinstance(sub, ops.CreateIndexOp):
                        raise RenderError(f"unexpected operation on new table {table}")
                    idx: Index = sub.info["index"]
                    up_tx += call_src("op.create_index", [py(sub.index_name), py(table),
                                                       index_columns_src(idx),
                                                       *index_kw_src(idx)])
                continue
            _render_modify(top, revision, up_tx, up_auto, up_after, down_auto, down_tx,
                           archives, helpers, up_pre)
        else:
            raise RenderError(f"schemactl does not write {type(top).__name__} into a migration",
                              hint="tables are never dropped: deprecate them instead")

    upgrade = ([*up_pre, ""] if up_pre else []) + list(up_tx)
    if up_auto:
        upgrade += ["", "# Outside the transaction: concurrent index builds and validations "
                    "do not block writes.", "with op.get_context().autocommit_block():"]
        upgrade += [INDENT + ln for ln in up_auto]
    if up_after:
        upgrade += [""] + up_after
    downgrade: list[str] = []
    if down_auto:
        downgrade += ["with op.get_context().autocommit_block():"]
        downgrade += [INDENT + ln for ln in down_auto]
    downgrade += down_tx
    if not upgrade:
        raise RenderError("the plan has no operations to write")

    body_up, body_down = _body(upgrade), _body(downgrade)
    helper_src = helper_source(helpers)
    everything = body_up + body_down + helper_src
    imports = []
    if "check" in helpers:
        imports.append("import re")
    if helpers & {"index", "online", "online_table", "check"}:
        imports.append("from typing import Any")
        imports.append("")
    imports += ["import sqlalchemy as sa", "from alembic import op"]
    if "postgresql." in everything:
        imports.append("from sqlalchemy.dialects import postgresql")
    pgvector = [n for n in ("HALFVEC", "SPARSEVEC", "Vector") if f"{n}(" in everything]
    if pgvector:
        imports.append(f"from pgvector.sqlalchemy import {', '.join(pgvector)}")
    imports.append("")
    message = plan.message()
    text = _env().get_template(TEMPLATE).render(
        message=message, revision=revision, down_revision=down_revision,
        sources=sources or [f"dynamic_schema/{t}.yaml" for t in plan.tables],
        summary=[c.describe() + (f" ({c.detail})" if c.detail else "") for c in plan.changes],
        archive_schema=ARCHIVE_SCHEMA, archives=archives, imports=imports,
        upgrade=body_up, downgrade=body_down, helpers=helper_src.rstrip("\n"),
    )
    filename = f"{revision}_{slugify(message)}.py"
    return Rendered(revision=revision, down_revision=down_revision, filename=filename,
                    source=text, message=message, archives=tuple(archives))


def _render_modify(top: Any, revision: str, up_tx: list[str], up_auto: list[str],
                   up_after: list[str], down_auto: list[str], down_tx: list[str],
                   archives: list[Archive], helpers: set[str], up_pre: list[str]) -> None:
    """Render the operations on one existing table (and their reversal)."""
    from alembic.operations import ops

    table = top.table_name
    for sub in top.ops:
        if isinstance(sub, ops.AddColumnOp):
            col: Column = sub.info["column"]
            up_tx += call_src("op.add_column", [py(table), column_src(col), "if_not_exists=True"])
            target = column_archive_name(table, col.name, revision)
            archives.append(Archive("column", f"public.{table}.{col.name}",
                                    f"{ARCHIVE_SCHEMA}.{target}"))
            down_tx.insert(0, f"_archive_column({py(table)}, {py(col.name)}, "
                              f"{py(list(sub.info['key_columns']))}, {py(target)})")
            helpers |= {"lit", "archive_column"}
        elif type(sub).__name__ == "OnlineColumnRenameOp":
            from schemactl.codegen.online_table import render_calls as table_calls

            up, down = table_calls(sub)
            up_tx += [f"# Online: {sub.info['describe']} (indexes and keys follow)", *up]
            down_tx[:0] = down
            helpers.add("online_table")
        elif type(sub).__name__ == "OnlineTableContractOp":
            from schemactl.codegen.online_table import render_calls as table_calls

            up, down = table_calls(sub)
            up_tx += [f"# Online: contract of the rename {sub.view} → {table} (the view goes)",
                      *up]
            down_tx[:0] = down
            helpers.add("online_table")
        elif type(sub).__name__ == "OnlineColumnOp":
            from schemactl.codegen.online import render_calls

            up, down = render_calls(sub, revision)
            up_after += [f"# Online: {sub.info['describe']} (expand, backfill, contract; "
                         "resumable)", *up]
            down_tx[:0] = down
            helpers.add("online")
        elif isinstance(sub, ops.AlterColumnOp):
            up_tx += alter_src(sub)
            down_tx[:0] = alter_src(sub, reverse=True)
        elif isinstance(sub, ops.CreateTableCommentOp):
            up_tx += call_src("op.create_table_comment", [py(table), py(sub.comment)] + (
                [f"existing_comment={py(sub.existing_comment)}"] if sub.existing_comment else []))
            if sub.existing_comment:
                down_tx[:0] = call_src("op.create_table_comment",
                                    [py(table), py(sub.existing_comment),
                                     f"existing_comment={py(sub.comment)}"])
            else:
                down_tx[:0] = call_src("op.drop_table_comment",
                                    [py(table), f"existing_comment={py(sub.comment)}"])
        elif isinstance(sub, ops.DropTableCommentOp):
            up_tx += call_src("op.drop_table_comment",
                           [py(table), f"existing_comment={py(sub.existing_comment)}"])
            down_tx[:0] = call_src("op.create_table_comment",
                                [py(table), py(sub.existing_comment)])
        elif (made := constraint_source(sub, table)) is not None:
            up_pre += made.pre
            up_tx += made.tx
            up_auto += made.auto
            up_after += made.after
            down_tx[:0] = made.down
            helpers |= made.helpers
        elif isinstance(sub, ops.CreateIndexOp) and sub.info.get("attach_constraint"):
            name = str(sub.index_name)
            up_auto += call_src("_create_index_concurrently",
                             [py(name), py(table), py(list(sub.columns)), "unique=True"])
            up_after += call_src("_add_unique_using_index", [py(name), py(table)])
            down_tx[:0] = call_src("op.drop_constraint", [py(name), py(table), "type_='unique'",
                                                       "if_exists=True"])
            helpers |= {"lit", "index", "unique"}
        elif isinstance(sub, ops.CreateIndexOp):
            idx: Index = sub.info["index"]
            up_auto += call_src("_create_index_concurrently",
                             [py(sub.index_name), py(table), index_columns_src(idx),
                              *index_kw_src(idx)])
            down_auto += call_src("op.drop_index", [py(sub.index_name), f"table_name={py(table)}",
                                                 "postgresql_concurrently=True",
                                                 "if_exists=True"])
            helpers |= {"lit", "index"}
        else:
            raise RenderError(
                f"schemactl does not write {type(sub).__name__} on {table} into a migration",
                hint="columns, indexes and constraints are never dropped: deprecate instead")


_ENV: Any = None


def _env() -> Any:
    global _ENV
    if _ENV is None:
        import jinja2

        _ENV = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
            autoescape=False, keep_trailing_newline=True, undefined=jinja2.StrictUndefined,
            trim_blocks=False, lstrip_blocks=False)
        _ENV.filters["pyrepr"] = repr
    return _ENV
