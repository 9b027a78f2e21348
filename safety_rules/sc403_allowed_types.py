"""SC403 allowed-types."""

from __future__ import annotations

from collections.abc import Iterator

from .base import Rule, RuleContext
from .typing_rules import INDEX_METHODS, OPCLASSES, type_problem
from .violation import Violation

# pgvector builds hnsw and ivfflat indexes on vectors of at most 2,000 dimensions.
MAX_INDEXED_VECTOR = 2000


class AllowedTypes(Rule):
    """A column type outside the whitelist, a malformed type, or an unknown index method.

    The whitelist: uuid, text, varchar(n), smallint, integer, bigint,
    numeric(p,s), real, double precision, boolean, date, timestamptz,
    timestamp, interval, jsonb, bytea, vector(n) (1 to 16000 dimensions) and
    arrays ``T[]`` of these. Index methods: btree, hash, gin, gist, brin,
    hnsw, ivfflat (the last two on vector columns).

    **Anti-pattern**

    ```yaml
    table: search_index
    columns:
      - {name: label, type: varchar(0)}
      - {name: embedding, type: vector(0)}
      - {name: payload, type: xml}
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
    hint = ("use a whitelisted type: uuid, text, varchar(n), smallint, integer, bigint, "
            "numeric(p,s), real, double precision, boolean, date, timestamptz, timestamp, "
            "interval, jsonb, bytea, vector(n), or an array T[] of these")

    def check(self, ctx: RuleContext) -> Iterator[Violation]:
        for ch in ctx.proposed_changes:
            tdef = ch.after
            assert tdef is not None
            for col in tdef.columns:
                problem = type_problem(col.type)
                if problem:
                    yield self.violation(f"column {ch.name}.{col.name}: {problem}", table=ch.name,
                                         column=col.name, tdef=tdef)
            for idx in tdef.indexes:
                method = idx.using or "btree"
                where = f"index on {ch.name}({', '.join(idx.columns)})"
                if method not in INDEX_METHODS:
                    yield self.violation(f"{where}: index method {method!r} is not allowed",
                                         table=ch.name, tdef=tdef,
                                         hint=f"use one of {', '.join(sorted(INDEX_METHODS))}")
                    continue
                if idx.opclass is not None and idx.opclass not in OPCLASSES:
                    yield self.violation(f"{where}: operator class {idx.opclass!r} is not allowed",
                                         table=ch.name, tdef=tdef,
                                         hint=f"use one of {', '.join(sorted(OPCLASSES))}")
                if method in ("hnsw", "ivfflat"):
                    cols = [tdef.column(c) for c in idx.columns]
                    if len(cols) != 1 or cols[0] is None or \
                            not cols[0].type.startswith("vector("):
                        yield self.violation(f"{where}: {method} indexes one vector(n) column",
                                             table=ch.name, tdef=tdef,
                                             hint=f"index a single vector column with {method}, "
                                                  "or use btree")
                        continue
                    spec = cols[0].type_spec
                    # pgvector refuses these when the index is built: fail at validate instead.
                    if spec and spec.args and spec.args[0] > MAX_INDEXED_VECTOR:
                        yield self.violation(
                            f"{where}: {method} indexes at most {MAX_INDEXED_VECTOR} dimensions, "
                            f"not {spec.args[0]}", table=ch.name, tdef=tdef,
                            hint="reduce the embedding's dimensions, or leave the column "
                                 "unindexed (exact search)")
                    if idx.opclass is not None and not idx.opclass.startswith("vector_") or (
                            method == "ivfflat" and idx.opclass == "vector_l1_ops"):
                        yield self.violation(
                            f"{where}: operator class {idx.opclass} does not work with {method}",
                            table=ch.name, tdef=tdef,
                            hint="use vector_cosine_ops, vector_l2_ops or vector_ip_ops")
