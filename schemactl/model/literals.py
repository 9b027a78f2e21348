"""The SQL a definition may name without writing SQL: default functions, numbers, numeric types."""

from __future__ import annotations

import re

# Default expressions that are SQL functions, by their lower-case spelling → the SQL written.
FUNCTION_DEFAULTS = {
    "now()": "now()",
    "current_timestamp": "CURRENT_TIMESTAMP",
    "gen_random_uuid()": "gen_random_uuid()",
}
NUMERIC_BASES = frozenset({"smallint", "integer", "bigint", "numeric", "real",
                           "double precision"})
# A number PostgreSQL reads as a bare literal on every supported version (no NaN, Infinity
# or 1_000: those are written quoted, or refused by SC404).
PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
