# Online column change (expand, backfill, contract): written into a migration by schemactl,
# so that plain `alembic upgrade` runs it too. See docs/online.md.
ONLINE_DEFAULTS = {"batch_rows": 5000, "batch_ms": 200, "pause_ms": 0,
                   "lock_timeout_ms": 2000, "lock_retries": 20, "retry_backoff_ms": 200,
                   "progress": None}


# The backfill's own batches set the shadow themselves: the trigger skips them (one plpgsql
# call per row less). Only a transaction that says so (SET LOCAL) is skipped.
BACKFILL_WHEN = "WHEN (current_setting('schemactl.online_backfill', true) IS DISTINCT FROM 'on')"


def _qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _online_settings() -> dict[str, Any]:
    cfg = op.get_context().config
    given = cfg.attributes.get("schemactl_online", {}) if cfg is not None else {}
    return {**ONLINE_DEFAULTS, **given}


def _online_sql(s: dict[str, Any]) -> list[str]:
    """The statements of each step, for offline SQL (`plan`, `alembic upgrade --sql`)."""
    t, k, sh = _qi(s["table"]), _qi(s["key"]), _qi(s["shadow"])
    where = f"{s['table']}.{s['new']}"

    def step(name: str) -> str:
        return f"-- online step {name} of {where} [lock: {ONLINE_STEP_LOCKS[name]}]\n"

    out = [step("expand")
           + f"ALTER TABLE public.{t} ADD COLUMN IF NOT EXISTS {sh} {s['new_type']}",
           _sync_function(s),
           f"CREATE TRIGGER {_qi(s['trigger'])} BEFORE INSERT OR UPDATE ON public.{t} "
           f"FOR EACH ROW {BACKFILL_WHEN} EXECUTE FUNCTION public.{_qi(s['function'])}()",
           step("backfill") + f"-- repeated per batch of up to [online] batch_rows rows in "
           f"{s['key']} order (fewer while a batch takes longer than batch_ms), each batch "
           "committed with its progress row, synchronous_commit off:\n"
           f"UPDATE public.{t} SET {sh} = {_fill_expr(s)} WHERE {k} IN (SELECT {k} FROM "
           f"public.{t} WHERE {k} > :last_key ORDER BY {k} LIMIT :batch_rows)"]
    if s["not_null"]:
        out += [step("validate") + f"ALTER TABLE public.{t} ADD CONSTRAINT {_qi(s['check'])} "
                f"CHECK ({sh} IS NOT NULL) NOT VALID",
                f"ALTER TABLE public.{t} VALIDATE CONSTRAINT {_qi(s['check'])}"]
    for ix in s.get("indexes", []):
        out.append(step("index") + ix["create"].replace("{name}", _qi(ix["tmp"])))
    contract = _contract_sql(s)
    out += [step("contract") + "-- one transaction under lock_timeout:\n" + contract[0],
            *contract[1:]]
    out += [step("archive") + f"CREATE TABLE schemactl_archive.{_qi(s['archive'])} AS "
            f"SELECT {k}, {_qi(s['old_hidden'])} AS {_qi(s['old'])} FROM public.{t}",
            f"ALTER TABLE public.{t} DROP COLUMN {_qi(s['old_hidden'])}"]
    return out


