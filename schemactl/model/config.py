"""`schemactl.toml`: the repository's policy, with defaults for every key.

The defaults here are the contract; `schemactl init` writes them out so that a
reader of a schema repository sees every setting in one file.
"""

from __future__ import annotations

import _thread
import os
from dataclasses import dataclass, field
from pathlib import Path

from schemactl.errors import BadInputError

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any

    from schemactl.model.targets import TargetSpec

CONFIG_FILE = "schemactl.toml"
# Local, git-ignored caches (`.schemactl/` is in the repository's .gitignore): the parse
# cache (schemactl.model.cache) and the parsed copy of schemactl.toml below.
CACHE_DIR = Path(".schemactl") / "cache"
CONFIG_MEMO = "config.json"
_MEMO_LAYOUT = 1  # bump when what the memo holds changes


@dataclass(frozen=True)
class BaseField:
    """A column every dynamic table must have (DESIGN.md, Base fields)."""

    name: str
    type: str
    nullable: bool = True
    default: str | None = None
    primary_key: bool = False
    accept_types: tuple[str, ...] = ()

    def as_column(self) -> dict[str, Any]:
        col: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.primary_key:
            col["primary_key"] = True
        if not self.nullable and not self.primary_key:
            col["nullable"] = False
        if self.default is not None:
            col["default"] = self.default
        return col

    def as_yaml(self) -> str:
        """The column as a YAML flow mapping, ready to paste into a definition (for hints)."""

        def value(v: Any) -> str:
            if isinstance(v, bool):
                return "true" if v else "false"
            text = str(v)
            if any(ch in text for ch in "[]{},:#'\"") and not text.endswith("()"):
                return "'" + text.replace("'", "''") + "'"
            return text

        return "{" + ", ".join(f"{k}: {value(v)}" for k, v in self.as_column().items()) + "}"


DEFAULT_BASE_FIELDS: tuple[BaseField, ...] = (
    BaseField("id", "uuid", nullable=False, default="gen_random_uuid()", primary_key=True),
    BaseField("created_at", "timestamptz", nullable=False, default="now()",
              accept_types=("timestamp",)),
    BaseField("updated_at", "timestamptz", nullable=False, default="now()",
              accept_types=("timestamp",)),
    BaseField("is_deleted", "boolean", nullable=False, default="false"),
    BaseField("created_by", "bigint", nullable=True),
)


@dataclass(frozen=True)
class Limits:
    """[limits]: the size of one definition."""

    max_columns: int = 100
    max_indexes: int = 20
    max_definition_bytes: int = 64 * 1024


@dataclass(frozen=True)
class Waiver:
    """[[rules.waivers]]: one rule waived for a table or column, with the reason."""

    rule: str
    reason: str
    table: str | None = None
    column: str | None = None


@dataclass(frozen=True)
class Config:
    """The parsed `schemactl.toml` of one repository."""

    base_fields: tuple[BaseField, ...] = DEFAULT_BASE_FIELDS
    severities: dict[str, str] = field(default_factory=dict)
    limits: Limits = Limits()
    waivers: tuple[Waiver, ...] = ()
    agent_apply: str = "safe"
    backup_dir: str = ".schemactl/backups"
    keep_last: int = 20
    # [backup]: "touched" dumps the data of the tables a run alters only; "full" everything.
    backup_scope: str = "touched"
    backup_format: str = "custom"   # "directory" (scope "full" only) runs pg_dump in parallel
    backup_jobs: int = 1
    max_total_mb: float = 0.0       # 0: no limit
    lock_timeout_ms: int = 2000
    statement_timeout_ms: int = 600_000
    lock_retries: int = 5
    retry_backoff_ms: int = 500
    # [online]: backfill batches of online changes (docs/online.md)
    online_batch_rows: int = 5000
    online_batch_ms: int = 200
    online_pause_ms: int = 0
    # Named databases, in the order schemactl.toml lists them (DESIGN.md, Fleet).
    targets: tuple[TargetSpec, ...] = ()

    @property
    def base_field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.base_fields)


