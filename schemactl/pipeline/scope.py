"""What a run touches: the existing tables whose data its migrations may change.

The scope of a backup comes from the migrations' own operations, recorded offline
(`schemactl.codegen.recorder`: each pending revision's ``upgrade()``, or the
``downgrade()`` a rollback runs). A table created by the run has no data yet; any other
table an operation names is touched. An operation that is not known to act on one named
table (``op.execute`` of raw SQL, a bulk insert, a migration that cannot run offline)
widens the scope to the whole database: an unknown never narrows a backup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemactl.adapters import migrator
from schemactl.model.naming import DYNAMIC_SCHEMA
from schemactl.model.repo import SchemaRepo

# Operations that act on the one table they name (its ``table_name``/``source_table``).
_ONE_TABLE = frozenset({
    "DropTableOp", "AddColumnOp", "DropColumnOp", "AlterColumnOp", "CreateIndexOp",
    "DropIndexOp", "CreateForeignKeyOp", "CreateUniqueConstraintOp", "CreateCheckConstraintOp",
    "CreatePrimaryKeyOp", "DropConstraintOp", "CreateTableCommentOp", "DropTableCommentOp",
    "RenameTableOp", "ArchiveOp",
    # an online column change (codegen.online): its rows are rewritten in batches, the old
    # column's values copied to a new archive table; no other table's data changes
    "OnlineColumnSpec",
    # a table renamed online (codegen.online_table): its data stays in place, under the new
    # name; the contract of a rename only drops the old-name view (no data)
    "OnlineTableSpec",
})


@dataclass(frozen=True)
class Touches:
    """What one run's migrations touch.

    Attributes:
        tables: ``schema.table`` of the tables that exist before the run and whose data or
            definition it changes (their data goes into the backup).
        created: ``schema.table`` of the tables the run creates (no data to keep).
        revisions: the revisions of the run, in the order they run.
        full: why the whole database must be dumped (None: the tables are the scope).
    """

    tables: tuple[str, ...] = ()
    created: tuple[str, ...] = ()
    revisions: tuple[str, ...] = ()
    full: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"tables": list(self.tables), "created": list(self.created),
                "revisions": list(self.revisions), "full": self.full}


@dataclass
class _Acc:
    schema: str
    tables: list[str] = field(default_factory=list)
    created: set[str] = field(default_factory=set)
    full: str | None = None

    def name(self, op: Any, attr: str = "table_name", schema_attr: str = "schema") -> str | None:
        table = getattr(op, attr, None)
        if not isinstance(table, str) or not table:
            return None
        schema = getattr(op, schema_attr, None) or self.schema
        return f"{schema}.{table}"

    def touch(self, qualified: str) -> None:
        if qualified not in self.created and qualified not in self.tables:
            self.tables.append(qualified)

    def widen(self, why: str) -> None:
        if self.full is None:
            self.full = why


def _add(acc: _Acc, op: Any, revision: str) -> None:
    kind = type(op).__name__
    if kind == "CreateTableOp":
        name = acc.name(op)
        if name is None:
            acc.widen(f"{revision}: a table without a name")
        elif name not in acc.tables:
            acc.created.add(name)
        return
    if kind == "ExecuteSQLOp":
        sql = " ".join(str(getattr(op, "sqltext", "")).split())[:80]
        acc.widen(f"{revision} runs SQL whose tables are not known ({sql})")
        return
    if kind == "OnlineTableSpec" and op.kind == "contract":
        return
    if kind not in _ONE_TABLE:
        acc.widen(f"{revision}: {kind} is not known to touch one table")
        return
    name = acc.name(op) if kind != "CreateForeignKeyOp" else \
        acc.name(op, "source_table", "source_schema")
    if name is None:
        acc.widen(f"{revision}: {kind} without a table")
        return
    acc.touch(name)
    if kind in ("RenameTableOp", "OnlineTableSpec"):
        new = getattr(op, "new_table_name", None)
        if isinstance(new, str):
            acc.created.add(f"{getattr(op, 'schema', None) or acc.schema}.{new}")


def of_revisions(repo: SchemaRepo, revisions: list[str], direction: str = "upgrade"
                 ) -> Touches:
    """What running ``revisions`` (in this order) in ``direction`` touches.

    Args:
        repo: the schema repository (migrations/ and the dynamic schema's name).
        revisions: the revisions in the order they run (newest first for a downgrade).
        direction: "upgrade" or "downgrade".
    """
    from schemactl.codegen.recorder import record_migration

    files = migrator.read_revisions(repo)
    acc = _Acc(DYNAMIC_SCHEMA)
    for rev in revisions:
        rf = files.get(rev)
        if rf is None:
            acc.widen(f"{rev}: no migration file")
            continue
        recorded = record_migration(Path(rf.path).read_bytes(), Path(rf.path).name,
                                    direction=direction)
        if recorded.error:
            acc.widen(f"{rev}: its {direction}() does not run offline ({recorded.error[:120]})")
        for op in recorded.ops:
            _add(acc, op, rev)
    return Touches(tables=tuple(acc.tables), created=tuple(sorted(acc.created)),
                   revisions=tuple(revisions), full=acc.full)


def of_tables(tables: list[str], schema: str, revisions: list[str]) -> Touches:
    """A scope named directly: ``tables`` of ``schema`` (a restore replaces them)."""
    return Touches(tables=tuple(f"{schema}.{t}" for t in sorted(tables)),
                   revisions=tuple(revisions))
