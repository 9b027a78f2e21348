# Online table rename: written into a migration by schemactl, so that plain `alembic upgrade`
# runs it too. See docs/online.md, "Table renames".


def _sc_lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sc_view_exists(name: str) -> str:
    return (f"EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE n.nspname = 'public' AND c.relname = {_sc_lit(name)} AND c.relkind = 'v')")


def _sc_rename_names(table: str, names: list[list[str]]) -> list[str]:
    """Statements of a DO block renaming the indexes and constraints of ``table`` in
    ``names`` (``[kind, old, new]``), each only when it is there under its old name."""
    tbl = f"format('public.%I', {_sc_lit(table)})::regclass"
    lines = []
    for kind, old, new in names:
        if old == new:
            continue
        if kind == "index":
            lines.append(f"  IF to_regclass(format('public.%I', {_sc_lit(old)})) IS NOT NULL "
                         f"AND to_regclass(format('public.%I', {_sc_lit(new)})) IS NULL THEN "
                         f"EXECUTE format('ALTER INDEX public.%I RENAME TO %I', {_sc_lit(old)}, "
                         f"{_sc_lit(new)}); END IF;")
        else:
            lines.append(f"  IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = {tbl} AND "
                         f"conname = {_sc_lit(old)}) THEN EXECUTE format('ALTER TABLE public.%I "
                         f"RENAME CONSTRAINT %I TO %I', {_sc_lit(table)}, {_sc_lit(old)}, "
                         f"{_sc_lit(new)}); END IF;")
    return lines


def _sc_rename_block(frm: str, to: str, names: list[list[str]], drop_view: str | None,
                     view: str | None, lock: str, referrers: list[list[str]]) -> str:
    """One DO block (in the migration's transaction, under its lock_timeout): the old-name
    view dropped, table ``frm`` renamed ``to`` with what is named after it (the indexes and
    constraints in ``names``, PostgreSQL's own not-null constraint and sequence names), and
    a view under ``view`` reading and writing the table."""
    tbl = f"format('public.%I', {_sc_lit(to)})::regclass"
    lines = [f"-- online step rename_table {frm} → {to} [lock: {lock}]", "DO $schemactl$",
             "DECLARE r record;", "BEGIN"]
    if drop_view:
        lines.append(f"  IF {_sc_view_exists(drop_view)} THEN EXECUTE format('DROP VIEW "
                     f"public.%I', {_sc_lit(drop_view)}); END IF;")
    lines.append(f"  IF to_regclass(format('public.%I', {_sc_lit(to)})) IS NULL THEN "
                 f"EXECUTE format('ALTER TABLE public.%I RENAME TO %I', {_sc_lit(frm)}, "
                 f"{_sc_lit(to)}); END IF;")
    lines += _sc_rename_names(to, names)
    for table, *name in referrers:  # another table's key to it: renamed after it
        lines += _sc_rename_names(table, [name])
    prefix, keep = _sc_lit(frm + "_"), len(frm) + 2
    lines += [
        # PostgreSQL names these itself (<table>_<column>_not_null on 18, <table>_<col>_seq)
        f"  FOR r IN SELECT conname FROM pg_constraint WHERE conrelid = {tbl} AND "
        f"contype::text = 'n' AND left(conname, {keep - 1}) = {prefix} LOOP",
        f"    EXECUTE format('ALTER TABLE public.%I RENAME CONSTRAINT %I TO %I', {_sc_lit(to)}, "
        f"r.conname, {_sc_lit(to + '_')} || substr(r.conname, {keep}));",
        "  END LOOP;",
        f"  FOR r IN SELECT c.relname FROM pg_depend d JOIN pg_class c ON c.oid = d.objid "
        f"WHERE d.refobjid = {tbl} AND c.relkind = 'S' AND d.deptype IN ('a', 'i') AND "
        f"left(c.relname, {keep - 1}) = {prefix} LOOP",
        f"    EXECUTE format('ALTER SEQUENCE public.%I RENAME TO %I', r.relname, "
        f"{_sc_lit(to + '_')} || substr(r.relname, {keep}));",
        "  END LOOP;",
    ]
    if view:
        lines += [
            f"  IF to_regclass(format('public.%I', {_sc_lit(view)})) IS NULL THEN",
            f"    EXECUTE format('CREATE VIEW public.%I AS SELECT * FROM public.%I', "
            f"{_sc_lit(view)}, {_sc_lit(to)});",
            f"    EXECUTE format('COMMENT ON VIEW public.%I IS %L', {_sc_lit(view)}, "
            f"{_sc_lit(f'schemactl: the old name of {to} until the contract (renamed_from)')});",
            "  END IF;"]
    return "\n".join([*lines, "END $schemactl$"])


