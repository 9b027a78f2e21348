"""`schemactl rollback --restore-backup ID`: back to the pre-change dump an apply took.

The tables the undone revisions touched come back from the backup through the apply
pipeline (lock, drift check, a fresh backup, audit, git commit). Their current versions
move to the archive first (no DROP here either); the restore refuses when rows were
written to them since the dump, unless forced, and when tables outside it reference them.
Git follows the database as for a downgrade (:func:`schemactl.pipeline.rollback.undo_files`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schemactl.adapters import migrator
from schemactl.codegen.sqltext import REGISTRY_SQL, archive_table_sql, sql_literal
from schemactl.errors import BadInputError, ConflictError, RejectedError
from schemactl.model.naming import DYNAMIC_SCHEMA, short_name
from schemactl.model.repo import SchemaRepo
from schemactl.pipeline import archive, scope
from schemactl.pipeline.rollback import (
    RollbackResult,
    check_rollbackable,
    commit_paths,
    expect_git_head,
    tables_of,
    undo_files,
)

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy.engine import Connection

    from schemactl.adapters.database import Target
    from schemactl.pipeline.operation import Guard, Plan, Progress


def _marks(path: str) -> dict[str, Any] | None:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    marks = data.get("marks") if isinstance(data, dict) else None
    return marks if isinstance(marks, dict) and marks.get("txid") is not None else None


def rows_written_since(conn: psycopg.Connection[Any], marks: dict[str, Any], tables: set[str],
                       schema: str) -> list[dict[str, Any]]:
    """Tables among ``tables`` with rows written after the backup's marks.

    A table counts as written when its row count changed, or a row's ``xmin`` is not older
    than the backup's transaction id (both ages taken against the same current xid, so
    wraparound does not matter), or it was created since and holds rows.
    """
    from psycopg import sql

    xid32 = int(marks["txid"]) % (1 << 32)
    counts = marks.get("row_counts") or {}
    out = []
    for table in sorted(tables):
        reg = conn.execute("select to_regclass(format('%%I.%%I', %s::text, %s::text))",
                           (schema, table)).fetchone()
        if not reg or not reg[0]:
            continue
        row = conn.execute(sql.SQL(
            "select count(*), count(*) filter (where age(xmin) <= age(%s::text::xid)) "
            "from {}.{}").format(sql.Identifier(schema), sql.Identifier(table)),
            (str(xid32),)).fetchone()
        now, newer = (int(row[0]), int(row[1])) if row else (0, 0)
        then = counts.get(table)
        if (then is None and now > 0) or (then is not None and (now != then or newer)):
            out.append({"table": table, "rows_at_backup": then, "rows_now": now,
                        "rows_written_since": newer if then is not None else now})
    return out


def _references_into(conn: psycopg.Connection[Any], tables: set[str], schema: str) -> list[str]:
    rows = conn.execute(
        "select cl.relname, cr.relname, k.conname from pg_constraint k "
        "join pg_class cl on cl.oid = k.conrelid join pg_namespace nl on nl.oid = cl.relnamespace "
        "join pg_class cr on cr.oid = k.confrelid "
        "join pg_namespace nr on nr.oid = cr.relnamespace "
        "where k.contype = 'f' and nl.nspname = %s and nr.nspname = %s "
        "and cr.relname = any(%s) and not cl.relname = any(%s)",
        (schema, schema, list(tables), list(tables))).fetchall()
    return [f"{r[0]} ({r[2]} → {r[1]})" for r in rows]


def _move_sql(tables: list[str], revision: str, schema: str) -> str:
    """SQL moving the current ``tables`` into the archive (never a DROP), registered.

    Revision ids come from editable files: every value enters the script as a literal.
    """
    lit = sql_literal
    parts = [REGISTRY_SQL.strip()]
    for table in tables:
        base = short_name(f"{table}__{revision}__restored")
        parts.append(archive_table_sql(schema=lit(schema), table=lit(table), target=lit(base),
                                       revision=lit(revision), registry=False,
                                       skip_missing=True) + ";")
    return "\n".join(parts) + "\n"


def _restore_set(repo: SchemaRepo, b: Any, undone: list[str], tables: set[str]
                 ) -> tuple[set[str], set[str]]:
    """(the tables a restore replaces, those of them the undone revisions created), after
    checking that the backup holds the data the others need.

    Undoing ``undone`` replaces the tables their proposals changed and those their
    operations touched; a table they created has no data in the backup (it moves to the
    archive). A scoped backup must hold the data of every other one.

    Raises:
        BadInputError: the backup lacks the data of a table the restore needs (exit 2).
    """
    from schemactl.pipeline import backup

    schema = DYNAMIC_SCHEMA
    up = scope.of_revisions(repo, list(reversed(undone)))
    mine = {t.split(".", 1)[1] for t in up.tables if t.startswith(f"{schema}.")}
    created = {t.split(".", 1)[1] for t in up.created if t.startswith(f"{schema}.")}
    out = tables | mine
    if b.scope != "full":
        if up.full:
            raise BadInputError(
                f"backup {b.id} holds the data of {', '.join(b.tables) or 'no table'} only, "
                f"and undoing {', '.join(undone)} may need any table: {up.full}",
                code="backup_lacks_data",
                hint="roll back with the migrations' downgrade (`schemactl rollback`), or "
                     "restore a full backup")
        lacking = backup.missing_data(b, out - created, schema)
        if lacking:
            raise BadInputError(
                f"backup {b.id} holds no data of {', '.join(lacking)}, which undoing "
                f"{', '.join(undone)} needs (it holds {', '.join(b.tables) or 'no table'})",
                code="backup_lacks_data",
                hint="restore an older backup that holds them, or roll back with the "
                     "migrations' downgrade (`schemactl rollback --to`)")
    return out, created


def restore_plan(repo: SchemaRepo, target: Target, backup_id: str, force: bool,
                 archived: list[dict[str, str]], written: list[dict[str, Any]],
                 restored: list[str] | None = None) -> Plan:
    """The pipeline plan bringing the database back to a backup's ``revision_before``."""
    from schemactl.adapters.database import connect
    from schemactl.pipeline import backup
    from schemactl.pipeline.operation import Operation

    schema = DYNAMIC_SCHEMA
    b = backup.get_backup(repo, backup_id)
    back_to = b.revision_before

    def plan(current: str | None) -> Operation | None:
        current = expect_git_head(repo, current)
        if current == back_to:
            return None
        chain = migrator.revisions_upto(repo, current)
        if back_to is None:
            raise RejectedError(f"backup {backup_id} was taken before the core schema existed: "
                                "schemactl never rolls the core schema back",
                                code="core_protected")
        if back_to not in chain:
            raise ConflictError(f"backup {backup_id} was taken at {back_to}, which is not an "
                                f"ancestor of the database's revision {current}",
                                code="not_ancestor", hint="pick a backup of this line "
                                "(`schemactl backups list`)")
        undone = list(reversed(chain[chain.index(back_to) + 1:]))
        for rev in undone:
            check_rollbackable(repo, rev)
        files = undo_files(repo, undone)
        tables, created = _restore_set(repo, b, undone, tables_of(files))
        if restored is not None:
            restored[:] = sorted(t for t in tables - created if b.holds(f"{schema}.{t}"))
        marks = _marks(b.manifest_path)
        with connect(target) as conn:
            if marks is None:
                written[:] = [{"table": t, "rows_at_backup": None, "rows_now": None,
                               "rows_written_since": None} for t in sorted(tables)]
            else:
                written[:] = rows_written_since(conn, marks, tables, schema)
            refs = _references_into(conn, tables, schema)
        if refs:
            raise RejectedError(
                f"tables outside the restore reference {', '.join(sorted(tables))}: "
                f"{'; '.join(refs)}", code="referenced",
                hint="roll back one revision at a time instead (`schemactl rollback`)")
        if written and not force:
            what = "; ".join(f"{w['table']}: {w['rows_written_since']} row(s) written"
                             if w["rows_now"] is not None else f"{w['table']}: unknown"
                             for w in written)
            raise RejectedError(
                f"rows were written to the affected tables since backup {backup_id} "
                f"({what}); restoring it would set them aside. Nothing was changed",
                code="rows_written", details={"rows_written": written},
                hint="roll back with the migrations' downgrade instead (`schemactl rollback "
                     "--to`), or pass --force: the current tables then move to "
                     "schemactl_archive and a fresh backup is taken first")

        def migrate(conn: Connection) -> None:
            from schemactl.adapters.database import connect as connect_

            before = archive.snapshot(archive.sqlalchemy_query(conn), schema)
            conn.commit()
            lock_ms = repo.config.lock_timeout_ms
            backup.restore_tables(
                repo, backup_id, target, tables,
                before_sql=f"SET lock_timeout = '{int(lock_ms)}ms';\n"
                           + _move_sql(sorted(tables), current, schema),
                after_sql="UPDATE public.alembic_version SET version_num = "
                          f"{sql_literal(back_to)} WHERE version_num = "
                          f"{sql_literal(current)};")
            with connect_(target) as raw:
                after = archive.snapshot(archive.cursor_query(raw), schema)
            archived[:] = archive.diff(before, after, schema)

        return Operation(action="rollback", revisions=undone, revision_target=back_to,
                         migrate=migrate, verify_git_rev=None,
                         details={"rolled_back": undone[0], "restored_backup": backup_id,
                                  "forced": force, "rows_written": written,
                                  "archived": archived},
                         commit_paths=commit_paths(repo, files), files=files,
                         touches=scope.of_tables(sorted(tables), schema, undone))

    return plan


