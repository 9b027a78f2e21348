"""Drift: does the live schema equal what git says it should be?

For a database at revision R, the expected schema is the definitions at the git
commit that added R's migration file (core tables plus dynamic definitions, made
into SQLAlchemy MetaData by :func:`schemactl.codegen.metadata.build_metadata`). The live
schema is reflected from the dynamic schema (``public``) only, restricted with
``include_name`` to the expected tables, so reflection stays fast on a large
database and autogenerate never sees tables it does not manage (DESIGN.md, Known
pitfalls). Tables nobody defined are listed by name, never reflected further,
and never touched: drift is reported, not repaired.

Each difference is a dict ``{kind, table, column?, index?, expected?, actual?, message}``
with ``kind`` one of: extra_table, missing_table, extra_column, missing_column, type,
nullable, extra_index, missing_index, extra_constraint, missing_constraint,
extra_foreign_key, missing_foreign_key, check, foreign_key_action, index_predicate, generated,
missing_view (`schemactl.pipeline.drift_structures`), other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from schemactl.adapters.database import Target, shared_engine
from schemactl.adapters.migrator import VERSION_TABLE, read_revisions
from schemactl.model.naming import DYNAMIC_SCHEMA
from schemactl.model.repo import SchemaRepo
from schemactl.pipeline import drift_memo, expected

if TYPE_CHECKING:
    from sqlalchemy import MetaData
    from sqlalchemy.engine import Connection

    from schemactl.model.definitions import TableDef
    from schemactl.model.tableset import TableSet


@dataclass(frozen=True)
class DriftReport:
    """The differences, and what could only be checked by column names."""

    differences: list[dict[str, Any]] = field(default_factory=list)
    # Definitions that build_metadata did not turn into tables: checked by table and column
    # names only (no types, nullability or indexes).
    names_only: list[str] = field(default_factory=list)
    git_rev: str | None = None

    @property
    def ok(self) -> bool:
        return not self.differences


def expected_definitions(repo: SchemaRepo, revision: str | None,
                         git_rev: str | None = None) -> tuple[dict[str, TableDef], str | None]:
    """The dynamic definitions the database should match, and the git commit they come from.

    Args:
        repo: the schema repository.
        revision: the database's Alembic revision (None: never migrated, nothing expected).
        git_rev: take the definitions at this commit instead (e.g. "HEAD" to verify an apply).

    Returns:
        (definitions by table, sha or None when they come from the work tree).
    """
    defs, sha, _commit = _expected(repo, revision, git_rev)
    return dict(defs), sha


def _expected(repo: SchemaRepo, revision: str | None, git_rev: str | None,
              ) -> tuple[dict[str, TableDef], str | None, str | None]:
    """(definitions, the sha to report, the commit they were read at: None when uncached).

    The definitions of a commit are shared between the targets of a run
    (`schemactl.pipeline.expected`): read-only.
    """
    from schemactl.model.loading import load_at_rev, load_worktree

    if git_rev is not None:
        commit = expected.resolve(repo, git_rev)
        if commit is None:
            return dict(load_at_rev(repo.root, git_rev)), git_rev, None
        return expected.definitions_at(repo, commit), git_rev, commit
    if revision is None:
        return {}, None, None
    revs = read_revisions(repo)
    sha = None
    if revision in revs:
        rel = str(_relpath(repo, revs[revision].path))
        sha = expected.commit_adding(repo, rel)
    if sha is None:
        # A migration never committed: git has nothing to say yet, the work tree does.
        return load_worktree(repo.root), None, None
    return expected.definitions_at(repo, sha), sha, sha


def expected_tables(repo: SchemaRepo, revision: str | None) -> TableSet:
    """The definitions :func:`expected_definitions` gives, as an indexed set: in a large
    repository read from the parse cache only as far as they are asked for (the agent
    policy asks for the changed tables and what they reference)."""
    from schemactl.model.loading import load_worktree, tables_at_rev
    from schemactl.model.tableset import DictTables

    if revision is None:
        return DictTables({})
    revs = read_revisions(repo)
    sha = None
    if revision in revs:
        sha = expected.commit_adding(repo, str(_relpath(repo, revs[revision].path)))
    if sha is None:
        return DictTables(load_worktree(repo.root))
    return tables_at_rev(repo.root, sha)


def _relpath(repo: SchemaRepo, path: str) -> str:
    from pathlib import Path

    p = Path(path)
    return str(p.resolve().relative_to(repo.root.resolve())) if p.is_absolute() else str(p)


def expected_metadata(definitions: dict[str, TableDef], revision: str | None) -> MetaData:
    """MetaData of what should exist (empty for a database that was never migrated)."""
    from sqlalchemy import MetaData

    from schemactl.codegen.metadata import build_metadata

    if revision is None:
        return MetaData()
    return build_metadata(definitions, include_deprecated=True)


def _diff(kind: str, table: str, message: str, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": kind, "table": table}
    out.update({k: v for k, v in extra.items() if v is not None})
    out["message"] = message
    return out


def _translate(item: Any) -> list[dict[str, Any]]:
    """One entry of alembic's compare_metadata output as difference dicts."""
    if isinstance(item, list):
        return [d for sub in item for d in _translate(sub)]
    op = item[0]
    if op == "add_table":
        t = item[1]
        return [_diff("missing_table", t.name, f"table {t.name} is defined but missing")]
    if op == "remove_table":
        t = item[1]
        return [_diff("extra_table", t.name, f"table {t.name} exists but is not defined")]
    if op in ("add_column", "remove_column"):
        _schema, table, col = item[1], item[2], item[3]
        if op == "add_column":
            return [_diff("missing_column", table, f"{table}.{col.name} is defined but missing",
                          column=col.name)]
        return [_diff("extra_column", table, f"{table}.{col.name} exists but is not defined",
                      column=col.name)]
    if op in ("modify_type", "modify_nullable", "modify_default", "modify_comment"):
        _schema, table, column, _kw, live, wanted = item[1:7]
        kind = {"modify_type": "type", "modify_nullable": "nullable",
                "modify_default": "default", "modify_comment": "comment"}[op]
        return [_diff(kind, table, f"{table}.{column}: {kind} is {live!s}, defined {wanted!s}",
                      column=column, expected=str(wanted), actual=str(live))]
    if op in ("add_index", "remove_index"):
        ix = item[1]
        table = ix.table.name if ix.table is not None else "?"
        cols = ", ".join(c.name for c in ix.columns) if ix.columns is not None else ""
        if op == "add_index":
            return [_diff("missing_index", table, f"index {ix.name} ({cols}) is defined but "
                          "missing", index=ix.name)]
        return [_diff("extra_index", table, f"index {ix.name} ({cols}) exists but is not defined",
                      index=ix.name)]
    if op in ("add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        c = item[1]
        table = c.table.name if getattr(c, "table", None) is not None else "?"
        noun = "foreign_key" if op.endswith("_fk") else "constraint"
        if op.startswith("add"):
            return [_diff(f"missing_{noun}", table, f"{noun.replace('_', ' ')} {c.name} is "
                          "defined but missing", index=c.name)]
        return [_diff(f"extra_{noun}", table, f"{noun.replace('_', ' ')} {c.name} exists but is "
                      "not defined", index=c.name)]
    table = next((x for x in item[1:] if isinstance(x, str)), "?")
    return [_diff("other", table, f"{op}: {item[1:]!r}"[:300])]


def compare(connection: Connection, metadata: MetaData, definitions: dict[str, TableDef],
            schema: str = "public") -> DriftReport:
    """Compare the live ``schema`` of ``connection`` with ``metadata`` (+ name-only checks)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect

    expected = set(metadata.tables)
    live_tables = set(inspect(connection).get_table_names(schema=schema)) - {VERSION_TABLE}
    names_only = sorted(t for t in definitions if t not in expected)

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "schema":
            return name in (None, schema)
        if type_ == "table":
            return name in expected
        return True

    differences: list[dict[str, Any]] = []
    if expected:
        ctx = MigrationContext.configure(connection, opts={
            "include_name": include_name, "compare_type": True,
            "target_metadata": metadata})
        for item in compare_metadata(ctx, metadata):
            differences += _translate(item)
        # What compare_metadata does not see: checks, FK actions, predicates, generated.
        from schemactl.pipeline.drift_structures import (
            structure_differences,
            without_action_pairs,
        )

        structures = structure_differences(
            connection, definitions, expected & live_tables, schema,
            {n: metadata.tables[n] for n in expected & live_tables})
        differences = without_action_pairs(differences, structures) + structures
    if definitions:
        from schemactl.pipeline.drift_structures import view_differences

        differences += view_differences(connection, definitions, schema)
    insp = inspect(connection)
    for table in names_only:
        tdef = definitions[table]
        if table not in live_tables:
            differences.append(_diff("missing_table", table,
                                     f"table {table} is defined but missing"))
            continue
        live_cols = {c["name"] for c in insp.get_columns(table, schema=schema)}
        defined = set(tdef.column_names)
        for col in tdef.column_names:
            if col not in live_cols:
                differences.append(_diff("missing_column", table,
                                         f"{table}.{col} is defined but missing", column=col))
        for col in sorted(live_cols - defined):
            differences.append(_diff("extra_column", table,
                                     f"{table}.{col} exists but is not defined", column=col))
    for table in sorted(live_tables - expected - set(definitions)):
        differences.append(_diff("extra_table", table,
                                 f"table {table} exists but no definition or core model "
                                 "names it (left untouched)"))
    from schemactl.pipeline.online import hide_shadows

    differences = hide_shadows(connection, differences)
    return DriftReport(differences=differences, names_only=names_only)


def check(repo: SchemaRepo, target: Target, revision: str | None, *,
          git_rev: str | None = None, connection: Connection | None = None,
          catalog: Any = None) -> DriftReport:
    """Compare the live schema of ``target`` with git's definitions for ``revision``.

    Args:
        repo: the schema repository.
        target: the database.
        revision: the database's current Alembic revision.
        git_rev: compare with the definitions at this git revision instead of the commit
            that added ``revision``'s migration (verify after an apply uses "HEAD").
        connection: an existing SQLAlchemy connection to use.
        catalog: an open autocommit psycopg connection to the same database (the run's lock
            connection): its catalog fingerprint finds a comparison already made on an
            identical schema (`schemactl.pipeline.drift_memo`) without reflecting again.
    """
    definitions, sha, commit = _expected(repo, revision, git_rev)
    if revision is not None and commit is not None:
        metadata = expected.metadata_at(repo, commit)  # built once per commit, shared
    else:
        metadata = expected_metadata(definitions, revision)
    if revision is None:
        definitions = {}
    key = (str(repo.root.resolve()), commit, DYNAMIC_SCHEMA) if commit is not None else None
    before = None
    if key is not None and catalog is not None and connection is None:
        before = drift_memo.fingerprint(
            lambda sql, params: catalog.execute(sql, params or None).fetchone(), DYNAMIC_SCHEMA)
        found = drift_memo.recall((*key, before))
        if found is not None:
            return DriftReport(found[0], found[1], sha)
    if connection is not None:
        report = _compare_remembered(connection, metadata, definitions, key, before)
    else:
        # One engine per database for the process: its dialect and compiled reflection
        # queries are reused by the next check (a verify after the drift check).
        with shared_engine(target).connect() as conn:
            report = _compare_remembered(conn, metadata, definitions, key, before)
    return DriftReport(report.differences, report.names_only, sha)


def _compare_remembered(connection: Connection, metadata: MetaData,
                        definitions: dict[str, TableDef], key: tuple[Any, ...] | None,
                        before: str | None) -> DriftReport:
    """:func:`compare`, remembered by catalog fingerprint when nothing moved meanwhile."""
    if key is None:
        return compare(connection, metadata, definitions, DYNAMIC_SCHEMA)

    def run(sql: str, params: dict[str, Any]) -> Any:
        return connection.exec_driver_sql(sql, params or {}).fetchone()

    if before is None:
        before = drift_memo.fingerprint(run, DYNAMIC_SCHEMA)
        found = drift_memo.recall((*key, before))
        if found is not None:
            return DriftReport(found[0], found[1])
    report = compare(connection, metadata, definitions, DYNAMIC_SCHEMA)
    if drift_memo.fingerprint(run, DYNAMIC_SCHEMA) == before:
        drift_memo.remember((*key, before), report.differences, report.names_only)
    return report


def _identity(d: dict[str, Any]) -> tuple[Any, ...]:
    return d.get("kind"), d.get("table"), d.get("column"), d.get("index")


def _what(d: dict[str, Any]) -> str:
    kind, table = str(d.get("kind", "")), str(d.get("table", ""))
    noun = kind.split("_", 1)[-1]
    if noun == "index":
        return f"index {d.get('index')}"
    if noun == "view":
        return f"view {d.get('view')}"
    if noun == "column":
        return f"{table}.{d.get('column')}"
    if noun in ("constraint", "foreign_key"):
        return f"{noun.replace('_', ' ')} {d.get('index')}"
    return f"table {table}"


def mark_pending(repo: SchemaRepo, target: Target, differences: list[dict[str, Any]],
                 revisions: list[str], revision_target: str | None,
                 git_rev: str | None = "HEAD") -> list[dict[str, Any]]:
    """Mark the differences that pending (or interrupted) migrations already account for.

    A difference at the database's revision that is gone when the live schema is compared
    with the definitions of ``revision_target`` (at ``git_rev``) is an object those
    migrations make (or remove) that is already there (or gone): a run killed after a
    ``CREATE INDEX CONCURRENTLY`` but before ``alembic_version`` moved leaves exactly that.
    Such a difference gets ``pending`` (the revisions) and a message that says so.
    """
    if not differences or not revisions:
        return differences
    if all(d.get("kind") == "unchecked" for d in differences):
        return differences
    later = {_identity(d) for d in check(repo, target, revision_target,
                                         git_rev=git_rev).differences}
    revs = ", ".join(revisions)
    out: list[dict[str, Any]] = []
    for d in differences:
        kind = str(d.get("kind", ""))
        if kind == "unchecked" or _identity(d) in later:
            out.append(d)
            continue
        if kind.startswith("extra_"):
            message = f"{_what(d)} exists already: pending {revs} define(s) it"
        elif kind.startswith("missing_"):
            message = f"{_what(d)} is gone already, as pending {revs} want(s)"
        else:
            message = f"{d.get('message')} (as pending {revs} define(s) it)"
        out.append({**d, "pending": list(revisions), "message": message})
    return out


def blocking(differences: list[dict[str, Any]], managed: set[str], *,
             allow_pending: bool = False) -> list[dict[str, Any]]:
    """The differences that stop an apply or a rollback.

    A table that neither the core models nor the definitions at HEAD name belongs to someone
    else: it is reported and left alone, never a reason to refuse (or fail) a run. An extra
    table that HEAD does define still blocks: a pending migration would collide with it.
    With ``allow_pending`` (recovering an interrupted run), what the run's own migrations
    already made (see :func:`mark_pending`) does not block either: the redo finishes it.
    Nor does an old-name view of a table rename that is gone already when the run's own
    contract drops it (``DROP VIEW`` only if it exists): the way out is that proposal, not
    SQL by hand.
    """
    return [d for d in differences
            if not (d.get("kind") == "extra_table" and d.get("table") not in managed)
            and not ((allow_pending or d.get("kind") == "missing_view") and d.get("pending"))]


def unmanaged_tables(differences: list[dict[str, Any]], managed: set[str]) -> list[str]:
    """Names of the live tables nobody manages (see :func:`blocking`)."""
    return sorted(str(d["table"]) for d in differences
                  if d.get("kind") == "extra_table" and d.get("table") not in managed)


def detect_drift(repo: SchemaRepo, target: Target, revision: str | None) -> list[dict[str, Any]]:
    """Every difference between the live schema and git's definitions for ``revision``."""
    return check(repo, target, revision).differences
