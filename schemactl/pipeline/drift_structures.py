"""Drift in what Alembic's comparison does not see: CHECK constraints, foreign-key actions
(of one-column and composite keys), partial-index predicates and generated-column
expressions.

`alembic.autogenerate.compare_metadata` ignores CHECK constraints and index predicates and
compares foreign keys without their ON DELETE/ON UPDATE actions. This reads them from the
catalog (``pg_constraint``, ``pg_index.indpred``, ``pg_attribute.attgenerated``) for the
defined tables only, and compares expressions by
:func:`schemactl.codegen.expressions.fingerprint`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from schemactl.model.definitions import TableDef

_CHECKS = """
select c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid), k.confdeltype,
       k.confupdtype
from pg_constraint k join pg_class c on c.oid = k.conrelid
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = :schema and c.relname = any(:tables) and k.contype in ('c', 'f')
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


def structure_differences(connection: Connection, definitions: Mapping[str, TableDef],
                          tables: set[str], schema: str = "public") -> list[dict[str, Any]]:
    """Differences in checks, FK actions, index predicates and generated columns."""
    import sqlalchemy as sa

    from schemactl.codegen.expressions import (
        FK_ACTION_CODES,
        check_map,
        fingerprint,
        generated_sql,
        predicate_sql,
    )
    from schemactl.model.naming import fk_name

    names = sorted(t for t in tables if t in definitions)
    if not names:
        return []
    params = {"schema": schema, "tables": names}
    live_checks: dict[str, dict[str, str]] = {}
    live_fks: dict[str, dict[str, tuple[str | None, str | None]]] = {}
    for table, name, kind, text, deltype, updtype in connection.execute(sa.text(_CHECKS),
                                                                          params):
        if kind == "c":
            live_checks.setdefault(table, {})[name] = text
        else:
            live_fks.setdefault(table, {})[name] = (FK_ACTION_CODES.get(deltype),
                                                    FK_ACTION_CODES.get(updtype))
    live_preds: dict[str, dict[str, str | None]] = {}
    for table, index, pred in connection.execute(sa.text(_PREDICATES), params):
        live_preds.setdefault(table, {})[index] = pred
    live_gen: dict[str, dict[str, tuple[str, str]]] = {}
    for table, column, kind, expr in connection.execute(sa.text(_GENERATED), params):
        live_gen.setdefault(table, {})[column] = (kind, expr)

    out: list[dict[str, Any]] = []
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
        fks = live_fks.get(table, {})
        for col in tdef.columns:
            if not (col.references and col.ref_table and col.ref_column):
                continue
            name = fk_name(table, col.name, col.ref_table, col.on_delete, col.on_update)
            actions = (col.on_delete, col.on_update)
            if name in fks and fks[name] != actions:
                out.append(_diff("foreign_key_action", table, f"foreign key {name}: actions "
                                 f"are {fks[name]}, defined {actions}", column=col.name,
                                 index=name, expected=str(actions), actual=str(fks[name])))
        for ref in tdef.references:
            name = ref.constraint_name(table)
            actions = (ref.on_delete, ref.on_update)
            if name in fks and fks[name] != actions:
                out.append(_diff("foreign_key_action", table, f"foreign key {name}: actions "
                                 f"are {fks[name]}, defined {actions}", index=name,
                                 expected=str(actions), actual=str(fks[name])))
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
