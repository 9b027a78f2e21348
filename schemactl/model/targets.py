"""`[targets]` of schemactl.toml: the named databases of a fleet (DESIGN.md, Fleet).

Imported only when a repository names targets: most do not, and a cold command should not
build what it will not use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from schemactl.errors import BadInputError

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class TargetSpec:
    """A named database of the fleet (DESIGN.md, Fleet): how to reach it, never a password.

    Exactly one of ``url`` (no password in it: libpq's PGPASSWORD, .pgpass or service file
    supply it), ``url_env`` (the environment variable holding the whole URL) or
    ``database`` (a database on the repository's embedded server).
    """

    name: str
    url: str | None = None
    url_env: str | None = None
    database: str | None = None
    group: str | None = None

    @property
    def source(self) -> str:
        """Where the URL comes from, safe to show."""
        if self.url is not None:
            return self.url
        if self.url_env is not None:
            return f"${self.url_env}"
        return f"embedded/{self.database}"


_TARGET_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def _has_password(url: str) -> bool:
    try:
        parts = urlsplit(url)
        in_netloc = parts.password is not None
    except ValueError:
        return False
    return in_netloc or any(k.lower() == "password" for k, _ in parse_qsl(parts.query))


def targets_from_toml(raw: Any, config_file: str) -> tuple[TargetSpec, ...]:
    """The ``[targets]`` table of ``config_file``, checked.

    Raises:
        BadInputError: a target is malformed, or its URL holds a password.
    """
    if not isinstance(raw, dict):
        raise BadInputError(f"{config_file}: [targets] must be a table of [targets.NAME]")
    out = []
    for name, item in raw.items():
        where = f"{config_file}: targets.{name}"
        if not re.match(_TARGET_NAME, str(name)):
            raise BadInputError(f"{where}: a target name is letters, digits, '_', '.' or '-'")
        if not isinstance(item, dict):
            raise BadInputError(f"{where} must be a table (url, url_env or database; group)")
        unknown = sorted(set(item) - {"url", "url_env", "database", "group"})
        if unknown:
            raise BadInputError(f"{where}: unknown key(s) {', '.join(unknown)}",
                                hint="a target has url, url_env or database, and group")
        given = [k for k in ("url", "url_env", "database") if k in item]
        if len(given) != 1:
            raise BadInputError(f"{where} needs exactly one of url, url_env or database",
                                hint='url = "postgresql://app@db1:5432/app" or '
                                     'url_env = "PROD_DATABASE_URL"')
        values = {k: item[k] for k in ("url", "url_env", "database", "group") if k in item}
        for k, v in values.items():
            if not isinstance(v, str) or not v:
                raise BadInputError(f"{where}.{k} must be a non-empty string")
        url = values.get("url")
        if url is not None and _has_password(url):
            # Never echo the URL: it holds the secret.
            raise BadInputError(
                f"{where}.url holds a password; {config_file} is committed to git",
                hint="remove it from the URL and let libpq find it (PGPASSWORD, ~/.pgpass, "
                     "a service file), or name an environment variable: url_env = \"VAR\"",
                code="password_in_config")
        env = values.get("url_env")
        if env is not None and not re.match(_ENV_NAME, env):
            raise BadInputError(f"{where}.url_env must name an environment variable",
                                hint='url_env = "STAGING_DATABASE_URL"')
        out.append(TargetSpec(name=str(name), url=url, url_env=env,
                              database=values.get("database"), group=values.get("group")))
    return tuple(out)
