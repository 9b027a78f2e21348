"""Shared helpers of the rule tests: building definitions, configs and Alembic ops."""

from __future__ import annotations

from typing import Any

from schemactl.model.config import DEFAULT_BASE_FIELDS, Config, Limits, Waiver
from schemactl.model.definitions import TableDef
from schemactl.model.parsing import from_dict

BASE_COLUMNS = [
    {"name": "id", "type": "uuid", "primary_key": True, "default": "gen_random_uuid()"},
    {"name": "created_at", "type": "timestamptz", "nullable": False, "default": "now()"},
    {"name": "updated_at", "type": "timestamptz", "nullable": False, "default": "now()"},
    {"name": "is_deleted", "type": "boolean", "nullable": False, "default": False},
    {"name": "created_by", "type": "bigint"},
]


def tables(items: list[dict[str, Any]] | None) -> dict[str, TableDef]:
    out = {}
    for i, item in enumerate(items or []):
        tdef = from_dict(item, source=f"case[{i}]")
        out[tdef.table] = tdef
    return out


def make_config(raw: dict[str, Any] | None, *, base_fields: bool = False) -> Config:
    """A Config from a case's ``config`` mapping; base fields off unless asked for."""
    raw = raw or {}
    lim = raw.get("limits", {})
    return Config(
        base_fields=DEFAULT_BASE_FIELDS if raw.get("base_fields", base_fields) else (),
        severities={k.upper(): v for k, v in raw.get("severity", {}).items()},
        limits=Limits(**{k: int(v) for k, v in lim.items()}),
        waivers=tuple(Waiver(rule=w["rule"], reason=w["reason"], table=w.get("table"),
                             column=w.get("column")) for w in raw.get("waivers", [])),
    )


def sa_type(text: str) -> Any:
    """A SQLAlchemy type for a definition type name (the few the cases use)."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql as pg

    from schemactl.model.definitions import parse_type

    spec = parse_type(text)
    assert spec is not None, text
    simple = {"uuid": pg.UUID(), "text": sa.Text(), "integer": sa.Integer(),
              "bigint": sa.BigInteger(), "smallint": sa.SmallInteger(), "boolean": sa.Boolean(),
              "timestamptz": sa.DateTime(timezone=True), "timestamp": sa.DateTime(),
              "jsonb": pg.JSONB(), "date": sa.Date(), "real": sa.REAL(),
              "double precision": sa.Double()}
    if spec.base == "varchar":
        return sa.String(spec.args[0] if spec.args else None)
    if spec.base == "numeric":
        return sa.Numeric(*spec.args)
    return simple[spec.base]


def build_ops(items: list[dict[str, Any]]) -> Any:
    """An ``UpgradeOps`` tree from short op descriptions (grouped per table like autogenerate)."""
    import sqlalchemy as sa
    from alembic.operations import ops

    def column(d: dict[str, Any]) -> sa.Column[Any]:
        default = d.get("server_default")
        return sa.Column(d["name"], sa_type(d["type"]), nullable=d.get("nullable", True),
                         server_default=sa.text(default) if default else None)

    leaves: list[Any] = []
    for d in items:
        kind, t, schema = d["op"], d.get("table"), d.get("schema")
        if kind == "create_table":
            leaves.append(ops.CreateTableOp(t, [column(c) for c in d["columns"]], schema=schema))
        elif kind == "drop_table":
            leaves.append(ops.DropTableOp(t, schema=schema))
        elif kind == "rename_table":
            leaves.append(ops.RenameTableOp(t, d["new_name"], schema=schema))
        elif kind == "add_column":
            leaves.append(ops.AddColumnOp(t, column(d["column"]), schema=schema))
        elif kind == "drop_column":
            leaves.append(ops.DropColumnOp(t, d["column"], schema=schema))
        elif kind == "alter_column":
            leaves.append(ops.AlterColumnOp(
                t, d["column"], schema=schema,
                existing_type=sa_type(d["existing_type"]) if "existing_type" in d else None,
                modify_type=sa_type(d["type"]) if "type" in d else None,
                modify_nullable=d.get("nullable"), existing_nullable=d.get("existing_nullable"),
                modify_name=d.get("new_name")))
        elif kind == "create_index":
            kw = {"postgresql_concurrently": True} if d.get("concurrently") else {}
            leaves.append(ops.CreateIndexOp(d.get("name", f"ix_{t}"), t, d["columns"],
                                            schema=schema, **kw))
        elif kind == "drop_index":
            leaves.append(ops.DropIndexOp(d["name"], t, schema=schema))
        elif kind == "create_foreign_key":
            kw = {"postgresql_not_valid": True} if d.get("not_valid") else {}
            leaves.append(ops.CreateForeignKeyOp(d.get("name", f"fk_{t}"), t, d["referent"],
                                                 d["local"], d["remote"],
                                                 source_schema=schema, **kw))
        elif kind == "create_check_constraint":
            kw = {"postgresql_not_valid": True} if d.get("not_valid") else {}
            leaves.append(ops.CreateCheckConstraintOp(d["name"], t, d["condition"],
                                                      schema=schema, **kw))
        elif kind == "create_unique_constraint":
            leaves.append(ops.CreateUniqueConstraintOp(d["name"], t, d["columns"],
                                                       schema=schema))
        elif kind == "drop_constraint":
            leaves.append(ops.DropConstraintOp(d["name"], t, type_=d.get("type"),
                                               schema=schema))
        elif kind == "create_primary_key":
            leaves.append(ops.CreatePrimaryKeyOp(d["name"], t, d["columns"], schema=schema))
        else:
            raise ValueError(f"unknown op {kind}")
    # Group per-table ops the way autogenerate does.
    tree: list[Any] = []
    for leaf in leaves:
        if type(leaf).__name__ in ("CreateTableOp", "DropTableOp", "RenameTableOp"):
            tree.append(leaf)
            continue
        table = getattr(leaf, "table_name", None) or getattr(leaf, "source_table", None)
        schema = getattr(leaf, "schema", None) or getattr(leaf, "source_schema", None)
        if tree and isinstance(tree[-1], ops.ModifyTableOps) and tree[-1].table_name == table:
            tree[-1].ops.append(leaf)
        else:
            tree.append(ops.ModifyTableOps(table, [leaf], schema=schema))
    return ops.UpgradeOps(ops=tree)
