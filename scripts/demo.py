"""The main job: the whole schemactl loop on the embedded PostgreSQL.

In a temporary schema repository: init, propose two tables (one with a pgvector
column), apply, insert rows, evolve a table (new column + index), apply (its backup
holds the data of the evolved table only), list and verify the backups, show status
and history, roll back, show the archive, rename a column online, take back a proposal
no database applied (`propose --revert`), rename a table online (the old name stays a
view), and apply to a fleet of two tenant databases on the same server
(`apply --group tenants`). Each step runs the real
`schemactl` command line and prints what it did; any failing step stops the run
with a non-zero exit.

    bash scripts/demo.sh            # keeps nothing: the repository is removed at the end
    bash scripts/demo.sh --keep     # leaves the repository (and its stopped server) behind
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PROJECTS = """\
table: projects
comment: Writing projects
columns:
  - {name: id,         type: uuid,        primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false,   default: now()}
  - {name: updated_at, type: timestamptz, nullable: false,   default: now()}
  - {name: is_deleted, type: boolean,     nullable: false,   default: false}
  - {name: created_by, type: bigint}
  - {name: title,      type: varchar(200), nullable: false}
  - {name: embedding,  type: vector(3)}
indexes:
  - {columns: [embedding], using: hnsw, opclass: vector_cosine_ops}
"""

CHARACTERS = """\
table: characters
comment: Story characters
columns:
  - {name: id,         type: uuid,        primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false,   default: now()}
  - {name: updated_at, type: timestamptz, nullable: false,   default: now()}
  - {name: is_deleted, type: boolean,     nullable: false,   default: false}
  - {name: created_by, type: bigint}
  - {name: name,       type: varchar(200), nullable: false}
  - {name: project_id, type: uuid, references: projects.id}
"""

# A table proposed and then taken back before any database applied it; its unique key is
# an expression index (case-insensitive labels).
TAGS = """\
table: tags
comment: Labels for characters
columns:
  - {name: id,         type: uuid,        primary_key: true, default: gen_random_uuid()}
  - {name: created_at, type: timestamptz, nullable: false,   default: now()}
  - {name: updated_at, type: timestamptz, nullable: false,   default: now()}
  - {name: is_deleted, type: boolean,     nullable: false,   default: false}
  - {name: created_by, type: bigint}
  - {name: label,      type: varchar(100), nullable: false}
indexes:
  - {columns: [{lower: label}], unique: true, where: {is_deleted: false}}
"""

# The evolution: one new constant-defaulted column and one new index.
CHARACTERS_V2 = CHARACTERS + """\
  - {name: mood,       type: text, nullable: false, default: 'calm'}
indexes:
  - {columns: [name]}
