"""The apply pipeline: lock, drift check, backup, upgrade, verify, audit, commit.

Rollback runs on top of the same pipeline.
"""
