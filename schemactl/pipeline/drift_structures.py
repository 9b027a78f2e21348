"""Drift in what Alembic's comparison does not see: CHECK constraints, foreign-key actions
(of one-column and composite keys), partial-index predicates, generated-column
expressions and the old-name views of online table renames.

`alembic.autogenerate.compare_metadata` ignores CHECK constraints and index predicates and
compares foreign keys without their ON DELETE/ON UPDATE actions. This reads them from the
catalog (``pg_constraint``, ``pg_index.indpred``, ``pg_attribute.attgenerated``) for the
defined tables only, and compares expressions by
:func:`schemactl.codegen.expressions.fingerprint`. Views are not tables to Alembic: a
definition with ``renamed_from`` expects a view under the old name (the rename made it, the
contract drops it), and nothing else would notice it gone (:func:`view_differences`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from schemactl.model.definitions import TableDef

_CHECKS = """
select c.relname, k.conname, pg_get_constraintdef(k.oid)
from pg_constraint k join pg_class c on c.oid = k.conrelid
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = :schema and c.relname = any(:tables) and k.contype = 'c'
"""
# A foreign key with its columns and target, to know it again under another name.
_FKS = """
select c.relname, k.conname, k.confdeltype, k.confupdtype,
       array(select a.attname from unnest(k.conkey) with ordinality u(num, i)
             join pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.num order by u.i),
       r.relname,
       array(select a.attname from unnest(k.confkey) with ordinality u(num, i)
             join pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.num order by u.i)
from pg_constraint k join pg_class c on c.oid = k.conrelid
join pg_namespace n on n.oid = c.relnamespace join pg_class r on r.oid = k.confrelid
where n.nspname = :schema and c.relname = any(:tables) and k.contype = 'f'
"""
_VIEWS = """
select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = :schema and c.relname = any(:names) and c.relkind = 'v'
"""
_PREDICATES = """
select t.relname, x.relname, pg_get_expr(i.indpred, i.indrelid)
from pg_index i join pg_class x on x.oid = i.indexrelid
join pg_class t on t.oid = i.indrelid join pg_namespace n on n.oid = t.relnamespace
where n.nspname = :schema and t.relname = any(:tables)
"""
_GENERATED = """
select c.relname, a.attname, a.attgenerated, pg_get_expr(d.adbin, d.adrelid)
from pg_attribute a join pg_class c on c.oid = a.attrelid
join pg_namespace n on n.oid = c.relnamespace
left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where n.nspname = :schema and c.relname = any(:tables) and a.attnum > 0
  and not a.attisdropped and a.attgenerated <> ''