"""

GREEN, RED, BOLD, DIM, RESET = "\033[32m", "\033[31m", "\033[1m", "\033[2m", "\033[0m"
if not sys.stdout.isatty() or os.environ.get("NO_COLOR"):
    GREEN = RED = BOLD = DIM = RESET = ""


class StepFailed(Exception):
    pass


def schemactl(repo: Path, *args: str, stdin: str | None = None) -> dict:  # type: ignore[type-arg]
    """Run one schemactl command with --json and return its object."""
    cmd = [sys.executable, "-m", "schemactl.cli", "--repo", str(repo), "--actor", "user:demo",
           *args, "--json"]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",
                                                             "SCHEMACTL_DATABASE_URL")}
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env)
    try:
        data = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        data = {}
    if proc.returncode != 0:
        err = (data.get("error") or {}).get("message") or proc.stderr.strip()[-500:]
        raise StepFailed(f"`schemactl {' '.join(args)}` exited {proc.returncode}: {err}")
    return data


def step(title: str) -> float:
    print(f"\n{BOLD}▶ {title}{RESET}")
    return time.monotonic()


def done(started: float, detail: str = "") -> None:
    print(f"  {GREEN}✓{RESET} {detail} {DIM}({time.monotonic() - started:.1f} s){RESET}")


def show(text: str) -> None:
    print(textwrap.indent(text.rstrip(), "    "))


def sql(repo: Path, statement: str) -> list[tuple]:  # type: ignore[type-arg]
    """Run SQL on the repository's embedded server (the application's side of the story)."""
    import psycopg

    from schemactl.adapters.embedded import EmbeddedServer

    with psycopg.connect(EmbeddedServer(repo / ".schemactl").secret_url(),
                         autocommit=True) as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else []


def main(argv: list[str]) -> int:
    keep = "--keep" in argv
    base = Path(tempfile.mkdtemp(prefix="schemactl-demo-"))
    repo = base / "app-schema"
    try:
        t = step("init: scaffold a schema repository (git, core schema, migrations)")
        res = schemactl(base, "init", str(repo))
        done(t, f"{res['path']} (commit {res['commit'][:8]})")

        t = step("apply: create the core schema on the embedded PostgreSQL")
        res = schemactl(repo, "apply")
        done(t, f"applied {', '.join(res['applied'])}")

        for name, text in (("projects", PROJECTS), ("characters", CHARACTERS)):
            t = step(f"propose: new table {name}")
            res = schemactl(repo, "propose", "-", stdin=text)
            mig = res["migration"]
            done(t, f"migration {mig['revision']} committed as {res['commit'][:8]}")

        t = step("apply: lock, drift check, backup, upgrade, verify, audit, commit")
        res = schemactl(repo, "apply")
        done(t, f"applied {', '.join(res['applied'])}; backup {res['backup']['id']}")

        t = step("the application writes rows (and asks pgvector for a nearest neighbour)")
        sql(repo, "insert into projects (title, embedding) values "
                  "('Saga', '[1,0,0]'), ('Atlas', '[0,1,0]')")
        sql(repo, "insert into characters (name, project_id) "
                  "select 'hero-' || g, (select id from projects where title = 'Saga') "
                  "from generate_series(1, 50) g")
        nearest = sql(repo, "select title from projects order by embedding <=> '[0.9,0.1,0]' "
                            "limit 1")
        done(t, f"50 characters; nearest project to [0.9,0.1,0] is {nearest[0][0]!r}")

        t = step("propose: evolve characters (new column with a default + an index)")
        res = schemactl(repo, "propose", "-", stdin=CHARACTERS_V2)
        done(t, f"migration {res['migration']['revision']}")
        show(res["migration"]["sql"])

        t = step("validate: an unsafe change is refused (dropping a column)")
        unsafe = CHARACTERS_V2.replace("  - {name: project_id, type: uuid, "
                                       "references: projects.id}\n", "")
        proc = subprocess.run([sys.executable, "-m", "schemactl.cli", "--repo", str(repo),
                               "validate", "-", "--json"], input=unsafe, capture_output=True,
                              text=True)
        rules = sorted({v["rule"] for v in json.loads(proc.stdout)["violations"]})
        if proc.returncode != 1:
            raise StepFailed(f"validate should refuse a dropped column (exit {proc.returncode})")
        done(t, f"exit 1, rules {', '.join(rules)}")

        t = step("apply: the evolution, with CREATE INDEX CONCURRENTLY outside the transaction")
        res = schemactl(repo, "apply")
        moods = sql(repo, "select count(*) from characters where mood = 'calm'")[0][0]
        done(t, f"applied {', '.join(res['applied'])}; {moods} existing rows got mood='calm'")
        b = res["backup"]
        show(f"backup {b['id']}: scope {b['scope']}, data of "
             f"{', '.join(b['tables']) or 'no table'} only (every table's schema)")

        t = step("backups: the pre-change dump holds what the migration touched")
        listed = schemactl(repo, "backups", "list")["backups"]
        for item in listed[:3]:
            what = ("every table" if item["scope"] == "full"
                    else ", ".join(item["tables"]) or "no table data")
            show(f"{item['id']}  {item['scope']:<7} {item['size'] / 1024:7.1f} kB  {what}")
        verified = schemactl(repo, "backups", "verify", b["id"])["verify"]
        done(t, f"verify {b['id']}: sha256 ok, {verified['data_tables']} table(s) of data "
                f"as its scope says")

        t = step("status")
        st = schemactl(repo, "status")
        show(f"git head {st['git_head'][:8]}, database at {st['db_revision']}, "
             f"pending {st['pending'] or 'none'}, drift {st['drift'] or 'none'}")
        done(t)

        t = step("diagram: the tables and their foreign keys (Mermaid erDiagram, no database)")
        pic = schemactl(repo, "diagram", "characters", "projects")["diagram"]
        show(pic)
        url = schemactl(repo, "db", "url")["url"]
        done(t, f"the application connects with `eval \"$(schemactl db env)\"` ({url})")

        t = step("rollback: undo the evolution without losing a value")
        res = schemactl(repo, "rollback")
        archived = ", ".join(f"{a['from']} → {a['to']}" for a in res["archived"]) or "nothing"
        done(t, f"rolled back {res['rolled_back']}; archived {archived}")

        t = step("archive: what the archive schema holds")
        arch = schemactl(repo, "archive", "list")
        for item in arch.get("entries", []):
            show(f"{item.get('source')} → {item.get('archive_table')}: {item.get('rows')} rows "
                 f"(revision {item.get('revision')}, {item.get('archived_at')})")
        kept = sql(repo, "select count(*) from characters")[0][0]
        done(t, f"characters still has {kept} rows")

        t = step("online: rename characters.name → display_name (expand, backfill, contract)")
        renamed = CHARACTERS.replace(
            "{name: name,       type: varchar(200), nullable: false}",
            "{name: display_name, type: varchar(200), nullable: false, renamed_from: name}")
        res = schemactl(repo, "propose", "-", stdin=renamed)
        for line in res.get("online_steps") or []:
            show(line)
        before = sql(repo, "select md5(string_agg(name, ',' order by id)) from characters")
        res = schemactl(repo, "apply")
        after = sql(repo, "select md5(string_agg(display_name, ',' order by id)) "
                          "from characters")
        if before != after:
            raise StepFailed("the renamed column's values differ")
        done(t, f"applied {', '.join(res['applied'])}; every value kept (md5 equal), "
                "the old values archived")

        t = step("propose --revert: take back a proposal that no database has applied")
        res = schemactl(repo, "propose", "-", stdin=TAGS)
        rev = res["migration"]["revision"]
        show(res["migration"]["sql"])
        res = schemactl(repo, "propose", "--revert", rev)
        gone = not (repo / "dynamic_schema" / "tags.yaml").exists()
        if not gone or res.get("reverted") != rev:
            raise StepFailed(f"{rev} was not reverted")
        done(t, f"{rev} reverted in commit {res['commit'][:8]}: its migration and "
                "definition are gone, nothing was applied")

        t = step("online: rename table characters → cast_members (the old name stays a view)")
        current = (repo / "dynamic_schema" / "characters.yaml").read_text()
        moved = current.replace("table: characters\n",
                                "table: cast_members\nrenamed_from: characters\n", 1)
        res = schemactl(repo, "propose", "-", stdin=moved)
        res = schemactl(repo, "apply")
        rows = sql(repo, "select (select count(*) from cast_members), "
                         "(select count(*) from characters)")[0]
        if rows[0] != rows[1] or rows[0] == 0:
            raise StepFailed(f"cast_members and the characters view differ: {rows}")
        done(t, f"applied {', '.join(res['applied'])}; {rows[0]} rows in cast_members, the "
                "same through the view characters (old readers keep working)")

        t = step("history: every change has its audit entry and its commit")
        for e in schemactl(repo, "history")["entries"][:8]:
            show(f"{e['created_at']}  {e['action']:<8} {e['actor']:<10} "
                 f"{e.get('revision') or '':<22} {e['status']}")
        log = subprocess.run(["git", "-C", str(repo), "log", "--format=%h %s"],
                             capture_output=True, text=True, check=True).stdout
        show(log)
        done(t)

        t = step("fleet: two tenant databases as targets, applied in parallel, one commit")
        for tenant in ("tenant_a", "tenant_b"):
            sql(repo, f"create database {tenant}")
        with open(repo / "schemactl.toml", "a") as fh:
            fh.write('\n[targets.tenant_a]\ndatabase = "tenant_a"\ngroup = "tenants"\n'
                     '\n[targets.tenant_b]\ndatabase = "tenant_b"\ngroup = "tenants"\n')
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=demo", "-c",
                        "user.email=demo@example.com", "commit", "-q", "-m",
                        "targets: two tenants", "schemactl.toml"], check=True)
        res = schemactl(repo, "apply", "--group", "tenants", "--parallel", "2")
        for tgt in res["targets"]:
            show(f"{tgt['name']:<10} {tgt['status']:<11} {tgt['revision']}  "
                 f"backup {(tgt['backup'] or {}).get('id')}")
        st = schemactl(repo, "status", "--group", "tenants", "--fail-on", "pending,drift")
        done(t, f"commit {res['commit'][:8]}; {st['summary']['at_head']} of "
                f"{st['summary']['targets']} tenants at {st['head_revision']}")

        print(f"\n{GREEN}{BOLD}main job finished: propose → apply → rollback on the "
              f"embedded database, then a fleet of tenants{RESET}")
        return 0
    except StepFailed as exc:
        print(f"  {RED}✗ {exc}{RESET}", file=sys.stderr)
        return 1
    finally:
        subprocess.run([sys.executable, "-m", "schemactl.cli", "--repo", str(repo), "db",
                        "stop"], capture_output=True)
        if keep:
            print(f"\nrepository kept at {repo}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
