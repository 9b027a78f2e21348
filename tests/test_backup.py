"""Backups (pg_dump custom format + manifest): restore, verify, prune, pg_dump choice."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from schemactl.adapters import pgtools
from schemactl.adapters.database import Target, connect
from schemactl.errors import EnvironmentError_
from schemactl.model.repo import SchemaRepo
from schemactl.pipeline import backup, backup_store, retention
from tests.apply_helpers import add_notes, insert_notes
from tests.conftest import Server


def _schema(target: Target) -> list[tuple[str, ...]]:
    with connect(target) as conn:
        cols = conn.execute(
            "select table_schema, table_name, column_name, data_type, is_nullable, "
            "coalesce(column_default, '') from information_schema.columns "
            "where table_schema in ('public', 'schemactl_archive') order by 1, 2, 3").fetchall()
        idx = conn.execute("select schemaname, tablename, indexname, indexdef from pg_indexes "
                           "where schemaname = 'public' order by 1, 2, 3").fetchall()
    return [tuple(map(str, r)) for r in cols] + [tuple(map(str, r)) for r in idx]


def _counts(target: Target) -> dict[str, int]:
    with connect(target) as conn:
        tables = [r[0] for r in conn.execute(
            "select tablename from pg_tables where schemaname = 'public'").fetchall()]
        return {t: int(conn.execute(f'select count(*) from "{t}"').fetchone()[0])  # type: ignore[index]
                for t in tables}


def test_backup_restores_into_a_new_database(repo: Path, db: Target, cli,  # type: ignore[no-untyped-def]
                                             pg_server: Server) -> None:
    add_notes(repo)
    assert cli("apply", "--json", "--database-url", db.url, cwd=repo).code == 0
    insert_notes(db, 1000)
    with connect(db) as conn:
        conn.execute("insert into agents (name, config_path) values ('mechanic', 'a.yaml')")
    sr = SchemaRepo.open(repo)
    b = backup.create_backup(sr, db, "0002_notes")
    manifest = json.loads(Path(b.manifest_path).read_text())
    assert manifest["status"] == "complete" and manifest["sha256"] == b.sha256
    assert manifest["size"] == Path(b.path).stat().st_size > 0
    assert manifest["revision_before"] == "0002_notes"
    assert manifest["database"] == db.display
    assert manifest["pg_dump_version"] and manifest["server_version"]
    restored = pg_server.create_database()
    try:
        backup.restore(sr, b.id, restored)
        assert _counts(restored) == _counts(db)
        assert _counts(restored)["notes"] == 1000
        assert _schema(restored) == _schema(db)
    finally:
        pg_server.drop_database(restored)


def test_backups_list_verify_and_damage(repo: Path, db: Target, cli) -> None:  # type: ignore[no-untyped-def]
    first = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert first.code == 0, first
    add_notes(repo)
    res = cli("apply", "--json", "--database-url", db.url, cwd=repo)
    assert res.code == 0, res
    bid = res.json["backup"]["id"]
    listed = cli("backups", "list", "--json", cwd=repo)
    assert listed.code == 0, listed
    assert [b["id"] for b in listed.json["backups"]] == [bid, first.json["backup"]["id"]]
    ok = cli("backups", "verify", bid, "--json", cwd=repo)
    assert ok.code == 0, ok
    assert ok.json["verify"]["ok"] and ok.json["verify"]["entries"] > 0
    path = Path(res.json["backup"]["path"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    bad = cli("backups", "verify", bid, "--json", cwd=repo)
    assert bad.code == 3, bad
    assert bad.json["ok"] is False and not bad.json["verify"]["sha256_ok"]
    missing = cli("backups", "verify", "nope", "--json", cwd=repo)
    assert missing.code == 2, missing


def test_prune_keeps_last_and_removes_half_written(repo: Path, db: Target) -> None:
    sr = SchemaRepo.open(repo)
    made = [backup.create_backup(sr, db, None, backup_id=f"2026010{i}T000000Z-base-00000{i}")
            for i in range(1, 4)]
    folder = sr.backup_dir
    # A backup whose writer died half-way: a manifest in progress and a .partial dump.
    (folder / "20260109T000000Z-base-dead00.json").write_text(json.dumps(
        {"id": "20260109T000000Z-base-dead00", "status": "in_progress", "pid": 999_999_999,
         "host": os.uname().nodename, "created_at": "2026-01-09T00:00:00Z"}))
    (folder / "20260109T000000Z-base-dead00.dump.partial").write_bytes(b"PGDMP half")
    assert [b.id for b in backup.list_backups(sr)] == [b.id for b in reversed(made)]
    done = retention.prune(sr, keep_last=2)
    assert done["removed"] == [made[0].id]
    assert done["kept"] == [made[2].id, made[1].id]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{made[1].id}.dump", f"{made[1].id}.json", f"{made[2].id}.dump", f"{made[2].id}.json"])


def test_cleanup_spares_a_backup_that_begins_while_it_runs(
        repo: Path, db: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two targets of a fleet run back up at once, and each run cleans up half-written
    backups: one that starts after the other's cleanup listed the manifests is alive."""
    sr = SchemaRepo.open(repo)
    backup.create_backup(sr, db, None, prune=False)
    folder = sr.backup_dir
    bid = "20260102T000000Z-base-race01"
    real = backup_store.read_manifest

    def listing_then_a_new_backup_starts(path: Path) -> dict | None:  # type: ignore[type-arg]
        data = real(path)
        if not (folder / f"{bid}.json").exists():
            backup_store.write_json(folder / f"{bid}.json", {
                "id": bid, "status": "in_progress", "pid": os.getpid(),
                "host": socket.gethostname(), "started": time.time()})
            (folder / f"{bid}.dump.partial").write_bytes(b"PGDMP half")
        return data

    monkeypatch.setattr(backup_store, "read_manifest", listing_then_a_new_backup_starts)
    assert backup_store.cleanup_incomplete(sr) == []
    assert (folder / f"{bid}.dump.partial").read_bytes() == b"PGDMP half"


def test_no_pg_dump_new_enough_is_exit_3(repo: Path, db: Target,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgtools, "_candidate_dirs", lambda: [])
    with pytest.raises(EnvironmentError_) as info:
        backup.create_backup(SchemaRepo.open(repo), db, None)
    assert info.value.exit_code == 3 and "pg_dump" in info.value.message
    assert not list(SchemaRepo.open(repo).backup_dir.glob("*"))


def test_pg_dump_gets_the_password_from_the_environment_only(db: Target) -> None:
    from urllib.parse import unquote, urlsplit

    from schemactl.adapters.database import libpq_args

    url, env = libpq_args(db)
    secret = unquote(urlsplit(db.url).password or "")
    assert secret and secret not in url
    assert env["PGPASSWORD"] == secret


def test_restore_script_drops_settings_an_older_server_rejects() -> None:
    """A dump made by a newer pg_dump (18) must still restore into PostgreSQL 15 or 16."""
    from schemactl.adapters.pgtools import compatible_script

    script = "SET statement_timeout = 0;\nSET transaction_timeout = 0;\nSELECT 1;\n"
    assert "transaction_timeout" not in compatible_script(script, 15)
    assert "SET statement_timeout = 0;" in compatible_script(script, 15)
    assert compatible_script(script, 17) == script
