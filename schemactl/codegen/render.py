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
import io
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemactl.codegen.metadata import default_sql, effective_comment, type_source
from schemactl.errors import RejectedError, SchemactlError
from schemactl.model.definitions import Column, Index, TableDef
from schemactl.model.naming import fk_name, pk_name, short_name, uq_name
from schemactl.resources import TEMPLATES_DIR

if TYPE_CHECKING:
    from schemactl.codegen.planner import Plan

ARCHIVE_SCHEMA = "schemactl_archive"
REGISTRY_TABLE = "archive_registry"
TEMPLATE = "migration.py.j2"
INDENT = "    "


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


def _r(value: Any) -> str:
    """Python literal (repr is deterministic and escapes everything)."""
    return repr(value)


def _column_src(col: Column) -> str:
    args = [_r(col.name), type_source(col.type)]
    default = default_sql(col)
    if default is not None:
        args.append(f"server_default=sa.text({_r(default)})")
    args.append(f"nullable={col.nullable and not col.primary_key}")
    comment = effective_comment(col.comment, col.deprecated)
    if comment:
        args.append(f"comment={_r(comment)}")
    return f"sa.Column({', '.join(args)})"


def _index_kw_src(idx: Index) -> list[str]:
    out = []
    if idx.unique:
        out.append("unique=True")
    if idx.using and idx.using != "btree":
        out.append(f"postgresql_using={_r(idx.using)}")
    if idx.opclass:
        out.append(f"postgresql_ops={_r({c: idx.opclass for c in idx.columns})}")
    return out


def _create_table_src(tdef: TableDef) -> list[str]:
    lines = ["op.create_table(", f"{INDENT}{_r(tdef.table)},"]
    lines += [f"{INDENT}{_column_src(c)}," for c in tdef.columns]
    if tdef.primary_key:
        cols = ", ".join(_r(c) for c in tdef.primary_key)
        lines.append(f"{INDENT}sa.PrimaryKeyConstraint({cols}, name={_r(pk_name(tdef.table))}),")
    for c in tdef.columns:
        if c.references and c.ref_table and c.ref_column:
            lines.append(f"{INDENT}sa.ForeignKeyConstraint([{_r(c.name)}], "
                         f"[{_r(f'{c.ref_table}.{c.ref_column}')}], "
                         f"name={_r(fk_name(tdef.table, c.name, c.ref_table))}),")
    for c in tdef.columns:
        if c.unique and not c.primary_key:
            lines.append(f"{INDENT}sa.UniqueConstraint({_r(c.name)}, "
                         f"name={_r(uq_name(tdef.table, c.name))}),")
    comment = effective_comment(tdef.comment, tdef.deprecated)
    if comment:
        lines.append(f"{INDENT}comment={_r(comment)},")
    lines.append(")")
    return lines


def _type_of(col: Column | None) -> str:
    return type_source(col.type) if col else "None"


def _alter_src(op: Any, reverse: bool = False) -> list[str]:
    old: Column = op.info["old"]
    new: Column = op.info["new"]
    before, after = (new, old) if reverse else (old, new)
    args = [_r(op.table_name), _r(op.column_name)]
    args.append(f"existing_type={_type_of(before)}")
    if before.type != after.type:
        args.append(f"type_={_type_of(after)}")
    b_null = before.nullable and not before.primary_key
    a_null = after.nullable and not after.primary_key
    if b_null != a_null:
        args.append(f"nullable={a_null}")
    else:
        args.append(f"existing_nullable={b_null}")
    b_def, a_def = default_sql(before), default_sql(after)
    if b_def != a_def:
        args.append(f"server_default={'sa.text(' + _r(a_def) + ')' if a_def else 'None'}")
    elif b_def is not None:
        args.append(f"existing_server_default=sa.text({_r(b_def)})")
    b_com = effective_comment(before.comment, before.deprecated)
    a_com = effective_comment(after.comment, after.deprecated)
    if b_com != a_com:
        args.append(f"comment={_r(a_com)}")
        if b_com:
            args.append(f"existing_comment={_r(b_com)}")
    elif b_com:
        args.append(f"existing_comment={_r(b_com)}")
    return _call("op.alter_column", args)


