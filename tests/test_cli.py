"""The CLI's error → exit code mapping, driven in-process by click's CliRunner (fast).

Every expected error is one line (or one JSON object with --json) and its exit code:
2 bad input, 3 environment, 4 conflict; nothing reads sys.argv, so the runner can drive it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from schemactl.cli import main

# Nothing listens on port 1: connecting fails at once (an environment error, exit 3).
DOWN_URL = "postgresql://someone:s3cret-pw@127.0.0.1:1/nowhere"


def run(*args: str, cwd: Path | None = None, input: str | None = None) -> Any:
    runner = CliRunner()
    if cwd is None:
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)
    import os

    here = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)
    finally:
        os.chdir(here)


def one_object(text: str) -> dict[str, Any]:
    data = json.loads(text)
    assert isinstance(data, dict)
    assert {"ok", "command", "violations", "error"} <= set(data)
    return data


def test_bad_input_is_exit_2_and_one_json_object() -> None:
    res = run("rollback", "--to", "0002_x", "--restore-backup", "b1", "--json")
    assert res.exit_code == 2
    data = one_object(res.stdout)
    assert data["ok"] is False and data["command"] == "rollback"
    assert data["error"]["code"] == "bad_input"


def test_bad_input_without_json_is_one_line_and_no_traceback() -> None:
    res = run("rollback", "--to", "0002_x", "--restore-backup", "b1")
    assert res.exit_code == 2
    assert "cannot be combined" in res.stderr
    assert "Traceback" not in res.output + res.stderr


def test_usage_error_with_json_is_still_one_object() -> None:
    res = run("validate", "--no-such-option", "--json")
    assert res.exit_code == 2
    data = one_object(res.stdout)
    assert data["error"]["code"] == "usage" and data["command"] == "validate"


def test_unknown_definition_file_is_bad_input(repo: Path) -> None:
    res = run("validate", "nope.yaml", "--json", cwd=repo)
    assert res.exit_code == 2
    assert one_object(res.stdout)["error"]["code"] == "bad_input"


def test_unreachable_database_is_exit_3_and_keeps_the_password_out(repo: Path) -> None:
    res = run("--json", "apply", "--database-url", DOWN_URL, cwd=repo)
    assert res.exit_code == 3
    data = one_object(res.stdout)
    assert data["command"] == "apply" and data["ok"] is False
    assert "s3cret-pw" not in res.output + res.stderr


NOTES = ("table: notes\ncolumns:\n"
         "  - {name: id, type: uuid, primary_key: true, default: gen_random_uuid()}\n"
         "  - {name: created_at, type: timestamptz, nullable: false, default: now()}\n"
         "  - {name: updated_at, type: timestamptz, nullable: false, default: now()}\n"
         "  - {name: is_deleted, type: boolean, nullable: false, default: false}\n"
         "  - {name: created_by, type: bigint}\n")


def test_uncommitted_definition_is_a_conflict_exit_4(repo: Path) -> None:
    """Proposing over a definition file with uncommitted edits would lose them."""
    (repo / "dynamic_schema" / "notes.yaml").write_text(NOTES + "# my edit\n")
    res = run("propose", "-", "--json", cwd=repo, input=NOTES)
    assert res.exit_code == 4, res.output
    data = one_object(res.stdout)
    assert data["command"] == "propose" and data["ok"] is False
    assert (repo / "dynamic_schema" / "notes.yaml").read_text().endswith("# my edit\n")
    assert not list((repo / "migrations" / "versions").glob("0002_*.py"))


def test_schema_json_is_wrapped_like_every_command() -> None:
    res = run("schema", "--json")
    assert res.exit_code == 0
    data = one_object(res.stdout)
    assert data["ok"] is True and data["command"] == "schema"
    assert data["schema"]["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    plain = json.loads(run("schema").stdout)  # without --json: the JSON Schema itself
    assert plain == data["schema"]


@pytest.mark.parametrize("fmt", ["json", "markdown"])
def test_check_formats_go_through_one_emit(repo: Path, fmt: str) -> None:
    res = run("check", "--base", "HEAD", "--format", fmt, cwd=repo)
    assert res.exit_code == 0, res.output
    if fmt == "json":
        assert one_object(res.stdout)["command"] == "check"
    else:
        assert res.stdout.strip()


def test_a_bug_is_one_line_exit_3_and_still_one_json_object(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception nothing expects (a bug) reaches an agent as an error object, not a
    traceback and exit 1, which would read as "your change was rejected"."""
    from schemactl import api

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a\nsurprise")

    monkeypatch.setattr(api, "status", broken)
    res = run("status", "--json", cwd=repo)
    assert res.exit_code == 3
    data = one_object(res.stdout)
    assert data["error"]["code"] == "internal", data
    assert data["error"]["message"] == "internal error: RuntimeError: a surprise"
    assert "SCHEMACTL_DEBUG=1" in data["error"]["hint"]
    human = run("status", cwd=repo)
    assert human.exit_code == 3 and "Traceback" not in human.output + human.stderr
    assert "internal error: RuntimeError" in human.stderr
    monkeypatch.setenv("SCHEMACTL_DEBUG", "1")
    with pytest.raises(RuntimeError):
        run("status", cwd=repo)