def _online_table_rename(s: dict[str, Any]) -> None:
    """Rename a table in this short transaction; its old name stays a view until the contract."""
    op.execute(_sc_rename_block(s["old"], s["new"], s["names"], None, s["old"], s["lock"],
                                s.get("referrers", [])))


def _online_table_rename_down(s: dict[str, Any]) -> None:
    """Rollback: the old-name view gone, the table (every row) back under its old name."""
    back = [[kind, new, old] for kind, old, new in s["names"]]
    keys = [[table, kind, new, old] for table, kind, old, new in s.get("referrers", [])]
    op.execute(_sc_rename_block(s["new"], s["old"], back, s["old"], None, s["lock"], keys))


def _online_table_contract(s: dict[str, Any]) -> None:
    """The contract of a table rename: the old-name view goes (a view holds no data)."""
    op.execute(f"-- online step contract of {s['table']} (renamed from {s['view']}) "
               f"[lock: {s['lock']}]\n"
               f"DO $schemactl$ BEGIN IF {_sc_view_exists(s['view'])} THEN EXECUTE "
               f"format('DROP VIEW public.%I', {_sc_lit(s['view'])}); END IF; END $schemactl$")


def _online_table_contract_down(s: dict[str, Any]) -> None:
    """Rollback of the contract: the old-name view again."""
    op.execute(f"DO $schemactl$ BEGIN IF to_regclass(format('public.%I', "
               f"{_sc_lit(s['view'])})) IS NULL THEN EXECUTE format('CREATE VIEW public.%I AS "
               f"SELECT * FROM public.%I', {_sc_lit(s['view'])}, {_sc_lit(s['table'])}); "
               f"END IF; END $schemactl$")


def _sc_column_block(s: dict[str, Any], renames: list[list[str]], names: list[list[str]]) -> str:
    """One DO block: columns renamed in the catalog (an index or key follows its column),
    with the indexes and constraints named after them."""
    t = _sc_lit(s["table"])
    lines = [f"-- online step rename_column of {s['table']} "
             + ", ".join(f"{o} → {n}" for o, n in renames) + f" [lock: {s['lock']}]",
             "DO $schemactl$", "BEGIN"]
    for old, new in renames:
        has = ("EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = format('public.%I', "
               f"{t})::regclass AND attname = {{}} AND attnum > 0 AND NOT attisdropped)")
        lines.append(f"  IF {has.format(_sc_lit(old))} AND NOT {has.format(_sc_lit(new))} THEN "
                     f"EXECUTE format('ALTER TABLE public.%I RENAME COLUMN %I TO %I', {t}, "
                     f"{_sc_lit(old)}, {_sc_lit(new)}); END IF;")
    lines += _sc_rename_names(s["table"], names)
    return "\n".join([*lines, "END $schemactl$"])


def _online_rename_columns(s: dict[str, Any]) -> None:
    """Rename columns that indexes or keys name, in this short transaction (no shadow)."""
    op.execute(_sc_column_block(s, s["columns"], s["names"]))


def _online_rename_columns_down(s: dict[str, Any]) -> None:
    """Rollback: the old column names back, with their indexes' and constraints' names."""
    op.execute(_sc_column_block(s, [[n, o] for o, n in s["columns"]],
                                [[k, n, o] for k, o, n in s["names"]]))