def _call(fn: str, args: list[str], width: int = 92) -> list[str]:
    one = f"{fn}({', '.join(args)})"
    if len(one) + 4 <= width:
        return [one]
    return [f"{fn}(", *[f"{INDENT}{a}," for a in args], ")"]


# -- helpers written into a migration only when it uses them ---------------------------

_HELPER_LIT = '''
def _lit(value: str) -> str:
    """A SQL string literal (the names here passed the identifier rule; quotes doubled anyway)."""
    return "'" + value.replace("'", "''") + "'"
'''

_REGISTRY_SQL = f"""  CREATE SCHEMA IF NOT EXISTS {ARCHIVE_SCHEMA};
  CREATE TABLE IF NOT EXISTS {ARCHIVE_SCHEMA}.{REGISTRY_TABLE} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    revision text NOT NULL,
    kind text NOT NULL,
    source_schema text NOT NULL DEFAULT 'public',
    source_table text NOT NULL,
    source_column text,
    archive_schema text NOT NULL DEFAULT '{ARCHIVE_SCHEMA}',
    archive_table text NOT NULL,
    row_count bigint,
    archived_at timestamptz NOT NULL DEFAULT now()
  );"""

_HELPER_ARCHIVE_TABLE = f'''
def _archive_table(table: str, target: str) -> None:
    """Move public.<table> into the archive schema with its rows, indexes and constraints.

    Never DROP. Index names are per schema, so the table's indexes are renamed first (an
    earlier archived copy cannot collide); the registry records where the table went.
    """
    op.execute(f"""
DO $$
DECLARE
  base text := {{_lit(target)}};
  target text := base;
  n int := 1;
  moved bigint;
  idx text;
BEGIN
{_REGISTRY_SQL}
  WHILE to_regclass(format('%I.%I', {{_lit(ARCHIVE_SCHEMA)}}, target)) IS NOT NULL
        OR to_regclass(format('public.%I', target)) IS NOT NULL LOOP
    target := left(base, 63 - length('_' || n)) || '_' || n;
    n := n + 1;
  END LOOP;
  EXECUTE format('SELECT count(*) FROM public.%I', {{_lit(table)}}) INTO moved;
  FOR idx IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE i.indrelid = format('public.%I', {{_lit(table)}})::regclass LOOP
    EXECUTE format('ALTER INDEX public.%I RENAME TO %I', idx,
                   left(idx, 50) || '_' || substr(md5(target || '.' || idx), 1, 12));
  END LOOP;
  EXECUTE format('ALTER TABLE public.%I RENAME TO %I', {{_lit(table)}}, target);
  EXECUTE format('ALTER TABLE public.%I SET SCHEMA %I', target, {{_lit(ARCHIVE_SCHEMA)}});
  INSERT INTO {ARCHIVE_SCHEMA}.{REGISTRY_TABLE}
    (revision, kind, source_table, archive_table, row_count)
    VALUES ({{_lit(revision)}}, 'table', {{_lit(table)}}, target, moved);
END $$""")
'''

