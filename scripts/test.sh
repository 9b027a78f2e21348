#!/usr/bin/env bash
# The whole test suite against a real PostgreSQL.
#   bash scripts/test.sh                 # $DATABASE_URL if set, else Docker, else the embedded PostgreSQL 18
#   bash scripts/test.sh --pg15          # the distribution's PostgreSQL 15 (/usr/lib/postgresql/15/bin)
#   bash scripts/test.sh -k apply -x     # extra arguments go to pytest
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$ROOT"
# pytest keeps only its three newest base folders under one shared root, so two checkouts
# testing at once would remove each other's folders: each checkout gets its own root.
if [[ -z "${PYTEST_DEBUG_TEMPROOT:-}" ]]; then
  PYTEST_DEBUG_TEMPROOT="/tmp/schemactl-tests-$(printf %s "$ROOT" | cksum | cut -d" " -f1)"
  mkdir -p "$PYTEST_DEBUG_TEMPROOT"
  export PYTEST_DEBUG_TEMPROOT
fi
if [[ "${1:-}" == "--pg15" ]]; then
  shift
  export SCHEMACTL_TEST_PG_BIN="${SCHEMACTL_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}"
  [[ -x "$SCHEMACTL_TEST_PG_BIN/postgres" ]] || { echo "error: no PostgreSQL 15 at $SCHEMACTL_TEST_PG_BIN (apt-get install postgresql-15)" >&2; exit 3; }
fi
exec python -m pytest "$@"