def _base_fields(raw: list[dict[str, Any]]) -> tuple[BaseField, ...]:
    fields = []
    for item in raw:
        if not isinstance(item, dict) or "name" not in item or "type" not in item:
            raise BadInputError(f"{CONFIG_FILE}: each [[base_fields]] needs a name and a type")
        fields.append(BaseField(
            name=str(item["name"]), type=str(item["type"]),
            nullable=bool(item.get("nullable", True)),
            default=None if item.get("default") is None else str(item["default"]),
            primary_key=bool(item.get("primary_key", False)),
            accept_types=tuple(item.get("accept_types", ())),
        ))
    return tuple(fields)


def _online(raw: dict[str, Any]) -> tuple[int, int, int]:
    batch = int(raw.get("batch_rows", Config.online_batch_rows))
    budget = int(raw.get("batch_ms", Config.online_batch_ms))
    pause = int(raw.get("pause_ms", Config.online_pause_ms))
    if batch < 1 or pause < 0 or budget < 0:
        raise BadInputError(f"{CONFIG_FILE}: online.batch_rows must be >= 1, "
                            "online.batch_ms and online.pause_ms >= 0")
    return batch, budget, pause


def cache_mode() -> str:
    """``SCHEMACTL_PARSE_CACHE``: "off" uses no cache (nor schemactl.toml's parsed copy),
    "on" always the parse cache, "auto" (anything else) once a repository is large."""
    mode = os.environ.get("SCHEMACTL_PARSE_CACHE", "auto").strip().lower()
    return mode if mode in ("on", "off") else "auto"


def _parsed_toml(repo_root: Path, text: str) -> dict[str, Any]:
    """``text`` parsed as TOML, through a JSON copy kept beside the parse cache.

    A cold command (an agent's `validate FILE` in a loop) spent more on importing and
    running tomllib than on its rules. The copy holds the exact text it was parsed from,
    so a changed file is never answered from it; one that does not read back whole (a
    partial write, a checksum that does not match, another layout or version) is parsed
    again and replaced. A file whose values JSON cannot hold unchanged (TOML dates) is
    not copied.

    Raises:
        BadInputError: the text is not valid TOML.
    """
    import binascii
    import json

    if cache_mode() == "off":
        return _toml(text)
    memo = repo_root / CACHE_DIR / CONFIG_MEMO
    tag = f"{package_version()}/{_MEMO_LAYOUT}"
    try:
        saved = json.loads(memo.read_bytes())
        body = saved["data"]
        if saved["tag"] == tag and saved["text"] == text and \
                saved["crc"] == binascii.crc32(f"{text}\0{body}".encode("utf-8", "surrogatepass")):
            data = json.loads(body)
            if isinstance(data, dict):
                return data
    except (OSError, ValueError, TypeError, KeyError, RecursionError):
        pass
    data = _toml(text)
    try:
        body = json.dumps(data)  # in the file's order: targets are listed in it
        if json.loads(body) != data:
            return data
        crc = binascii.crc32(f"{text}\0{body}".encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError):
        return data  # a TOML date: parsed each time
    part = memo.with_name(f"{memo.name}.{os.getpid()}.{_thread.get_ident()}.part")
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        part.write_text(json.dumps({"tag": tag, "text": text, "data": body, "crc": crc}),
                        encoding="utf-8")
        os.replace(part, memo)
    except OSError:
        # An unwritable repository (or a full disk) parses each time, and leaves no part.
        try:
            part.unlink(missing_ok=True)
        except OSError:
            pass
    return data


def _toml(text: str) -> dict[str, Any]:
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInputError(f"{CONFIG_FILE}: {exc}", hint="fix the TOML syntax") from exc


def package_version() -> str:
    """schemactl's version: ``schemactl.__version__``, read from the package this module
    belongs to (always imported before it) rather than imported upwards across layers."""
    import sys

    return str(getattr(sys.modules.get("schemactl"), "__version__", "unknown"))


def _targets(raw: Any) -> tuple[TargetSpec, ...]:
    if raw is None:
        return ()  # most repositories name no targets: their module is not imported
    from schemactl.model.targets import targets_from_toml

    return targets_from_toml(raw, CONFIG_FILE)


