#!/usr/bin/env bash
# Packaging check: build the sdist and the wheel (the wheel from the sdist, so a file
# missing from the sdist fails here), install the wheel into a fresh virtualenv outside
# the source tree, and run the main loop with it on the embedded PostgreSQL:
# init, validate, propose, apply, status, diagram. Everything lives in a temporary
# folder that is removed at the end, server included.
#   bash scripts/wheel_smoke.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$ROOT"
started=$SECONDS
WORK="$(mktemp -d -t schemactl-wheel-XXXXXX)"
REPO="$WORK/app-schema"
cleanup() {
  local at=$SECONDS
  if [[ -x "$WORK/venv/bin/schemactl" && -d "$REPO" ]]; then
    "$WORK/venv/bin/schemactl" --repo "$REPO" db stop >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  echo "--- cleaned up in $((SECONDS - at)) s" >&2
}
trap cleanup EXIT

echo "--- build: sdist, then the wheel from it ($((SECONDS - started)) s)" >&2
python -m build --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log" >&2; exit 1; }
if grep -E "DeprecationWarning|is deprecated|[Dd]eprecated (since|and|in) " "$WORK/build.log" >&2; then
  echo "error: the build prints deprecation warnings (above)" >&2; exit 1
fi
SDIST=$(ls "$WORK"/dist/schemactl-*.tar.gz)
WHEEL=$(ls "$WORK"/dist/schemactl-*.whl)
VERSION=$(python -c 'import schemactl; print(schemactl.__version__)')
[[ "$WHEEL" == *"schemactl-$VERSION-"* && "$SDIST" == *"schemactl-$VERSION.tar.gz" ]] \
  || { echo "error: built $WHEEL / $SDIST, expected version $VERSION" >&2; exit 1; }
python - "$WHEEL" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
text = zipfile.ZipFile(sys.argv[1]).read(meta).decode()
assert "License-Expression: Apache-2.0" in text, "no SPDX License-Expression in METADATA"
for need in ("schemactl/__main__.py", "schemactl/schemas/definition.schema.json",
             "schemactl/templates/env.py", "core_schema/models.py", "safety_rules/registry.py"):
    assert need in names, f"{need} missing from the wheel"
assert not any(n.startswith(("tests/", "migrations/", "dynamic_schema/")) for n in names)
print(f"wheel: {len(names)} files, License-Expression: Apache-2.0", file=sys.stderr)
PY

echo "--- install the wheel into a fresh virtualenv ($((SECONDS - started)) s)" >&2
python -m venv "$WORK/venv"
# The dependencies come from a local wheelhouse, filled from the package index on first
# use (and again whenever the wheel needs something it lacks): the install still resolves
# the wheel's declared dependencies, without a minute of downloads on every run.
HOUSE="${SCHEMACTL_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/schemactl/wheelhouse}"
mkdir -p "$HOUSE"
PIP=("$WORK/venv/bin/python" -m pip --disable-pip-version-check)
if ! "${PIP[@]}" install -q --no-compile --no-index --find-links "$HOUSE" "$WHEEL" >"$WORK/pip.log" 2>&1; then
  echo "filling the wheelhouse $HOUSE from the package index" >&2
  "${PIP[@]}" download -q -d "$HOUSE" "$WHEEL" >"$WORK/pip.log" 2>&1 \
    || { grep -v "is ignored" "$WORK/pip.log" | tail -20 >&2; exit 1; }
  rm -f "$HOUSE"/schemactl-*.whl
  "${PIP[@]}" install -q --no-compile --no-index --find-links "$HOUSE" "$WHEEL" >"$WORK/pip.log" 2>&1 \
    || { grep -v "is ignored" "$WORK/pip.log" | tail -20 >&2; exit 1; }
fi
SC="$WORK/venv/bin/schemactl"
cd "$WORK"   # far from the source tree: only the installed package is importable
unset DATABASE_URL SCHEMACTL_DATABASE_URL
[[ "$("$WORK/venv/bin/python" -m schemactl --version)" == *"$VERSION"* ]]

echo "--- smoke: init, validate, propose, apply on the embedded server ($((SECONDS - started)) s)" >&2
"$SC" init "$REPO" --actor user:smoke >/dev/null
cat > "$WORK/ideas.yaml" <<'YAML'
table: ideas
columns:
  - {name: summary, type: text, nullable: false, default: ''}
  - {name: embedding, type: vector(3)}
YAML
"$SC" --repo "$REPO" propose "$WORK/ideas.yaml" --add-base-fields --dry-run --json >/dev/null
"$SC" --repo "$REPO" validate "$WORK/ideas.yaml" >/dev/null && { echo "error: validate accepted a table without base fields" >&2; exit 1; } || true
"$SC" --repo "$REPO" --actor user:smoke propose "$WORK/ideas.yaml" --add-base-fields --json >"$WORK/propose.json"
"$SC" --repo "$REPO" validate >/dev/null
"$SC" --repo "$REPO" --actor user:smoke apply --json >"$WORK/apply.json"
"$SC" --repo "$REPO" db psql -At -c "insert into ideas (summary, embedding) values ('x', '[1,2,3]') returning summary" | grep -qx x
"$SC" --repo "$REPO" status --json >"$WORK/status.json"
"$WORK/venv/bin/python" - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
applied = json.load(open(f"{work}/apply.json"))
status = json.load(open(f"{work}/status.json"))
proposed = json.load(open(f"{work}/propose.json"))
assert applied["ok"] and applied["applied"][0] == "0001_core", applied
assert applied["applied"][-1] == proposed["migration"]["revision"], (applied, proposed)
assert status["pending"] == [] and status["db_revision"] == applied["applied"][-1], status
print(f"applied {', '.join(applied['applied'])}; backup {applied['backup']['id']}",
      file=sys.stderr)
PY
echo "wheel smoke test passed: $(basename "$WHEEL") in $((SECONDS - started)) s"
