"""SC403 allowed-types."""

from __future__ import annotations

from collections.abc import Iterator

from schemactl.model.definitions import Index, TableDef

from .base import Rule, RuleContext
from .typing_rules import (
    DEFAULT_OPCLASS_TYPES,
    INDEX_METHODS,
    OPCLASS_FITS,
    OPCLASSES,
    REFUSED_TYPES,
    index_type_key,
    type_problem,
)
from .violation import Violation

VECTOR_TYPES = frozenset({"vector", "halfvec", "sparsevec"})
# pgvector builds hnsw and ivfflat indexes on at most 2,000 vector or 4,000 halfvec dimensions.
MAX_INDEXED_DIMENSIONS = {"vector": 2000, "halfvec": 4000}


class AllowedTypes(Rule):
    """A column type outside the whitelist, a malformed type, or an unknown index method.

    The whitelist: uuid, text, varchar(n), citext, smallint, integer, bigint,
    numeric(p,s), real, double precision, boolean, date, time, timetz,
    timestamptz(p), timestamp(p), interval (p: 0 to 6 fractional digits),
    inet, cidr, macaddr, jsonb, bytea, tsvector, vector(n) (1 to 16000
    dimensions), halfvec(n) and sparsevec(n) (pgvector 0.7 or later) and arrays
    ``T[]`` of these. ``char(n)`` (it pads with spaces) and ``json`` (use
    jsonb) are refused with a hint. Index methods: btree, hash, gin, gist, brin,
    hnsw, ivfflat (the last two on vector columns). An index method must have
    a default operator class for each column's type, or the index names one
    that fits (gist on varchar, gin on integer and hnsw without an opclass
    cannot be built).

    **Anti-pattern**

    ```yaml
    table: search_index
    columns:
      - {name: label, type: varchar(0)}
      - {name: embedding, type: vector(0)}
      - {name: payload, type: json}
      - {name: code, type: char(3)}
    indexes:
      - {columns: [label], using: gist}
    ```

    **Best practice**

    ```yaml
    table: search_index
    columns:
      - {name: label, type: varchar(200)}
      - {name: embedding, type: vector(1536)}
      - {name: payload, type: jsonb}
    indexes:
      - {columns: [embedding], using: hnsw, opclass: vector_cosine_ops}
    ```
    """

    code = "SC403"
    name = "allowed-types"
    hint = ("use a whitelisted type: uuid, text, varchar(n), citext, smallint, integer, "
            "bigint, numeric(p,s), real, double precision, boolean, date, time, timetz, "
            "timestamptz(p), timestamp(p), interval, inet, cidr, macaddr, jsonb, bytea, "
            "tsvector, vector(n), halfvec(n), sparsevec(n), or an array T[] of these")

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        for ch in ctx.proposed_changes:
            tdef = ch.after
            assert tdef is not None
            for col in tdef.columns:
                problem = type_problem(col.type)
                if problem:
                    spec = col.type_spec
                    refused = REFUSED_TYPES.get(spec.base) if spec else None
                    yield self.violation(f"column {ch.name}.{col.name}: {problem}", table=ch.name,
                                         column=col.name, tdef=tdef,
                                         hint=refused.split("; ")[-1] if refused else None)
            for idx in tdef.indexes:
                yield from self._index(ch.name, tdef, idx)

    def _index(self, table: str, tdef: TableDef, idx: Index) -> Iterator[Violation]:
        method = idx.using or "btree"
        where = f"index on {table}({', '.join(idx.key_words)})"
        if method not in INDEX_METHODS:
            yield self.violation(f"{where}: index method {method!r} is not allowed",
                                 table=table, tdef=tdef,
                                 hint=f"use one of {', '.join(sorted(INDEX_METHODS))}")
            return
        if idx.opclass is not None and idx.opclass not in OPCLASSES:
            yield self.violation(f"{where}: operator class {idx.opclass!r} is not allowed",
                                 table=table, tdef=tdef,
                                 hint=f"use one of {', '.join(sorted(OPCLASSES))}")
            return
        if method in ("hnsw", "ivfflat"):
            cols = [tdef.column(c) for c in idx.columns]
            spec = cols[0].type_spec if len(cols) == 1 and cols[0] is not None else None
            if spec is None or spec.array or spec.base not in VECTOR_TYPES:
                yield self.violation(f"{where}: {method} indexes one vector, halfvec or "
                                     "sparsevec column", table=table, tdef=tdef,
                                     hint=f"index a single vector column with {method}, "
                                          "or use btree")
                return
            # pgvector refuses these when the index is built: fail at validate instead.
            limit = MAX_INDEXED_DIMENSIONS.get(spec.base)
            if limit and spec.args and spec.args[0] > limit:
                yield self.violation(
                    f"{where}: {method} indexes at most {limit} dimensions of {spec.base}, "
                    f"not {spec.args[0]}", table=table, tdef=tdef,
                    hint="reduce the embedding's dimensions, use halfvec(n) (up to 4,000), "
                         "or leave the column unindexed (exact search)")
        # An expression key (lower/upper of a text column) is SC407's to judge.
        for cname in dict.fromkeys(c for c, fn in idx.keys if fn is None):
            col = tdef.column(cname)
            spec = col.type_spec if col is not None else None
            if spec is None or type_problem(col.type if col else "") is not None:
                continue  # an unknown column or type is reported on its own
            key = index_type_key(spec)
            fitting = sorted(o for o, fits in OPCLASS_FITS.items() if (method, key) in fits)
            if idx.opclass is not None:
                if (method, key) not in OPCLASS_FITS[idx.opclass]:
                    yield self.violation(
                        f"{where}: operator class {idx.opclass} does not work with {method} "
                        f"on {cname} ({spec})", table=table, column=cname, tdef=tdef,
                        hint=(f"use {' or '.join(fitting)}" if fitting else
                              f"drop the opclass, or index {cname} with btree"))
            elif key not in DEFAULT_OPCLASS_TYPES[method]:
                yield self.violation(
                    f"{where}: {method} has no default operator class for {cname} ({spec}); "
                    "the index cannot be built", table=table, column=cname, tdef=tdef,
                    hint=(f"give an opclass: {', '.join(fitting)}" if fitting else
                          f"index {cname} with btree (or another method that fits {spec})"))