"""


def _diff(kind: str, table: str, message: str, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": kind, "table": table}
    out.update({k: v for k, v in extra.items() if v is not None})
    out["message"] = message
    return out


@dataclass(frozen=True)
class _LiveKey:
    """A foreign key: its name, columns, target and (on_delete, on_update) actions."""

    name: str
    columns: tuple[str, ...]
    to: str
    to_columns: tuple[str, ...]
    actions: tuple[str | None, str | None]


def _defined_keys(tdef: TableDef) -> list[_LiveKey]:
    """The foreign keys a definition makes (a column's and the table's composite ones)."""
    from schemactl.model.naming import fk_name

    out = [_LiveKey(fk_name(tdef.table, c.name, c.ref_table, c.on_delete, c.on_update),
                    (c.name,), c.ref_table, (c.ref_column,), (c.on_delete, c.on_update))
           for c in tdef.columns if c.references and c.ref_table and c.ref_column]
    out += [_LiveKey(r.constraint_name(tdef.table), r.columns, r.to, r.to_columns,
                     (r.on_delete, r.on_update)) for r in tdef.references]
    return out


def _model_keys(table: Any) -> list[_LiveKey]:
    """The named foreign keys of a SQLAlchemy table (a core model)."""
    def code(action: str | None) -> str | None:
        word = (action or "no action").lower().replace(" ", "_")
        return None if word == "no_action" else word

    return [_LiveKey(str(fk.name), tuple(fk.column_keys), fk.referred_table.name,
                     tuple(e.column.name for e in fk.elements), (code(fk.ondelete),
                                                                 code(fk.onupdate)))
            for fk in table.foreign_key_constraints if fk.name]


def _actions_sql(actions: tuple[str | None, str | None], update: bool) -> str:
    from schemactl.codegen.expressions import FK_ACTION_SQL

    def words(action: str | None) -> str:
        return FK_ACTION_SQL.get(action or "no_action", str(action).replace("_", " ").upper())

    text = f"ON DELETE {words(actions[0])}"
    return text + f" ON UPDATE {words(actions[1])}" if update else text


def _action_differences(table: str, defined: list[_LiveKey], live: list[_LiveKey],
                        ) -> list[dict[str, Any]]:
    """One ``foreign_key_action`` per defined key whose live key (by name, else the same
    columns and target under another name) has other actions."""
    by_name = {k.name: k for k in live}
    taken = {k.name for k in defined}
    out: list[dict[str, Any]] = []
    for want in defined:
        have = by_name.get(want.name) or next(
            (k for k in live if k.name not in taken and (k.columns, k.to, k.to_columns)
             == (want.columns, want.to, want.to_columns)), None)
        if have is None or have.actions == want.actions:
            continue  # a missing key is Alembic's finding
        update = want.actions[1] is not None or have.actions[1] is not None
        expected, actual = _actions_sql(want.actions, update), _actions_sql(have.actions, update)
        cols, to_cols = ", ".join(want.columns), ", ".join(want.to_columns)
        keys = (f"{cols} → {want.to}.{to_cols}" if len(want.to_columns) == 1
                else f"{cols} → {want.to} ({to_cols})")
        live_name = have.name if have.name != want.name else None
        as_name = f" (as {have.name})" if live_name else ""
        out.append(_diff("foreign_key_action", table, f"{table}: foreign key {want.name} "
                         f"({keys}) is {actual}{as_name}, defined {expected}",
                         column=want.columns[0] if len(want.columns) == 1 else None,
                         columns=list(want.columns), index=want.name, live_name=live_name,
                         expected=expected, actual=actual))
    return out


def without_action_pairs(differences: list[dict[str, Any]], structures: list[dict[str, Any]],
                         ) -> list[dict[str, Any]]:
    """Alembic's findings without the missing/extra foreign key pairs it reports for a key
    whose actions differ: that is one difference, the ``foreign_key_action`` in
    ``structures``."""
    covered = {(d["table"], name) for d in structures if d["kind"] == "foreign_key_action"
               for name in (d.get("index"), d.get("live_name")) if name}
    return [d for d in differences
            if not (d.get("kind") in ("missing_foreign_key", "extra_foreign_key")
                    and (d.get("table"), d.get("index")) in covered)]


def structure_differences(connection: Connection, definitions: Mapping[str, TableDef],
                          tables: set[str], schema: str = "public",
                          models: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Differences in checks, FK actions, index predicates and generated columns of the
    defined ``tables``, and in the FK actions of ``models`` (core tables by name)."""
    import sqlalchemy as sa

    from schemactl.codegen.expressions import (
        FK_ACTION_CODES,
        check_map,
        fingerprint,
        generated_sql,
        predicate_sql,
    )
    names = sorted(t for t in tables if t in definitions)
    models = {n: t for n, t in (models or {}).items() if n not in definitions}
    if not names and not models:
        return []
    params = {"schema": schema, "tables": names}
    keyed = {"schema": schema, "tables": sorted({*names, *models})}

    def rows(sql: str) -> Any:
        return connection.execute(sa.text(sql), params) if names else []

    live_checks: dict[str, dict[str, str]] = {}
    for table, name, text in rows(_CHECKS):
        live_checks.setdefault(table, {})[name] = text
    live_fks: dict[str, list[_LiveKey]] = {}
    for table, name, deltype, updtype, cols, to, to_cols in connection.execute(sa.text(_FKS),
                                                                                keyed):
        live_fks.setdefault(table, []).append(_LiveKey(
            name, tuple(cols), to, tuple(to_cols),
            (FK_ACTION_CODES.get(deltype), FK_ACTION_CODES.get(updtype))))
    live_preds: dict[str, dict[str, str | None]] = {}
    for table, index, pred in rows(_PREDICATES):
        live_preds.setdefault(table, {})[index] = pred
    live_gen: dict[str, dict[str, tuple[str, str]]] = {}
    for table, column, kind, expr in rows(_GENERATED):
        live_gen.setdefault(table, {})[column] = (kind, expr)

    out: list[dict[str, Any]] = []
    for table in sorted(models):
        out += _action_differences(table, _model_keys(models[table]), live_fks.get(table, []))
    for table in names:
        tdef = definitions[table]
        want = check_map(tdef)
        have = live_checks.get(table, {})
        for name, sql in want.items():
            if name not in have:
                out.append(_diff("missing_constraint", table, f"check {name} is defined but "
                                 "missing", index=name, expected=sql))
            elif fingerprint(have[name]) != fingerprint(sql):
                out.append(_diff("check", table, f"check {name} is {have[name]}, defined "
                                 f"CHECK ({sql})", index=name, expected=sql,
                                 actual=have[name]))
        for name in sorted(set(have) - set(want)):
            out.append(_diff("extra_constraint", table, f"check {name} exists but is not "
                             "defined", index=name, actual=have[name]))
        out += _action_differences(table, _defined_keys(tdef), live_fks.get(table, []))
        preds = live_preds.get(table, {})
        for idx in tdef.indexes:
            iname = idx.index_name(table)
            if iname not in preds:
                continue  # a missing index is Alembic's finding
            expected = predicate_sql(idx.where)
            if fingerprint(preds[iname]) != fingerprint(expected):
                out.append(_diff("index_predicate", table, f"index {iname}: WHERE is "
                                 f"{preds[iname]}, defined {expected}", index=iname,
                                 expected=str(expected), actual=str(preds[iname])))
        gens = live_gen.get(table, {})
        for col in tdef.columns:
            live = gens.get(col.name)
            if col.generated is None:
                if live is not None:
                    out.append(_diff("generated", table, f"{table}.{col.name} is generated "
                                     "but defined as a plain column", column=col.name))
                continue
            expected = generated_sql(col.generated)
            if live is None or live[0] != "s" or fingerprint(live[1]) != fingerprint(expected):
                out.append(_diff("generated", table, f"{table}.{col.name}: generated "
                                 f"{live or 'nothing'}, defined STORED AS ({expected})",
                                 column=col.name, expected=expected,
                                 actual=str(live[1]) if live else None))
    return out


def view_differences(connection: Connection, definitions: Mapping[str, TableDef],
                     schema: str = "public") -> list[dict[str, Any]]:
    """A ``missing_view`` for each old-name view of a table rename under way that is not
    there (a view of that name: its columns are the table's, checked by nothing else)."""
    import sqlalchemy as sa

    wanted = {t.renamed_from: t.table for t in definitions.values()
              if t.renamed_from and t.renamed_from not in definitions}
    if not wanted:
        return []
    there = {r[0] for r in connection.execute(sa.text(_VIEWS),
                                              {"schema": schema, "names": sorted(wanted)})}
    return [_diff("missing_view", table, f"view {view} is missing: {table} keeps its old name "
                  "as a view for old readers until the contract (the proposal without "
                  "renamed_from)", view=view)
            for view, table in sorted(wanted.items()) if view not in there]
