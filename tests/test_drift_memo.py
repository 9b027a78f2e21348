"""Drift checks shared between identical databases (schemactl.pipeline.drift_memo).

A comparison made on one database is reused for another only when their catalog digests
are equal; these tests show that every kind of drift the check reports changes the digest,
and that a fleet whose targets are identical but for one drifted table (one the run does not
touch) still reports that target as drifted, and only that one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from schemactl.adapters.database import Target, connect
from schemactl.pipeline import drift_memo
from tests.apply_helpers import add_column, add_notes, revision_of
from tests.conftest import Server
from tests.test_fleet import Fleet


def _digest(db: Target) -> str:
    with connect(db) as conn:
        return drift_memo.fingerprint(lambda sql, p: conn.execute(sql, p or None).fetchone(),
                                      "public")


# Each: a change the drift check reports, and the statement that undoes it.
CHANGES = [
    ("alter table t add column extra text", "alter table t drop column extra"),
    ("alter table t alter column body type varchar(20)",
     "alter table t alter column body type text"),
    ("alter table t alter column body set not null",
     "alter table t alter column body drop not null"),
    ("alter table t alter column n set default 7", "alter table t alter column n drop default"),
    ("create index ix_t_n on t (n)", "drop index ix_t_n"),
    ("create index ix_t_n on t (n) where n > 0", "drop index ix_t_n"),
    ("alter table t add constraint ck_t_n check (n > 0)", "alter table t drop constraint ck_t_n"),
    ("alter table t add constraint ck_t_n check (n > 0) not valid",
     "alter table t drop constraint ck_t_n"),
    ("alter table t add constraint uq_t_n unique (n)", "alter table t drop constraint uq_t_n"),
    ("alter table t add constraint fk_t_p foreign key (n) references p (id) on delete cascade",
     "alter table t drop constraint fk_t_p"),
    ("comment on column t.body is 'x'", "comment on column t.body is null"),
    ("comment on table t is 'x'", "comment on table t is null"),
    ("create table other (id int)", "drop table other"),
    ("alter table t rename column body to body2", "alter table t rename column body2 to body"),
]


def test_every_drift_changes_the_digest(db: Target) -> None:
    with connect(db) as conn:
        conn.execute("create table p (id int primary key)")
        conn.execute("create table t (id int primary key, n int, body text)")
    base = _digest(db)
    assert _digest(db) == base  # stable
    for change, undo in CHANGES:
        with connect(db) as conn:
            conn.execute(change)
        assert _digest(db) != base, change
        with connect(db) as conn:
            conn.execute(undo)
        assert _digest(db) == base, undo
    # The same FK with another action: same columns, different behaviour.
    with connect(db) as conn:
        conn.execute("alter table t add constraint fk_t_p foreign key (n) references p (id)")
    plain = _digest(db)
    with connect(db) as conn:
        conn.execute("alter table t drop constraint fk_t_p")
        conn.execute("alter table t add constraint fk_t_p foreign key (n) references p (id) "
                     "on delete set null")
    assert _digest(db) != plain


def test_identical_targets_share_checks_but_drift_is_still_caught(
        repo: Path, pg_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from schemactl import api

    fleet = Fleet(repo)
    try:
        for name in ("a", "b", "c", "d"):
            fleet.add(pg_server, name)
        fleet.write()
        add_notes(repo)
        for k, v in fleet.env.items():
            monkeypatch.setenv(k, v)
        drift_memo.clear()
        first = api.apply_fleet(repo, api.Selection(all=True), actor="user:test", parallel=1)
        assert first.ok, first
        assert drift_memo._memo, "identical targets should have shared a comparison"
        add_column(repo, "0003_tags", "0002_notes", "tags")
        # b drifts in a core table the run does not touch; d in the touched table.
        with connect(fleet.targets["b"]) as conn:
            conn.execute("alter table agents add column sneaky text")
        with connect(fleet.targets["d"]) as conn:
            conn.execute("alter table notes alter column body drop not null")
        res = api.apply_fleet(repo, api.Selection(all=True), actor="user:test", parallel=1,
                              on_error="continue")
        got = {t.name: t.status for t in res.targets}
        assert got == {"a": "applied", "b": "drift", "c": "applied", "d": "drift"}, res
        by = {t.name: t for t in res.targets}
        assert "agents.sneaky" in str(by["b"].error), by["b"].error
        assert "notes.body" in str(by["d"].error), by["d"].error
        assert revision_of(fleet.targets["b"]) == "0002_notes"
        assert revision_of(fleet.targets["c"]) == "0003_tags"
    finally:
        fleet.drop()
