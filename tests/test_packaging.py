"""Packaging facts that a build would only show as warnings (scripts/wheel_smoke.sh builds
and installs the real wheel in CI)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import schemactl
from tests.conftest import REPO_ROOT


def test_license_is_an_spdx_expression_and_the_version_has_one_home() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"  # not the deprecated table form
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "schemactl.__version__"}
    build_requires = project["build-system"]["requires"]
    assert any(r.startswith("setuptools>=") and int(r.split(">=")[1].split(".")[0]) >= 77
               for r in build_requires), build_requires  # SPDX license needs setuptools 77
    assert (REPO_ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")


def test_python_dash_m_schemactl_is_the_command_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "schemactl", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"schemactl, version {schemactl.__version__}"
    bad = subprocess.run([sys.executable, "-m", "schemactl", "no-such-command"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Usage: schemactl" in bad.stderr


def test_ci_runs_the_wheel_smoke_test() -> None:
    assert "bash scripts/wheel_smoke.sh" in (REPO_ROOT / ".ci" / "run").read_text()


def test_click_shell_completion_lists_commands() -> None:
    env = {**os.environ, "COMP_WORDS": "schemactl db ", "COMP_CWORD": "2",
           "_SCHEMACTL_COMPLETE": "bash_complete"}
    proc = subprocess.run([sys.executable, "-c", "from schemactl.cli import main; "
                           "main(prog_name='schemactl')"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert {"plain,url", "plain,env", "plain,psql", "plain,status"} <= set(
        proc.stdout.split())
