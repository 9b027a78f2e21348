#!/usr/bin/env bash
# The main job: a full schemactl loop on the embedded PostgreSQL in a temporary repository.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
exec python "$ROOT/scripts/demo.py" "$@"
