"""The `schemactl` program: a lean path for a plain `validate`, click for everything else.

Agents and hooks run `schemactl validate FILE --json` in loops, and a cold process spent
more time importing click, its two dozen commands and the whole API than checking one
table. When the arguments are only ``validate``, file paths and at most one ``--json``,
this module runs the verb itself, with the same output, messages and exit codes as
`schemactl.cli` (tests/test_cli_fast.py compares the two); any other command line, or
anything unusual (an option, ``-``, a folder), goes to click unchanged.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any, NoReturn


def main(args: list[str] | None = None, prog_name: str | None = None) -> Any:
    """The console script's entry point (and `python -m schemactl`)."""
    argv = sys.argv[1:] if args is None else list(args)
    files = plain_validate(argv)
    if files is not None:
        validate(files, as_json="--json" in argv)
    from schemactl.cli import main as click_main

    return click_main(args=args, prog_name=prog_name)


def plain_validate(argv: list[str]) -> list[str] | None:
    """The files of ``validate [FILE...] [--json]``, or None for any other command line."""
    if not argv or argv[0] != "validate" or argv.count("--json") > 1:
        return None
    files = [a for a in argv[1:] if a != "--json"]
    # Options, stdin and folders (click's usage error) stay click's.
    if any(not f or f.startswith("-") or os.path.isdir(f) for f in files):
        return None
    return files


def validate(files: list[str], as_json: bool) -> NoReturn:
    """`schemactl validate FILE... [--json]`, as `schemactl.cli` runs it; exits."""
    import gc

    # The cycle collector's default pace (every 700 new objects) rescans the modules being
    # imported some 20 times, about 4 ms of a cold validate that imports 13,000 objects'
    # worth; at this pace a small run never collects and a large one still does.
    gc.set_threshold(50_000, 20, 20)
    from schemactl.errors import SchemactlError, internal, translate
    from schemactl.ui import output

    try:
        try:
            from schemactl.rules import verb

            result = verb.validate(None, files=files or None, stdin=None, base="HEAD",
                                   actor=None)
            data = result.to_json()
            if as_json:
                output.print_json(data)
            else:
                output.print_human(data)
            code = 0 if data.get("ok", True) else result.exit_code
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as raw:
            if os.environ.get("SCHEMACTL_DEBUG"):
                raise
            raise (translate(raw) or internal(raw)) from raw
    except SchemactlError as exc:
        output.report_error("validate", exc, as_json)
        code = exc.exit_code
    except KeyboardInterrupt:
        output.print_error("interrupted")
        code = 130
    _exit(code)


def _exit(code: int) -> NoReturn:
    """End the process once its answer is out, without tearing the interpreter down.

    Freeing some two hundred modules and everything they hold costs a cold validate about
    10 ms, more than its rules; nothing is left to do (no thread, no atexit handler, and
    the parse cache commits each write, as it survives a kill). When the output cannot be
    flushed (a closed pipe) the normal exit reports it, as the click path does.
    """
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        sys.exit(code)
    os._exit(code)