def _lit_sql(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _fill_expr(s: dict[str, Any], row: str = "") -> str:
    old = row + _qi(s["old"])
    if s["backfill"] is not None:
        return f"COALESCE({old}, {s['backfill']})"
    return old


def _sync_function(s: dict[str, Any]) -> str:
    """The trigger function: new from old on every write; old from new when both are public."""
    sh, old = _qi(s["shadow"]), _qi(s["old"])
    fill = _fill_expr(s, "NEW.")
    if s["public_shadow"]:
        body = f"""
  IF TG_OP = 'INSERT' THEN
    IF NEW.{sh} IS NOT NULL AND NEW.{old} IS NULL THEN
      NEW.{old} := NEW.{sh};
    ELSE
      NEW.{sh} := {fill};
    END IF;
  ELSIF NEW.{sh} IS DISTINCT FROM OLD.{sh} AND NEW.{old} IS NOT DISTINCT FROM OLD.{old} THEN
    NEW.{old} := NEW.{sh};
  ELSE
    NEW.{sh} := {fill};
  END IF;"""
    else:
        body = f"\n  NEW.{sh} := {fill};"
    return (f"CREATE OR REPLACE FUNCTION public.{_qi(s['function'])}() RETURNS trigger "
            f"LANGUAGE plpgsql AS $schemactl$\nBEGIN{body}\n  RETURN NEW;\nEND $schemactl$")


def _contract_sql(s: dict[str, Any]) -> list[str]:
    t, sh = _qi(s["table"]), _qi(s["shadow"])
    out = [f"DROP TRIGGER IF EXISTS {_qi(s['trigger'])} ON public.{t}",
           f"DROP FUNCTION IF EXISTS public.{_qi(s['function'])}()",
           f"ALTER TABLE public.{t} RENAME COLUMN {_qi(s['old'])} TO {_qi(s['old_hidden'])}"]
    if not s["public_shadow"]:
        out.append(f"ALTER TABLE public.{t} RENAME COLUMN {sh} TO {_qi(s['new'])}")
    new = _qi(s["new"])
    # The old column's NOT NULL would refuse rows written after this. It goes first: on
    # PostgreSQL 18 it is a constraint named <table>_<column>_not_null, and the new column's
    # SET NOT NULL then takes that name (as a fresh table has it), not <...>_not_null1.
    if s["old_not_null"]:
        out.append(f"ALTER TABLE public.{t} ALTER COLUMN {_qi(s['old_hidden'])} DROP NOT NULL")
    if s["not_null"]:
        out += [f"ALTER TABLE public.{t} ALTER COLUMN {new} SET NOT NULL",
                f"ALTER TABLE public.{t} DROP CONSTRAINT IF EXISTS {_qi(s['check'])}"]
    if s["default"] is not None:
        out.append(f"ALTER TABLE public.{t} ALTER COLUMN {new} SET DEFAULT {s['default']}")
    comment = "NULL" if s["comment"] is None else "'" + s["comment"].replace("'", "''") + "'"
    out.append(f"COMMENT ON COLUMN public.{t}.{new} IS {comment}")
    # The indexes built on the shadow take their names; the old ones go with the old column.
    for ix in s.get("indexes", []):
        if ix["constraint"]:
            out += [f"ALTER TABLE public.{t} RENAME CONSTRAINT {_qi(ix['old_name'])} TO "
                    f"{_qi(ix['old_hidden'])}",
                    f"ALTER TABLE public.{t} ADD CONSTRAINT {_qi(ix['name'])} UNIQUE USING "
                    f"INDEX {_qi(ix['tmp'])}"]
        else:
            out += [f"ALTER INDEX public.{_qi(ix['old_name'])} RENAME TO {_qi(ix['old_hidden'])}",
                    f"ALTER INDEX public.{_qi(ix['tmp'])} RENAME TO {_qi(ix['name'])}"]
    return out


class OnlineChangeStopped(Exception):
    """A value does not fit the new shape: stopped before the contract, expand undone."""


def _online_column(s: dict[str, Any]) -> None:
    """Expand, backfill and contract one column online; resumes where a killed run stopped."""
    ctx = op.get_context()
    if ctx.as_sql:
        for stmt in _online_sql(s):
            op.execute(stmt)
        return
    with ctx.autocommit_block():
        _OnlineRun(op.get_bind().connection.driver_connection, s, _online_settings()).run()


def _online_column_down(s: dict[str, Any]) -> None:
    """Rollback: the old shape with every value (undo the expand, or reverse the contract)."""
    ctx = op.get_context()
    rev = _reverse_spec(s)
    if ctx.as_sql:
        for stmt in _online_sql(rev):
            op.execute(stmt)
        return
    with ctx.autocommit_block():
        conn = op.get_bind().connection.driver_connection
        run = _OnlineRun(conn, s, _online_settings())
        step = run.step()
        if step is None or step in ("expand", "backfill", "validate"):
            run.undo_expand()
            run.forget()
            return
        back = _OnlineRun(conn, rev, run.settings)
        back.run()
        if rev.get("restore_nulls_from"):
            back.restore_nulls(rev["restore_nulls_from"], rev["restore_backfill"])
        back.forget()
        run.forget()


def _reverse_spec(s: dict[str, Any]) -> dict[str, Any]:
    rev = dict(s)
    rev.update({
        "revision": s["revision"] + ":down", "old": s["new"], "new": s["old"],
        "shadow": s["old"] if s["public_shadow"] else _short(SHADOW_PREFIX + s["old"]),
        "old_hidden": _short(OLD_PREFIX + s["new"]),
        "old_type": s["new_type"], "new_type": s["old_type"],
        "not_null": s["old_not_null"], "old_not_null": s["not_null"], "backfill": None,
        "check_fit": False, "fit_length": None,
        "default": s["old_default"], "old_default": s["default"],
        "comment": s["old_comment"], "old_comment": s["comment"],
        "archive": _short(s["archive"][:50] + "_down"),
        "restore_nulls_from": s["archive"] if s["backfill"] is not None else None,
        "restore_backfill": s["backfill"],
        "indexes": [{**ix, "name": ix["old_name"], "old_name": ix["name"],
                     "tmp": _short("_sc_ix_" + ix["old_name"]),
                     "old_hidden": _short("_sc_old_" + ix["name"]),
                     "create": ix["create_back"], "create_back": ix["create"],
                     "dup": ix["dup_back"], "dup_back": ix["dup"]}
                    for ix in s.get("indexes", [])],
    })
    return rev


SHADOW_PREFIX, OLD_PREFIX = "_sc_new_", "_sc_old_"


def _short(name: str) -> str:
    import hashlib

    if len(name.encode()) <= 63:
        return name
    return name[:54] + "_" + hashlib.sha256(name.encode()).hexdigest()[:8]


class _OnlineRun:
    """One online change on one psycopg connection in autocommit mode."""

    def __init__(self, conn: Any, s: dict[str, Any], settings: dict[str, Any]) -> None:
        self.conn, self.s, self.settings = conn, s, settings
        self.t = "public." + _qi(s["table"])
        self.k = _qi(s["key"])

    # -- bookkeeping ----------------------------------------------------------------
    def _progress_table(self) -> None:
        self.conn.execute("CREATE SCHEMA IF NOT EXISTS schemactl_archive")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schemactl_archive.online_progress ("
            " revision text NOT NULL, table_name text NOT NULL, column_name text NOT NULL,"
            " step text NOT NULL, shadow text, trigger_name text, function_name text,"
            " check_name text, old_column text, last_key text, rows_done bigint NOT NULL DEFAULT 0,"
            " started_at timestamptz NOT NULL DEFAULT now(),"
            " updated_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (revision, table_name, column_name))")

    def _where(self) -> tuple[str, tuple[str, str, str]]:
        return ("revision = %s AND table_name = %s AND column_name = %s",
                (self.s["revision"], self.s["table"], self.s["new"]))

    def step(self) -> str | None:
        if self.conn.execute("SELECT to_regclass('schemactl_archive.online_progress')"
                             ).fetchone()[0] is None:
            return None
        where, args = self._where()
        row = self.conn.execute(f"SELECT step FROM schemactl_archive.online_progress "
                                f"WHERE {where}", args).fetchone()
        return row[0] if row else None

    def _set(self, step: str, cur: Any = None) -> None:
        where, args = self._where()
        (cur or self.conn).execute(f"UPDATE schemactl_archive.online_progress SET step = %s, "
                                   f"updated_at = now() WHERE {where}", (step, *args))

    def forget(self) -> None:
        if self.step() is not None:
            where, args = self._where()
            self.conn.execute(f"DELETE FROM schemactl_archive.online_progress WHERE {where}",
                              args)

    def _say(self, step: str, done: int, total: int | None) -> None:
        progress = self.settings.get("progress")
        if callable(progress):
            progress(step, done, total)

    def _short_tx(self, statements: list[str], step: str | None = None) -> None:
        """Statements in one transaction under lock_timeout, retried on lock timeouts.

        They go to the server as one message: the lock taken by the first is held for the
        server's work only, not for a client round trip per statement.
        """
        import time

        tries = int(self.settings["lock_retries"])
        sql = [f"SET LOCAL lock_timeout = {int(self.settings['lock_timeout_ms'])}", *statements]
        if step is not None:
            where, args = self._where()
            sql.append(f"UPDATE schemactl_archive.online_progress SET step = {_lit_sql(step)}, "
                       f"updated_at = now() WHERE "
                       + where.replace("%s", "{}").format(*(_lit_sql(a) for a in args)))
        for attempt in range(1, tries + 1):
            try:
                with self.conn.transaction():
                    self.conn.execute(";\n".join(sql), prepare=False)
                return
            except Exception as exc:
                if getattr(exc, "sqlstate", None) != "55P03" or attempt == tries:
                    raise
                time.sleep(int(self.settings["retry_backoff_ms"]) / 1000 * attempt)

    def _columns(self) -> set[str]:
        rows = self.conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped", (self.t,)).fetchall()
        return {r[0] for r in rows}

    # -- the steps ------------------------------------------------------------------
    def run(self) -> None:
        s = self.s
        self._progress_table()
        where, args = self._where()
        step = self.step()
        if step is None:
            self._precheck()
            self.conn.execute(
                "INSERT INTO schemactl_archive.online_progress (revision, table_name, "
                "column_name, step, shadow, trigger_name, function_name, check_name, "
                "old_column) VALUES (%s, %s, %s, 'expand', %s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (*args, s["shadow"], s["trigger"], s["function"], s["check"], s["old"]))
            step = "expand"
        if step == "expand":
            self._report("expand")
            self.conn.execute(_sync_function(s))  # needs no lock on the table: before it
            self._short_tx([
                f"ALTER TABLE {self.t} ADD COLUMN IF NOT EXISTS {_qi(s['shadow'])} "
                f"{s['new_type']}",
                f"DROP TRIGGER IF EXISTS {_qi(s['trigger'])} ON {self.t}",
                f"CREATE TRIGGER {_qi(s['trigger'])} BEFORE INSERT OR UPDATE ON {self.t} "
                f"FOR EACH ROW {BACKFILL_WHEN} EXECUTE FUNCTION public.{_qi(s['function'])}()"],
                "backfill")
            step = "backfill"
        if step == "backfill":
            self._backfill()
            self._report("backfill")
            step = "validate"
        if step == "validate":
            self._validate()
            step = "contract"
        if step == "contract":
            self._build_indexes()
            self._short_tx(_contract_sql(s), "archive")
            self._report("contract")
            step = "archive"
        if step == "archive":
            self._archive()
            self._report("archive")
            step = "done"

    def _report(self, step: str) -> None:
        """A finished step, into the run's audit entry (``online``) and the progress callback."""
        where, args = self._where()
        row = self.conn.execute(f"SELECT rows_done FROM schemactl_archive.online_progress "
                                f"WHERE {where}", args).fetchone()
        rows = int(row[0]) if row else 0
        report = self.settings.get("report")
        if isinstance(report, list):
            report.append({"revision": self.s["revision"], "table": self.s["table"],
                           "column": self.s["new"], "step": step, "rows_backfilled": rows})
        self._say(f"online {self.s['table']}.{self.s['new']}: {step} done", rows, None)

    def _precheck(self) -> None:
        """Refuse before anything changes when a stored value does not fit."""
        s = self.s
        if s["check_fit"] and s["fit_length"]:
            self._stop_if(f"char_length({_qi(s['old'])}) > {int(s['fit_length'])}",
                          f"longer than {s['new_type']}", undo=False)
        if s["not_null"] and s["backfill"] is None:
            self._stop_if(f"{_qi(s['old'])} IS NULL", "NULL (and no backfill given)",
                          undo=False)

    def _stop_if(self, condition: str, what: str, undo: bool = True) -> None:
        rows = self.conn.execute(f"SELECT {self.k}::text FROM {self.t} WHERE {condition} "
                                 f"ORDER BY {self.k} LIMIT 10").fetchall()
        if not rows:
            return
        count = self.conn.execute(f"SELECT count(*) FROM {self.t} WHERE {condition}"
                                  ).fetchone()[0]
        if undo:
            self.undo_expand()
            self.forget()
        keys = ", ".join(r[0] for r in rows)
        raise OnlineChangeStopped(
            f"{self.s['table']}.{self.s['old']}: {count} row(s) hold a value {what}: "
            f"{self.s['key']} {keys}{' ...' if count > len(rows) else ''}; stopped before the "
            "contract, nothing changed")

    def _backfill(self) -> None:
        import time

        s = self.s
        where, args = self._where()
        key_type = self.conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
            "%s::regclass AND attname = %s", (self.t, s["key"])).fetchone()[0]
        total = self.conn.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            (self.t,)).fetchone()[0]
        row = self.conn.execute(f"SELECT last_key, rows_done FROM "
                                f"schemactl_archive.online_progress WHERE {where}",
                                args).fetchone()
        last, done = row[0], int(row[1])
        most, pause = int(self.settings["batch_rows"]), int(self.settings["pause_ms"])
        budget = max(int(self.settings.get("batch_ms", 0) or 0), 0) / 1000
        batch, least = most, min(most, 100)
        started, first = time.monotonic(), done
        fill = _fill_expr(s).replace("%", "%%")
        sh = _qi(s["shadow"])

        def statement(after: bool) -> str:
            # = ANY(ARRAY(...)): the batch's keys first, then one index probe each (a join
            # here may be planned as a hash join over the whole table, every batch). The first
            # batch has its own text: a `$1 IS NULL OR` would keep a generic plan off the index.
            lower = f"WHERE {self.k} > %(last)s::{key_type} " if after else ""
            return (f"WITH u AS (UPDATE {self.t} SET {sh} = {fill} WHERE {self.k} = ANY(ARRAY("
                    f"SELECT {self.k} FROM {self.t} {lower}ORDER BY {self.k} LIMIT %(n)s)) "
                    f"RETURNING {self.k} AS k) "
                    f"SELECT count(*), (SELECT k::text FROM u ORDER BY k DESC LIMIT 1) FROM u")

        stmts = {False: statement(False), True: statement(True)}
        while True:
            began = time.monotonic()
            try:
                with self.conn.transaction():
                    # The trigger skips the batch's own rows (WHEN clause). The commit need not
                    # wait for its WAL flush: the progress row commits in the same transaction,
                    # so a server crash loses batch and progress together and the resumed run
                    # redoes them; a later synchronous commit (a writer's, the contract's)
                    # flushes every batch before it.
                    self.conn.execute("SET LOCAL schemactl.online_backfill = 'on'; "
                                      "SET LOCAL synchronous_commit = off", prepare=False)
                    n, high = self.conn.execute(stmts[last is not None],
                                                {"last": last, "n": batch}).fetchone()
                    if n:
                        self.conn.execute(
                            f"UPDATE schemactl_archive.online_progress SET last_key = %s, "
                            f"rows_done = rows_done + %s, updated_at = now() WHERE {where}",
                            (high, n, *args))
                    else:
                        self._set("validate")
            except Exception as exc:
                if getattr(exc, "sqlstate", None) in ("22001", "22003", "23502"):
                    self.undo_expand()
                    self.forget()
                    raise OnlineChangeStopped(
                        f"{s['table']}.{s['old']}: a value does not fit {s['new_type']} "
                        f"({str(exc).splitlines()[0]}); stopped before the contract, nothing "
                        "changed") from exc
                raise
            if not n:
                break
            last, done = high, done + int(n)
            took = time.monotonic() - began
            if budget:  # row locks are held for a batch's length: keep it within the budget
                batch = max(least, min(most, 2 * batch, int(batch * budget / max(took, 1e-3))))
            elapsed = max(time.monotonic() - started, 1e-6)
            self._say(f"backfill {s['table']}.{s['new']} {int((done - first) / elapsed)} rows/s",
                      done, max(total, done))
            if pause:
                time.sleep(pause / 1000)

    def _validate(self) -> None:
        s = self.s
        if not s["not_null"]:
            self._set("contract")
            return
        self._stop_if(f"{_qi(s['shadow'])} IS NULL", "NULL (and no backfill given)")
        present = self.conn.execute(
            "SELECT 1 FROM pg_constraint WHERE conrelid = %s::regclass AND conname = %s",
            (self.t, s["check"])).fetchone()
        if present is None:
            self._short_tx([f"ALTER TABLE {self.t} ADD CONSTRAINT {_qi(s['check'])} CHECK "
                            f"({_qi(s['shadow'])} IS NOT NULL) NOT VALID"])
        try:
            self.conn.execute(f"ALTER TABLE {self.t} VALIDATE CONSTRAINT {_qi(s['check'])}")
        except Exception as exc:
            if getattr(exc, "sqlstate", None) == "23514":
                self._stop_if(f"{_qi(s['shadow'])} IS NULL", "NULL")
            raise
        self._set("contract")

    def _build_indexes(self) -> None:
        """The changed column's indexes built again on the shadow, CONCURRENTLY (reads and
        writes go on); a duplicate key stops the run before the contract, naming rows."""
        for ix in self.s.get("indexes", []):
            tmp = f"public.{_qi(ix['tmp'])}"
            row = self.conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = "
                                    "to_regclass(%s)", (tmp,)).fetchone()
            if row is not None and row[0]:
                continue  # built by a run that died after it
            if row is not None:  # an invalid leftover of a killed build
                self.conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {tmp}")
            try:
                self.conn.execute(ix["create"].replace("{name}", _qi(ix["tmp"])))
            except Exception as exc:
                if getattr(exc, "sqlstate", None) != "23505":
                    raise
                self.conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {tmp}")
                keys, where = ix["dup"]
                self._stop_if(f"({keys}) IN (SELECT {keys} FROM {self.t} WHERE "
                              f"{where or 'true'} GROUP BY {keys} HAVING count(*) > 1)"
                              + (f" AND {where}" if where else ""),
                              f"that another row holds too ({ix['name']} is unique)")
                raise
            self._report(f"index {ix['name']}")

    def _archive(self) -> None:
        """Copy the old column's values to the archive (keyed by row), then drop the copy."""
        s = self.s
        if s["old_hidden"] in self._columns():
            base = target = s["archive"]
            n = 1
            while self.conn.execute("SELECT to_regclass(%s)", (
                    f"schemactl_archive.{_qi(target)}",)).fetchone()[0] is not None:
                target = base[:63 - len(f"_{n}")] + f"_{n}"
                n += 1
            with self.conn.transaction():
                self.conn.execute(
                    f"CREATE TABLE schemactl_archive.{_qi(target)} AS SELECT {self.k}, "
                    f"{_qi(s['old_hidden'])} AS {_qi(s['old'])}, %s::text AS revision, "
                    f"now() AS archived_at FROM {self.t}", (s["revision"],))
                copied = self.conn.execute(
                    f"SELECT count(*) FROM schemactl_archive.{_qi(target)}").fetchone()[0]
                self.conn.execute(f"ALTER TABLE schemactl_archive.{_qi(target)} "
                                  f"ADD PRIMARY KEY ({self.k})")
                self.conn.execute(ONLINE_REGISTRY_SQL)
                self.conn.execute("""
                    INSERT INTO schemactl_archive.archive_registry (revision, kind,
                      source_table, source_column, archive_table, row_count)
                    VALUES (%s, 'column', %s, %s, %s, %s)""",
                                  (s["revision"], s["table"], s["old"], target, copied))
            self._short_tx([f"ALTER TABLE {self.t} DROP COLUMN {_qi(s['old_hidden'])}"])
        self._set("done")

    def undo_expand(self) -> None:
        """Back to the old shape: trigger, check and shadow column gone (the shadow only held
        copies of the old column's values)."""
        s = self.s
        stmts = [f"DROP TRIGGER IF EXISTS {_qi(s['trigger'])} ON {self.t}",
                 f"DROP FUNCTION IF EXISTS public.{_qi(s['function'])}()",
                 f"ALTER TABLE {self.t} DROP CONSTRAINT IF EXISTS {_qi(s['check'])}"]
        cols = self._columns()
        if s["shadow"] in cols and s["old"] in cols:
            stmts.append(f"ALTER TABLE {self.t} DROP COLUMN {_qi(s['shadow'])}")
        self._short_tx(stmts)

    def restore_nulls(self, archive: str, backfill: str) -> None:
        """Rows the backfill gave a value get their NULL back (unless changed since)."""
        s = self.s
        if self.conn.execute("SELECT to_regclass(%s)", (f"schemactl_archive.{_qi(archive)}",)
                             ).fetchone()[0] is None:
            return
        with self.conn.transaction():
            self.conn.execute(
                f"UPDATE {self.t} AS t SET {_qi(s['new'])} = NULL FROM "
                f"schemactl_archive.{_qi(archive)} AS a WHERE a.{self.k} = t.{self.k} "
                f"AND a.{_qi(s['new'])} IS NULL AND t.{_qi(s['new'])} = {backfill}")