def load_config(repo_root: Path) -> Config:
    """Read `schemactl.toml` at the repository root; a missing file means all defaults.

    Raises:
        BadInputError: the file is not valid TOML or holds a value of the wrong kind.
    """
    path = repo_root / CONFIG_FILE
    if not path.exists():
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{path.name}: {exc}", hint="fix the TOML syntax") from exc
    data = _parsed_toml(repo_root, text)
    try:
        rules = data.get("rules", {})
        severities = {code.upper(): str(sev) for code, sev in rules.get("severity", {}).items()}
        for code, sev in severities.items():
            if sev not in ("error", "warning", "off"):
                raise BadInputError(f"{CONFIG_FILE}: rules.severity.{code} must be "
                                    f"error, warning or off, not {sev!r}")
        waivers = []
        for w in rules.get("waivers", []):
            reason = str(w.get("reason", "")).strip()
            if not reason:
                raise BadInputError(f"{CONFIG_FILE}: waiver for {w.get('rule')} has no reason",
                                    hint="every waiver needs a written reason")
            waivers.append(Waiver(rule=str(w["rule"]).upper(), reason=reason,
                                  table=w.get("table"), column=w.get("column")))
        lim = data.get("limits", {})
        policy = data.get("policy", {})
        backup = data.get("backup", {})
        apply_ = data.get("apply", {})
        agent_apply = str(policy.get("agent_apply", "safe"))
        if agent_apply not in ("safe", "never"):
            raise BadInputError(f"{CONFIG_FILE}: policy.agent_apply must be 'safe' or 'never'")
        base = data.get("base_fields")
        scope = str(backup.get("scope", Config.backup_scope))
        if scope not in ("touched", "full"):
            raise BadInputError(f"{CONFIG_FILE}: backup.scope must be 'touched' or 'full', "
                                f"not {scope!r}")
        fmt = str(backup.get("format", Config.backup_format))
        if fmt not in ("custom", "directory"):
            raise BadInputError(f"{CONFIG_FILE}: backup.format must be 'custom' or "
                                f"'directory', not {fmt!r}")
        jobs = backup.get("jobs", Config.backup_jobs)
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise BadInputError(f"{CONFIG_FILE}: backup.jobs must be a whole number of at "
                                f"least 1, not {jobs!r}")
        if jobs > 1 and fmt != "directory":
            raise BadInputError(f"{CONFIG_FILE}: backup.jobs = {jobs} needs format = "
                                "'directory' (pg_dump writes a custom-format file alone)")
        max_mb = backup.get("max_total_mb", Config.max_total_mb)
        if isinstance(max_mb, bool) or not isinstance(max_mb, int | float) or max_mb < 0:
            raise BadInputError(f"{CONFIG_FILE}: backup.max_total_mb must be 0 (no limit) or "
                                f"a positive number, not {max_mb!r}")
        keep_last = backup.get("keep_last", Config.keep_last)
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
            raise BadInputError(f"{CONFIG_FILE}: backup.keep_last must be at least 1, "
                                f"not {keep_last!r}")
        return Config(
            base_fields=_base_fields(base) if base is not None else DEFAULT_BASE_FIELDS,
            severities=severities,
            limits=Limits(
                max_columns=int(lim.get("max_columns", Limits.max_columns)),
                max_indexes=int(lim.get("max_indexes", Limits.max_indexes)),
                max_definition_bytes=int(lim.get("max_definition_bytes",
                                                 Limits.max_definition_bytes)),
            ),
            waivers=tuple(waivers),
            agent_apply=agent_apply,
            backup_dir=str(backup.get("dir", Config.backup_dir)),
            keep_last=keep_last, backup_scope=scope, backup_format=fmt, backup_jobs=jobs,
            max_total_mb=float(max_mb),
            lock_timeout_ms=int(apply_.get("lock_timeout_ms", Config.lock_timeout_ms)),
            statement_timeout_ms=int(apply_.get("statement_timeout_ms",
                                                Config.statement_timeout_ms)),
            lock_retries=int(apply_.get("lock_retries", Config.lock_retries)),
            retry_backoff_ms=int(apply_.get("retry_backoff_ms", Config.retry_backoff_ms)),
            online_batch_rows=_online(data.get("online", {}))[0],
            online_batch_ms=_online(data.get("online", {}))[1],
            online_pause_ms=_online(data.get("online", {}))[2],
            targets=_targets(data.get("targets")),
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise BadInputError(f"{CONFIG_FILE}: invalid value ({exc})") from exc