_HELPER_ARCHIVE_COLUMN = f'''
def _archive_column(table: str, column: str, key: list[str], target: str) -> None:
    """Copy public.<table>.<column> into an archive table keyed by the row key, then drop it.

    The archive table holds the key columns, the column, the revision and the time; the
    copy and the DROP COLUMN run in one transaction, so no value can be lost in between.
    """
    keys = ", ".join('"' + k.replace('"', '""') + '"' for k in key)
    rev_col = "revision" if column != "revision" else "archive_revision"
    at_col = "archived_at" if column != "archived_at" else "archive_archived_at"
    op.execute(f"""
DO $$
DECLARE
  base text := {{_lit(target)}};
  target text := base;
  n int := 1;
  copied bigint;
BEGIN
{_REGISTRY_SQL}
  WHILE to_regclass(format('%I.%I', {{_lit(ARCHIVE_SCHEMA)}}, target)) IS NOT NULL LOOP
    target := left(base, 63 - length('_' || n)) || '_' || n;
    n := n + 1;
  END LOOP;
  EXECUTE format('CREATE TABLE %I.%I AS SELECT {{keys}}, %I, %L::text AS %I, now() AS %I '
                 'FROM public.%I', {{_lit(ARCHIVE_SCHEMA)}}, target, {{_lit(column)}},
                 {{_lit(revision)}}, {{_lit(rev_col)}}, {{_lit(at_col)}}, {{_lit(table)}});
  EXECUTE format('SELECT count(*) FROM %I.%I', {{_lit(ARCHIVE_SCHEMA)}}, target) INTO copied;
  EXECUTE format('ALTER TABLE %I.%I ADD PRIMARY KEY ({{keys}})', {{_lit(ARCHIVE_SCHEMA)}}, target);
  INSERT INTO {ARCHIVE_SCHEMA}.{REGISTRY_TABLE}
    (revision, kind, source_table, source_column, archive_table, row_count)
    VALUES ({{_lit(revision)}}, 'column', {{_lit(table)}}, {{_lit(column)}}, target, copied);
  EXECUTE format('ALTER TABLE public.%I DROP COLUMN %I', {{_lit(table)}}, {{_lit(column)}});
END $$""")
'''

_HELPER_INDEX = '''
def _create_index_concurrently(name: str, table: str, columns: list[str], **kw: Any) -> None:
    """CREATE INDEX CONCURRENTLY IF NOT EXISTS (inside an autocommit block: no write lock).

    A retry is safe: an INVALID leftover of an earlier failed build is dropped first (IF NOT
    EXISTS would keep it), and a build that fails now drops its invalid index before the
    error goes up.
    """
    op.execute(f"""
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_index i
             WHERE i.indexrelid = to_regclass(format('public.%I', {_lit(name)}))
               AND NOT i.indisvalid) THEN
    EXECUTE format('DROP INDEX public.%I', {_lit(name)});
  END IF;
END $$""")
    try:
        op.create_index(name, table, columns, postgresql_concurrently=True, if_not_exists=True,
                        **kw)
    except Exception:
        op.execute(f'DROP INDEX CONCURRENTLY IF EXISTS public."{name}"')
        raise
'''

_HELPER_FK = '''
def _add_foreign_key_not_valid(name: str, table: str, column: str, ref_table: str,
                               ref_column: str) -> None:
    """ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID, unless it exists.

    NOT VALID skips the scan of existing rows under the lock; VALIDATE CONSTRAINT runs
    afterwards in its own transaction and does not block writes.
    """
    op.execute(f"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = {_lit(name)}
                 AND conrelid = format('public.%I', {_lit(table)})::regclass) THEN
    EXECUTE format('ALTER TABLE public.%I ADD CONSTRAINT %I FOREIGN KEY (%I) '
                   'REFERENCES public.%I (%I) NOT VALID', {_lit(table)}, {_lit(name)},
                   {_lit(column)}, {_lit(ref_table)}, {_lit(ref_column)});
  END IF;
END $$""")
'''

