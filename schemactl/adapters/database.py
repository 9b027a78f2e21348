"""Which database a command talks to, and how it connects (psycopg 3).

Resolution order (DESIGN.md): `--database-url`, then $SCHEMACTL_DATABASE_URL,
then $DATABASE_URL, then the repository's embedded server (started on demand).
A :class:`Target` keeps the secret URL for connecting and a redacted one for
everything that is shown, logged or recorded.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from schemactl.errors import BadInputError, DatabaseError

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy.engine import Engine

    from schemactl.adapters.paths import RepoPaths

_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2")


_ENCODE_HINT = ("percent-encode special characters of the user name and password: "
                "@ as %40, : as %3A, / as %2F, # as %23, % as %25")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _unparsable(why: str) -> BadInputError:
    # Never any part of the URL in the message: it may be a password typed unencoded.
    return BadInputError(f"the database URL cannot be parsed: {why}", hint=_ENCODE_HINT,
                         code="bad_url")


def _split(url: str) -> Any:
    """Split and check a database URL: the one place URLs are parsed.

    A password typed without percent-encoding (``p@ss:w/rd%``, ``secret#frag``) makes a URL
    that means something else (another host, a fragment taken for a host): refused, and the
    message quotes no part of it.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise _unparsable("the host or port is malformed") from None
    if parts.scheme not in _SCHEMES:
        raise BadInputError(f"not a PostgreSQL URL (scheme {parts.scheme or 'missing'!r})",
                            hint="use postgresql://user:password@host:port/dbname")
    if parts.fragment or "#" in url:
        raise _unparsable("it holds a '#' (a password with # must write it %23)")
    if parts.netloc.count("@") > 1 or "@" in parts.path or "@" in parts.query:
        raise _unparsable("it holds more than one '@' (a password with @ must write it %40)")
    userinfo = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else ""
    if _PERCENT.search(userinfo):
        raise _unparsable("a '%' in the user name or password is not followed by two hex "
                          "digits (write % as %25)")
    if "/" in parts.path.lstrip("/"):
        raise _unparsable("the database name holds a '/' (a password with / must write it "
                          "%2F)")
    return parts


def libpq_url(url: str) -> str:
    """The URL in the form libpq and psycopg accept (``postgresql://``)."""
    parts = _split(url)
    return str(urlunsplit(("postgresql",) + tuple(parts[1:])))


def redact(url: str) -> str:
    """The URL without its password (in the netloc or the query), safe to print."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}@{host}"
    query = urlencode([(k, "***" if k.lower() == "password" else v)
                       for k, v in parse_qsl(parts.query)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


# user:password@ inside any URL of a text (connection strings in messages and results).
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)


def scrub_urls(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def _password_of(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


@dataclass(frozen=True)
class Target:
    """A database to work on: the secret URL to connect with and a printable one."""

    url: str
    embedded: bool = False

    @property
    def display(self) -> str:
        return redact(self.url)

    @property
    def host_port(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}"

    @property
    def database(self) -> str:
        return urlsplit(self.url).path.lstrip("/") or "postgres"

    @property
    def sqlalchemy_url(self) -> str:
        parts = urlsplit(self.url)
        return urlunsplit(("postgresql+psycopg",) + tuple(parts[1:]))

    def scrub(self, text: str) -> str:
        """Remove this target's password, as written and decoded, from a message (a child
        process's output, an error) that may quote it."""
        from urllib.parse import unquote

        secrets = set()
        password = _password_of(self.url)
        if password:
            secrets |= {password, unquote(password)}
        try:
            secrets |= {v for k, v in parse_qsl(urlsplit(self.url).query)
                        if k.lower() == "password" and v}
        except ValueError:
            pass
        for secret in sorted(secrets, key=len, reverse=True):
            if len(secret) >= 3:
                text = text.replace(secret, "***")
        return text

    def with_database(self, name: str) -> Target:
        parts = urlsplit(self.url)
        return Target(urlunsplit(parts._replace(path="/" + name)), embedded=self.embedded)


def resolve_target(repo: RepoPaths | None, url: str | None = None) -> Target:
    """Pick the database for a command (flag, environment, then the embedded server).

    Raises:
        BadInputError: the URL is not a PostgreSQL URL.
        EnvironmentError_: the embedded server is needed and cannot start.
    """
    url = url or os.environ.get("SCHEMACTL_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        return Target(libpq_url(url))
    if repo is None:
        raise BadInputError("no database: pass --database-url or set DATABASE_URL")
    from schemactl.adapters.embedded import EmbeddedServer

    return Target(EmbeddedServer(repo.state_dir).secret_url(), embedded=True)


# Every connection is bounded: the connect itself, and a peer that vanishes without a word
# (TCP keepalives; tcp_user_timeout: unacknowledged data). A session that dies this way is
# dropped by the server with its advisory locks. A peer that acks but never answers is the
# watchdog's (adapters/watchdog.py).
BOUNDS: dict[str, Any] = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 10,
                          "keepalives_interval": 5, "keepalives_count": 3,
                          "tcp_user_timeout": 30000}
# The server's side of the same: it probes a client that went silent and ends the session
# (and releases the apply lock) within about 25 s when nothing answers.
SERVER_BOUNDS: dict[str, str] = {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5",
                                 "tcp_keepalives_count": "3"}


def connect(target: Target, *, autocommit: bool = True,
            options: dict[str, str] | None = None) -> psycopg.Connection[Any]:
    """Open a psycopg connection; failures become one line naming host and port, never the password.

    Raises:
        DatabaseError: the server cannot be reached or refused the login.
    """
    import psycopg

    kwargs: dict[str, Any] = {"autocommit": autocommit, "application_name": "schemactl",
                              **BOUNDS}
    kwargs["options"] = " ".join(f"-c {k}={v}" for k, v in
                                 {**SERVER_BOUNDS, **(options or {})}.items())
    try:
        conn = psycopg.connect(target.url, **kwargs)
    except psycopg.OperationalError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        reason = target.scrub(" ".join(lines)[:300]) or type(exc).__name__
        raise DatabaseError(
            f"cannot connect to PostgreSQL at {target.host_port} "
            f"(database {target.database}): {reason}",
            hint="check that the server runs and --database-url / DATABASE_URL is right",
        ) from None
    from schemactl.adapters import watchdog

    watchdog.watch(conn, target.url)
    return conn


def make_engine(target: Target, options: dict[str, str] | None = None) -> Engine:
    """A SQLAlchemy engine for Alembic and reflection (psycopg 3 driver, no pooling)."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    connect_args: dict[str, Any] = {"application_name": "schemactl", **BOUNDS}
    # Session settings as libpq options: a SET before Alembic configures would open an
    # implicit transaction that Alembic never commits (DESIGN.md, Known pitfalls).
    connect_args["options"] = " ".join(f"-c {k}={v}" for k, v in
                                       {**SERVER_BOUNDS, **(options or {})}.items())
    engine = create_engine(target.sqlalchemy_url, poolclass=NullPool, connect_args=connect_args)
    from sqlalchemy import event

    from schemactl.adapters import watchdog

    @event.listens_for(engine, "connect")
    def _watch(dbapi_connection: Any, _record: Any) -> None:
        watchdog.watch(dbapi_connection, target.url)

    return engine


_engines: OrderedDict[str, Engine] = OrderedDict()
_engines_lock = threading.Lock()


def shared_engine(target: Target) -> Engine:
    """This process's engine for ``target`` (default options, no pooling).

    It holds no connection between uses; what it keeps is the dialect's first-connect
    probing and the compiled reflection queries, which a second drift check of the same
    database (the verify after an apply) then skips. Bounded: the oldest is disposed.
    """
    with _engines_lock:
        engine = _engines.get(target.url)
        if engine is not None:
            _engines.move_to_end(target.url)
            return engine
        engine = _engines[target.url] = make_engine(target)
        while len(_engines) > 64:
            _engines.popitem(last=False)[1].dispose()
        return engine


# Where libpq finds a password the URL lacks (PGPASSWORD, .pgpass, a service file).
_PASSWORD_SOURCES = ("PGPASSWORD", "PGPASSFILE", "PGSERVICEFILE", "PGSYSCONFDIR")


def libpq_args(target: Target) -> tuple[str, dict[str, str]]:
    """A connection URL without any password, and a child environment carrying it.

    For running libpq programs (pg_dump, pg_restore, psql): the password goes in
    ``PGPASSWORD``, never on a command line where `ps` would show it. Other ``PG*``
    variables of this process are left out so that they cannot redirect the child.
    """
    from urllib.parse import unquote

    parts = urlsplit(target.url)
    password = parts.password
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}@{host}"
    query = []
    for k, v in parse_qsl(parts.query):
        if k.lower() == "password":
            password = password or v
        else:
            query.append((k, v))
    url = urlunsplit(("postgresql", netloc, parts.path, urlencode(query), ""))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if not password:
        # libpq's own password sources still count for a URL without one (a fleet target).
        env.update({k: os.environ[k] for k in _PASSWORD_SOURCES if k in os.environ})
    if password:
        env["PGPASSWORD"] = unquote(password)
    return url, env


def check_connection(target: Target) -> str:
    """Connect once and return the server version string.

    Raises:
        DatabaseError: the server cannot be reached.
    """
    with connect(target) as conn:
        row = conn.execute("show server_version").fetchone()
    return str(row[0]) if row else "unknown"
