"""Human output of the commands people pipe into other tools: db url, db env, diagram.

Each prints bare text on stdout (a URL, `export` lines, a diagram) so that it can be
used as `$(schemactl db url --show-password)`, `eval "$(schemactl db env)"` or
`schemactl diagram > schema.mmd`.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

from schemactl.ui.output import renderer


@renderer("db url")
def _db_url(data: dict[str, Any]) -> None:
    sys.stdout.write(f"{data['url']}\n")


@renderer("db env")
def _db_env(data: dict[str, Any]) -> None:
    for name, value in (data.get("variables") or {}).items():
        sys.stdout.write(f"export {name}={shlex.quote(str(value))}\n")


@renderer("db psql")
def _db_psql(data: dict[str, Any]) -> None:
    sys.stdout.write(data.get("stdout") or "")
    sys.stderr.write(data.get("stderr") or "")


@renderer("diagram")
def _diagram(data: dict[str, Any]) -> None:
    sys.stdout.write(data.get("diagram") or "")