_HELPER_UNIQUE = '''
def _add_unique_using_index(name: str, table: str) -> None:
    """Attach a unique index built CONCURRENTLY as the table's unique constraint."""
    op.execute(f"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = {_lit(name)}
                 AND conrelid = format('public.%I', {_lit(table)})::regclass) THEN
    EXECUTE format('ALTER TABLE public.%I ADD CONSTRAINT %I UNIQUE USING INDEX %I',
                   {_lit(table)}, {_lit(name)}, {_lit(name)});
  END IF;
END $$""")
'''


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
            up_tx += [f"op.execute({_r(str(top.sqltext))})"]
            down_tx.insert(0, f"# The {ext_name} extension stays: other tables may use it.")
        elif isinstance(top, ops.CreateTableOp):
            tdef: TableDef = top.info["definition"]
            up_tx += [f"# New table {tdef.table}: created plainly (nobody uses it yet)."]
            up_tx += _create_table_src(tdef)
            target = table_archive_name(tdef.table, revision)
            archives.append(Archive("table", f"public.{tdef.table}", f"{ARCHIVE_SCHEMA}.{target}"))
            down_tx[:0] = [f"_archive_table({_r(tdef.table)}, {_r(target)})"]
            helpers |= {"lit", "archive_table"}
        elif isinstance(top, ops.ModifyTableOps):
            table = top.table_name
            if table in new_tables:
                for sub in top.ops:
                    if not isinstance(sub, ops.CreateIndexOp):
                        raise RenderError(f"unexpected operation on new table {table}")
                    idx: Index = sub.info["index"]
                    up_tx += _call("op.create_index", [_r(sub.index_name), _r(table),
                                                       _r(list(idx.columns)),
                                                       *_index_kw_src(idx)])
                continue
            _render_modify(top, revision, up_tx, up_auto, up_after, down_auto, down_tx,
                           archives, helpers)
        else:
            raise RenderError(f"schemactl does not write {type(top).__name__} into a migration",
                              hint="tables are never dropped: deprecate them instead")

    upgrade = list(up_tx)
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
    helper_src = "\n\n".join(h.strip("\n") + "\n" for key, h in (("lit", _HELPER_LIT),
                                          ("archive_table", _HELPER_ARCHIVE_TABLE),
                                          ("archive_column", _HELPER_ARCHIVE_COLUMN),
                                          ("index", _HELPER_INDEX),
                                          ("fk", _HELPER_FK),
                                          ("unique", _HELPER_UNIQUE),
                                          ("online", _online_helper())) if key in helpers)
    everything = body_up + body_down + helper_src
    imports = []
    if helpers & {"index", "online"}:
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
                   archives: list[Archive], helpers: set[str]) -> None:
    """Render the operations on one existing table (and their reversal)."""
    from alembic.operations import ops

    table = top.table_name
    for sub in top.ops:
        if isinstance(sub, ops.AddColumnOp):
            col: Column = sub.info["column"]
            up_tx += _call("op.add_column", [_r(table), _column_src(col), "if_not_exists=True"])
            target = column_archive_name(table, col.name, revision)
            archives.append(Archive("column", f"public.{table}.{col.name}",
                                    f"{ARCHIVE_SCHEMA}.{target}"))
            down_tx.insert(0, f"_archive_column({_r(table)}, {_r(col.name)}, "
                              f"{_r(list(sub.info['key_columns']))}, {_r(target)})")
            helpers |= {"lit", "archive_column"}
        elif type(sub).__name__ == "OnlineColumnOp":
            from schemactl.codegen.online import render_calls

            up, down = render_calls(sub, revision)
            up_after += [f"# Online: {sub.info['describe']} (expand, backfill, contract; "
                         "resumable)", *up]
            down_tx[:0] = down
            helpers.add("online")
        elif isinstance(sub, ops.AlterColumnOp):
            up_tx += _alter_src(sub)
            down_tx[:0] = _alter_src(sub, reverse=True)
        elif isinstance(sub, ops.CreateTableCommentOp):
            up_tx += _call("op.create_table_comment", [_r(table), _r(sub.comment)] + (
                [f"existing_comment={_r(sub.existing_comment)}"] if sub.existing_comment else []))
            if sub.existing_comment:
                down_tx[:0] = _call("op.create_table_comment",
                                    [_r(table), _r(sub.existing_comment),
                                     f"existing_comment={_r(sub.comment)}"])
            else:
                down_tx[:0] = _call("op.drop_table_comment",
                                    [_r(table), f"existing_comment={_r(sub.comment)}"])
        elif isinstance(sub, ops.DropTableCommentOp):
            up_tx += _call("op.drop_table_comment",
                           [_r(table), f"existing_comment={_r(sub.existing_comment)}"])
            down_tx[:0] = _call("op.create_table_comment",
                                [_r(table), _r(sub.existing_comment)])
        elif isinstance(sub, ops.CreateForeignKeyOp):
            name = str(sub.constraint_name)
            up_tx += _call("_add_foreign_key_not_valid",
                           [_r(name), _r(table), _r(sub.local_cols[0]), _r(sub.referent_table),
                            _r(sub.remote_cols[0])])
            validate = f"ALTER TABLE public.{_q(table)} VALIDATE CONSTRAINT {_q(name)}"
            up_auto.append(f"op.execute({_r(validate)})")
            down_tx[:0] = _call("op.drop_constraint", [_r(name), _r(table),
                                                       "type_='foreignkey'", "if_exists=True"])
            helpers |= {"lit", "fk"}
        elif isinstance(sub, ops.CreateIndexOp) and sub.info.get("attach_constraint"):
            name = str(sub.index_name)
            up_auto += _call("_create_index_concurrently",
                             [_r(name), _r(table), _r(list(sub.columns)), "unique=True"])
            up_after += _call("_add_unique_using_index", [_r(name), _r(table)])
            down_tx[:0] = _call("op.drop_constraint", [_r(name), _r(table), "type_='unique'",
                                                       "if_exists=True"])
            helpers |= {"lit", "index", "unique"}
        elif isinstance(sub, ops.CreateIndexOp):
            idx: Index = sub.info["index"]
            up_auto += _call("_create_index_concurrently",
                             [_r(sub.index_name), _r(table), _r(list(idx.columns)),
                              *_index_kw_src(idx)])
            down_auto += _call("op.drop_index", [_r(sub.index_name), f"table_name={_r(table)}",
                                                 "postgresql_concurrently=True",
                                                 "if_exists=True"])
            helpers |= {"lit", "index"}
        else:
            raise RenderError(
                f"schemactl does not write {type(sub).__name__} on {table} into a migration",
                hint="columns, indexes and constraints are never dropped: deprecate instead")


