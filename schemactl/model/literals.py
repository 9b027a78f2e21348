"""What a definition may name without writing SQL: the type whitelist, default functions, numbers.

The rules (safety_rules/typing_rules.py, SC403/SC404) refuse what is not here; the code
generator (codegen/metadata.py) writes exactly this; tests/test_metadata.py checks that
the generator knows every whitelisted type.
"""

from __future__ import annotations

import re

# Base types a column may have (DESIGN.md, Types; ``T[]`` of each too).
TYPE_BASES = frozenset({
    "uuid", "text", "varchar", "smallint", "integer", "bigint", "numeric", "real",
    "double precision", "boolean", "date", "timestamptz", "timestamp", "interval", "jsonb",
    "bytea", "vector", "time", "timetz", "inet", "cidr", "macaddr", "citext", "tsvector",
    "halfvec", "sparsevec",
})
NUMERIC_BASES = frozenset({"smallint", "integer", "bigint", "numeric", "real",
                           "double precision"})
TIME_BASES = frozenset({"timestamptz", "timestamp", "date"})

# Default expressions that are SQL functions, by their lower-case spelling → the SQL written.
FUNCTION_DEFAULTS = {
    "now()": "now()",
    "current_timestamp": "CURRENT_TIMESTAMP",
    "gen_random_uuid()": "gen_random_uuid()",
}
# ... and the column types each fits.
FUNCTION_DEFAULT_TYPES: dict[str, frozenset[str]] = {
    "now()": TIME_BASES, "current_timestamp": TIME_BASES,
    "gen_random_uuid()": frozenset({"uuid"}),
}
# A number PostgreSQL reads as a bare literal on every supported version (no NaN, Infinity
# or 1_000: those are written quoted, or refused by SC404).
PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
