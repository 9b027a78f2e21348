"""compose.yaml: PostgreSQL 16 with pgvector in Docker, checked without Docker.

The structure a user relies on (image, credentials from .env, healthcheck, named volume,
loopback port) is asserted on the parsed file; `docker compose config` also runs when a
Docker CLI with the compose plugin is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO_ROOT

COMPOSE = REPO_ROOT / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict:  # type: ignore[type-arg]
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_one_postgres_service_with_pgvector_16(compose: dict) -> None:  # type: ignore[type-arg]
    assert list(compose["services"]) == ["postgres"]
    assert compose["services"]["postgres"]["image"] == "pgvector/pgvector:pg16"


def test_credentials_come_from_the_environment(compose: dict) -> None:  # type: ignore[type-arg]
    env = compose["services"]["postgres"]["environment"]
    assert set(env) == {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}
    for name, value in env.items():
        assert re.fullmatch(r"\$\{" + name + r"(:-[a-z_]+|:\?[^}]+)\}", value), (name, value)
    # No default password: compose refuses to start until .env sets one.
    assert env["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_healthcheck_runs_pg_isready(compose: dict) -> None:  # type: ignore[type-arg]
    check = compose["services"]["postgres"]["healthcheck"]
    assert check["test"][0] == "CMD-SHELL" and check["test"][1].startswith("pg_isready ")
    assert "$${POSTGRES_USER}" in check["test"][1]  # $$: expanded in the container
    for key in ("interval", "timeout", "retries"):
        assert check[key]


def test_data_lives_in_a_named_volume(compose: dict) -> None:  # type: ignore[type-arg]
    mounts = compose["services"]["postgres"]["volumes"]
    assert mounts == ["pgdata:/var/lib/postgresql/data"]
    assert "pgdata" in compose["volumes"]


def test_port_is_published_on_loopback_only(compose: dict) -> None:  # type: ignore[type-arg]
    (port,) = compose["services"]["postgres"]["ports"]
    assert port.startswith("127.0.0.1:") and port.endswith(":5432")


def test_env_example_has_every_variable_and_no_password() -> None:
    example = dict(line.split("=", 1) for line in
                   (REPO_ROOT / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert set(example) == {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "POSTGRES_PORT"}
    assert example["POSTGRES_PASSWORD"] == ""


def test_env_is_git_ignored_and_the_example_is_not() -> None:
    ignored = subprocess.run(["git", "-C", str(REPO_ROOT), "check-ignore", "-q", ".env"])
    assert ignored.returncode == 0
    example = subprocess.run(["git", "-C", str(REPO_ROOT), "check-ignore", "-q",
                              ".env.example"])
    assert example.returncode == 1


def _has_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    return probe.returncode == 0 and "version" in probe.stdout.lower()


@pytest.mark.skipif(not _has_compose(), reason="no Docker CLI with the compose plugin")
def test_docker_compose_config_accepts_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = tmp_path / ".env"
    env.write_text("POSTGRES_PASSWORD=example-only\n")
    proc = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "--env-file", str(env),
                           "config", "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
