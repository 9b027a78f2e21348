"""The README's main job runs end to end on the embedded database."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_main_job_runs_the_whole_loop() -> None:
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "demo.py")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for needle in ("applied 0001_core", "propose: new table characters", "SC102",
                   "rolled back", "schemactl_archive.characters__mood__", "50 rows",
                   'erDiagram', '"projects" |o..o{ "characters" : "project_id"',
                   "uq_tags_lower_label ON tags (lower(\"label\"))", "reverted in commit",
                   "50 rows in cast_members, the same through the view characters",
                   "2 of 2 tenants at", "main job finished"):
        assert needle in out, needle