def _online_helper() -> str:
    from schemactl.codegen.online import helper_source

    return helper_source()


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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


# -- the SQL a migration runs -----------------------------------------------------------


def offline_sql(source: str, filename: str = "<migration>", downgrade: bool = False) -> str:
    """The SQL a migration file's upgrade (or downgrade) runs, rendered offline.

    The file is executed in a fresh namespace against Alembic's offline (``--sql``) context
    for PostgreSQL: the statements are exactly those `apply` sends, minus Alembic's own
    version-table bookkeeping. Nothing is written and no database is needed.

    Raises:
        RejectedError: the file cannot be compiled or its upgrade fails offline.
    """
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    buf = io.StringIO()
    ctx = MigrationContext.configure(
        dialect_name="postgresql", dialect_opts={"paramstyle": "named"},
        opts={"as_sql": True, "output_buffer": buf, "literal_binds": True,
              "transaction_per_migration": True})
    namespace: dict[str, Any] = {"__name__": "schemactl_migration", "__file__": filename}
    try:
        code = compile(source, filename, "exec")
        with Operations.context(ctx):
            exec(code, namespace)  # noqa: S102 - our own rendered migration, never user code
            ctx.impl.emit_begin()
            namespace["downgrade" if downgrade else "upgrade"]()
            ctx.impl.emit_commit()
    except SchemactlError:
        raise
    except Exception as exc:  # noqa: BLE001 - report any failure of the rendered file
        raise RejectedError(f"the generated migration does not render offline: {exc}",
                            code="render") from exc
    return _tidy_sql(buf.getvalue())


def _tidy_sql(sql: str) -> str:
    # Offline output opens with a COMMIT right after BEGIN when the file starts with an
    # autocommit block; drop that empty pair so the plan reads cleanly.
    sql = re.sub(r"BEGIN;\s*\n\s*COMMIT;\s*\n", "", sql)
    return sql.strip() + "\n"
