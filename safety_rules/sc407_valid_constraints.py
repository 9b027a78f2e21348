"""SC407 valid-constraints."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import replace

from schemactl.model.definitions import Column, Index, TableDef
from schemactl.model.literals import NUMERIC_BASES as NUMBER_TYPES
from schemactl.model.literals import TIME_BASES as TIME_TYPES

from .base import Rule, RuleContext, TableChange
from .typing_rules import STRING_TYPES, default_problem
from .violation import Violation

TEXT_TYPES = STRING_TYPES | {"citext"}
# Types a table check may compare, by family (a comparison across families fails).
_FAMILIES = (NUMBER_TYPES, TEXT_TYPES, TIME_TYPES | {"time", "timetz", "interval"},
             frozenset({"uuid"}), frozenset({"boolean"}), frozenset({"inet", "cidr"}))
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
# Text search configurations every supported PostgreSQL (15 to 18) ships.
TS_CONFIGS = frozenset({
    "simple", "arabic", "danish", "dutch", "english", "finnish", "french", "german", "greek",
    "hungarian", "indonesian", "irish", "italian", "lithuanian", "nepali", "norwegian",
    "portuguese", "romanian", "russian", "spanish", "swedish", "tamil", "turkish",
})


def _base(col: Column | None) -> str | None:
    spec = col.type_spec if col is not None else None
    if spec is None:
        return None
    return "array" if spec.array else spec.base


def _family(base: str | None) -> int | None:
    return next((i for i, f in enumerate(_FAMILIES) if base in f), None)


class ValidConstraints(Rule):
    """A check, partial index, index option or generated column that cannot work as written.

    Structured checks, predicates and generated columns are turned into SQL by
    schemactl; this rule makes sure that SQL means what the definition says and
    can apply: ``min``/``max`` on numbers, lengths and ``pattern`` on text,
    ``allowed`` values and ``where`` literals of the column's type, a default
    that passes the column's own check, table checks between two existing
    columns of comparable types, ``include`` and ``with`` only where the index
    method takes them (hnsw ``m`` 2-100 and ``ef_construction`` 4-1000,
    ivfflat ``lists``), ``set_null`` only on a nullable column, and a generated
    column of the right type over existing text columns. A generated column
    cannot be added to (or changed on) an existing table: PostgreSQL rewrites
    the whole table under an exclusive lock. An expression key of an index
    (``{lower: email}``, ``{upper: code}``) applies to a text or varchar column
    (a citext column needs none) in a btree index without an opclass.

    **Anti-pattern**

    ```yaml
    table: members
    columns:
      - {name: id, type: uuid, primary_key: true}
      - {name: age, type: integer, check: {min_length: 3}}
      - {name: status, type: varchar(20), default: gone, check: {allowed: [active, archived]}}
      - {name: team, type: uuid, nullable: false, references: {to: teams.id, on_delete: set_null}}
      - {name: search, type: text, generated: {tsvector: [status], config: klingon}}
    indexes:
      - {columns: [status], where: {age: young}}
      - {columns: [{lower: age}], unique: true}
    ```

    **Best practice**

    ```yaml
    table: members
    columns:
      - {name: id, type: uuid, primary_key: true}
      - {name: age, type: integer, check: {min: 0, max: 150}}
      - {name: status, type: varchar(20), default: active, check: {allowed: [active, archived]}}
      - {name: team_id, type: uuid, references: {to: teams.id, on_delete: set_null}}
      - {name: search, type: tsvector, generated: {tsvector: [status], config: simple}}
    indexes:
      - {columns: [status], where: {age: 30}}
      - {columns: [{lower: status}], unique: true}
    ```
    """

    code = "SC407"
    name = "valid-constraints"
    hint = ("write checks, predicates and generated columns over existing columns of fitting "
            "types (see docs/definitions.md)")

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        for ch in ctx.proposed_changes:
            tdef = ch.after
            assert tdef is not None
            for col in tdef.columns:
                yield from self._column(tdef, col)
            for chk in tdef.checks:
                where = f"check {chk.check_name(tdef.table)}"
                if chk.name is not None and not _IDENT.match(chk.name):
                    yield self._v(tdef, f"{where}: the name is not ^[a-z_][a-z0-9_]*$")
                left, right = tdef.column(chk.left), tdef.column(chk.right)
                for side, side_col in ((chk.left, left), (chk.right, right)):
                    if side_col is None:
                        yield self._v(tdef, f"{where} names the unknown column {side}",
                                      hint="compare two columns the table defines")
                if left is not None and right is not None and (
                        _family(_base(left)) is None
                        or _family(_base(left)) != _family(_base(right))):
                    yield self._v(tdef, f"{where} compares {left.type} with {right.type}",
                                  hint="compare columns of comparable types (numbers, text, "
                                       "times)")
            for idx in tdef.indexes:
                yield from self._index(tdef, idx)
            for ref in tdef.references:
                fixed = [c for c in ref.columns if (key := tdef.column(c)) is not None
                         and not key.nullable]
                if "set_null" in (ref.on_delete, ref.on_update) and fixed:
                    yield self._v(tdef, f"{', '.join(fixed)} {'is' if len(fixed) == 1 else 'are'}"
                                        " NOT NULL but the reference "
                                        f"({', '.join(ref.columns)}) sets it to NULL",
                                  column=fixed[0], hint="make the columns nullable, or use "
                                                        "cascade or restrict")
            yield from self._generated_on_existing(ch)

    def _v(self, tdef: TableDef, message: str, column: str | None = None,
           hint: str | None = None) -> Violation:
        return self.violation(f"{tdef.table}: {message}", table=tdef.table, column=column,
                              tdef=tdef, hint=hint)

    def _column(self, tdef: TableDef, col: Column) -> Iterator[Violation]:
        base, name = _base(col), col.name
        if col.on_delete == "set_null" or col.on_update == "set_null":
            if not col.nullable:
                yield self._v(tdef, f"{name} is NOT NULL but its reference sets it to NULL",
                              column=name, hint="make the column nullable, or use cascade or "
                                                "restrict")
        chk = col.check
        if chk is not None:
            if (chk.min is not None or chk.max is not None) and base not in NUMBER_TYPES:
                yield self._v(tdef, f"check min/max on {name} ({col.type}) needs a number "
                                    "column", column=name,
                              hint="use min_length/max_length for text, allowed for a set")
            for bound in (chk.min, chk.max):
                if isinstance(bound, float) and not math.isfinite(bound):
                    yield self._v(tdef, f"check bound {bound!r} on {name} is not finite",
                                  column=name)
            if chk.min is not None and chk.max is not None and chk.min > chk.max:
                yield self._v(tdef, f"check on {name}: min {chk.min} > max {chk.max}",
                              column=name)
            text_only = [k for k in ("min_length", "max_length", "pattern")
                         if getattr(chk, k) is not None]
            if text_only and base not in TEXT_TYPES:
                yield self._v(tdef, f"check {', '.join(text_only)} on {name} ({col.type}) "
                                    "needs a text column", column=name)
            for k in ("min_length", "max_length"):
                value = getattr(chk, k)
                if value is not None and value < 0:
                    yield self._v(tdef, f"check {k} on {name} is negative", column=name)
            if chk.min_length is not None and chk.max_length is not None and \
                    chk.min_length > chk.max_length:
                yield self._v(tdef, f"check on {name}: min_length > max_length", column=name)
            if chk.pattern is not None:
                try:
                    re.compile(chk.pattern)
                except re.error as exc:
                    yield self._v(tdef, f"check pattern on {name} is not a regular "
                                        f"expression ({exc})", column=name)
            for value in chk.allowed or ():
                problem = default_problem(replace(col, default=value, has_default=True))
                if problem:
                    yield self._v(tdef, f"allowed value {value!r} of {name}: "
                                        f"{problem.replace('default ', '', 1)}", column=name,
                                  hint=f"list literals of type {col.type}")
            failing = _default_fails(col)
            if failing:
                yield self._v(tdef, f"the default {col.default!r} of {name} fails its own "
                                    f"check ({failing})", column=name,
                              hint="change the default or the check so that they agree")
        if col.generated is not None:
            yield from self._generated(tdef, col)

    def _generated(self, tdef: TableDef, col: Column) -> Iterator[Violation]:
        gen = col.generated
        assert gen is not None
        name, base = col.name, _base(col)
        want = "tsvector" if gen.kind == "tsvector" else "text or varchar"
        if (gen.kind == "tsvector" and base != "tsvector") or (
                gen.kind == "lower" and base not in STRING_TYPES):
            yield self._v(tdef, f"generated {name} is {col.type}, the expression gives {want}",
                          column=name, hint=f"declare {name} as {want.split(' ')[0]}")
        if gen.kind == "tsvector" and gen.config not in TS_CONFIGS:
            yield self._v(tdef, f"text search configuration {gen.config!r} of {name} is not "
                                "one every PostgreSQL ships", column=name,
                          hint=f"use one of {', '.join(sorted(TS_CONFIGS))}")
        for source in gen.columns:
            src = tdef.column(source)
            if src is None or src.name == name:
                yield self._v(tdef, f"generated {name} reads the unknown column {source}",
                              column=name)
            elif src.generated is not None:
                yield self._v(tdef, f"generated {name} reads the generated column {source}",
                              column=name, hint="read plain columns only")
            elif _base(src) not in TEXT_TYPES:
                yield self._v(tdef, f"generated {name} reads {source} ({src.type}), not text",
                              column=name)
        if col.has_default or col.primary_key or col.references:
            yield self._v(tdef, f"generated {name} cannot have a default, be a key or reference",
                          column=name)

    def _generated_on_existing(self, ch: TableChange) -> Iterator[Violation]:
        if ch.before is None or ch.after is None:
            return
        for col in ch.after.columns:
            old = ch.before.column(col.name)
            if col.generated is not None and (old is None or old.generated != col.generated):
                yield self._v(ch.after, f"generated {col.name} on the existing table rewrites "
                                        "it under an exclusive lock", column=col.name,
                              hint="create generated columns with their table; on an existing "
                                   "table add a plain column and fill it in the application")
            elif old is not None and old.generated is not None and col.generated is None:
                yield self._v(ch.after, f"{col.name} stops being generated", column=col.name,
                              hint="keep the generated form")

    def _index(self, tdef: TableDef, idx: Index) -> Iterator[Violation]:
        iname = idx.index_name(tdef.table)
        method = idx.using or "btree"
        for pred in idx.where:
            col = tdef.column(pred.column)
            if col is None:
                yield self._v(tdef, f"index {iname}: where names the unknown column "
                                    f"{pred.column}")
            elif pred.op == "=":
                problem = default_problem(replace(col, default=pred.value, has_default=True))
                if problem:
                    yield self._v(tdef, f"index {iname}: where {pred.column} = "
                                        f"{pred.value!r}: {problem.replace('default ', '', 1)}",
                                  column=pred.column)
        yield from self._expressions(tdef, idx, iname, method)
        for c in idx.include:
            if tdef.column(c) is None:
                yield self._v(tdef, f"index {iname} includes the unknown column {c}")
            elif c in idx.columns:
                yield self._v(tdef, f"index {iname} lists {c} as a key and in include")
        if idx.include and method not in ("btree", "gist"):
            yield self._v(tdef, f"index {iname}: {method} takes no include columns",
                          hint="include columns work with btree and gist")
        for key, value in idx.storage:
            # Imported here: most definitions have no storage parameters.
            from schemactl.model.constraints import STORAGE_METHODS, STORAGE_PARAMETERS

            lo, hi = STORAGE_PARAMETERS[key]
            if method not in STORAGE_METHODS[key]:
                yield self._v(tdef, f"index {iname}: {method} takes no storage parameter "
                                    f"{key}", hint=f"{key} is for "
                                                   f"{' and '.join(STORAGE_METHODS[key])}")
            elif not lo <= value <= hi:
                yield self._v(tdef, f"index {iname}: {key} = {value} is outside {lo}..{hi}")
        params = dict(idx.storage)
        if "m" in params and "ef_construction" in params and \
                params["ef_construction"] < 2 * params["m"]:
            yield self._v(tdef, f"index {iname}: ef_construction must be at least 2 * m",
                          hint="pgvector refuses ef_construction < 2 * m")


    def _expressions(self, tdef: TableDef, idx: Index, iname: str, method: str
                     ) -> Iterator[Violation]:
        """Expression keys (``{lower: email}``): a text column, a btree index, no opclass."""
        for cname, fn in idx.keys:
            col = tdef.column(cname)
            if fn is None or col is None:
                continue  # an unknown column is SC405's finding
            if _base(col) == "citext":
                yield self._v(tdef, f"index {iname}: {fn}({cname}) on citext, which compares "
                                    "without case already", column=cname,
                              hint=f"index the column itself: columns: [{cname}]")
            elif _base(col) not in STRING_TYPES:
                yield self._v(tdef, f"index {iname}: {fn}({cname}) needs a text column, "
                                    f"{cname} is {col.type}", column=cname,
                              hint=f"apply {fn} to a text or varchar column")
        if idx.functions and method != "btree":
            yield self._v(tdef, f"index {iname}: expression keys need a btree index, not "
                                f"{method}", hint="leave `using` out for lower/upper keys")
        if idx.functions and idx.opclass:
            yield self._v(tdef, f"index {iname}: an opclass with expression keys is not "
                                "supported", hint="drop the opclass (btree's default serves "
                                                  "= and sorting)")


def _default_fails(col: Column) -> str | None:
    """Which part of the column's check its literal default fails (None when it passes)."""
    chk, value = col.check, col.default
    if chk is None or not col.has_default or value is None or isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().lower() in ("now()", "current_timestamp",
                                                            "gen_random_uuid()"):
        return None
    if chk.allowed is not None and value not in chk.allowed and str(value) not in {
            str(v) for v in chk.allowed}:
        return "allowed"
    number: float | None = None
    if isinstance(value, (int, float)):
        number = value
    else:
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is not None:
        if chk.min is not None and number < chk.min:
            return "min"
        if chk.max is not None and number > chk.max:
            return "max"
    if isinstance(value, str):
        if chk.min_length is not None and len(value) < chk.min_length:
            return "min_length"
        if chk.max_length is not None and len(value) > chk.max_length:
            return "max_length"
        if chk.pattern is not None:
            try:
                if re.search(chk.pattern, value) is None:
                    return "pattern"
            except re.error:
                return None
    return None