def restore_backup(repo: SchemaRepo, target: Target, actor: str, backup_id: str, *,
                   force: bool = False, wait: float | None = None,
                   progress: Progress | None = None,
                   guard: Guard | None = None) -> RollbackResult:
    """Bring the database back to the pre-change dump ``backup_id`` of an apply.

    A scoped backup restores the tables whose data it holds; every other table is left
    as it is.

    Raises:
        BadInputError: no such complete backup, or one without the data of a table the
            undone revisions need (exit 2).
        RejectedError: rows were written to the affected tables since (unless ``force``),
            the core schema would be undone, or a hand-written migration (exit 1).
        ConflictError: the database is not at git's head, or the backup is from another
            line of revisions (exit 4).
    """
    from schemactl.pipeline.operation import NO_GUARD
    from schemactl.pipeline.runner import run_pipeline

    (guard or NO_GUARD).refuse_early("rollback")
    archived: list[dict[str, str]] = []
    written: list[dict[str, Any]] = []
    restored: list[str] = []
    res = run_pipeline(repo, target, actor,
                       restore_plan(repo, target, backup_id, force, archived, written, restored),
                       action="rollback", wait=wait, progress=progress)
    if not res.applied:
        return RollbackResult(command="rollback", revision_before=res.revision_before,
                              revision=res.revision, database=target.display,
                              restored_backup=backup_id,
                              message="the database is already at the backup's revision")
    return RollbackResult(
        command="rollback", rolled_back=res.applied[0], revisions=list(res.applied),
        revision_before=res.revision_before, revision=res.revision, database=target.display,
        archived=list(archived), backup=res.backup, commit=res.commit,
        restored_backup=backup_id, restored_tables=list(restored), forced=force,
        rows_written=list(written),
        message=f"restored backup {backup_id} ({_restored_what(restored)}); the database is "
                f"at {res.revision}")


def _restored_what(tables: list[str]) -> str:
    if not tables:
        return "no table data: the undone revisions only created tables, now archived"
    return f"the data of {', '.join(tables)}; every other table left as it was"


__all__ = ["restore_backup", "restore_plan", "rows_written_since"]
