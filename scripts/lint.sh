#!/usr/bin/env bash
# ruff (style, imports, bugbear) over the tree and mypy --strict over the package.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$ROOT"
echo "--- ruff" >&2
ruff check .
echo "--- mypy" >&2
mypy
