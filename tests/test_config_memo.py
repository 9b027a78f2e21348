"""schemactl.toml's parsed copy (`.schemactl/cache/config.json`) never changes a setting.

It is a shortcut for cold commands: the text it was parsed from must match the file
exactly, and a copy that is damaged, foreign or written for other text is parsed again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from schemactl.errors import BadInputError
from schemactl.model.config import CACHE_DIR, CONFIG_FILE, CONFIG_MEMO, load_config

TOML = """[limits]
max_columns = {n}

[rules.severity]
SC502 = "warning"
"""


def _repo(tmp_path: Path, n: int = 30) -> Path:
    (tmp_path / CONFIG_FILE).write_text(TOML.format(n=n))
    return tmp_path


def _memo(root: Path) -> Path:
    return root / CACHE_DIR / CONFIG_MEMO


def test_a_second_load_comes_from_the_copy_without_tomllib(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    assert load_config(root).limits.max_columns == 30
    assert json.loads(_memo(root).read_text())["text"] == TOML.format(n=30)
    code = ("import sys\n"
            "from pathlib import Path\n"
            "from schemactl.model.config import load_config\n"
            f"c = load_config(Path({str(root)!r}))\n"
            "print(c.limits.max_columns, c.severities['SC502'], 'tomllib' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["30", "warning", "False"]


def test_a_changed_file_is_read_again_even_with_its_size_and_times(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    load_config(root)
    path = root / CONFIG_FILE
    st = path.stat()
    path.write_text(TOML.format(n=31))  # the same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert load_config(root).limits.max_columns == 31
    assert json.loads(_memo(root).read_text())["text"] == TOML.format(n=31)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "tampered", "foreign", "not a dict"])
def test_a_damaged_copy_is_parsed_again_and_replaced(tmp_path: Path, damage: str) -> None:
    root = _repo(tmp_path)
    load_config(root)
    memo = _memo(root)
    saved = json.loads(memo.read_text())
    if damage == "garbage":
        memo.write_bytes(b"\x00\xff not json")
    elif damage == "truncated":
        memo.write_text(memo.read_text()[:40])
    elif damage == "tampered":
        # The data says 99 columns; its checksum was made for 30.
        memo.write_text(json.dumps({**saved, "data": saved["data"].replace("30", "99")}))
    elif damage == "foreign":
        memo.write_text(json.dumps({**saved, "tag": "0.0.0/1"}))
    else:
        memo.write_text("[1, 2, 3]")
    config = load_config(root)
    assert config.limits.max_columns == 30 and config.severities == {"SC502": "warning"}
    assert json.loads(memo.read_text()) == saved


def test_bad_toml_is_an_error_whatever_the_copy_holds(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    load_config(root)
    (root / CONFIG_FILE).write_text("[limits\nmax_columns = 3\n")
    with pytest.raises(BadInputError, match=CONFIG_FILE):
        load_config(root)


def test_values_json_cannot_hold_are_not_copied(tmp_path: Path) -> None:
    root = tmp_path
    (root / CONFIG_FILE).write_text("[limits]\nmax_columns = 7\n\n[extra]\nwhen = 2026-12-02\n")
    assert load_config(root).limits.max_columns == 7
    assert not _memo(root).exists()


def test_no_copy_when_the_parse_cache_is_off(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEMACTL_PARSE_CACHE", "off")
    root = _repo(tmp_path)
    assert load_config(root).limits.max_columns == 30
    assert not _memo(root).exists()


def test_an_unwritable_cache_folder_still_loads(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    (root / ".schemactl").write_text("a file where the folder would be")
    assert load_config(root).limits.max_columns == 30


def test_a_full_disk_leaves_no_partial_copy(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    root = _repo(tmp_path)
    real = Path.write_text

    def full(self: Path, data: str, *args: object, **kwargs: object) -> int:
        if self.name.endswith(".part"):
            real(self, data[:10])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", full)
    assert load_config(root).limits.max_columns == 30
    assert sorted(p.name for p in (root / CACHE_DIR).iterdir()) == []
    monkeypatch.undo()
    assert load_config(root).limits.max_columns == 30
    assert _memo(root).exists()


def test_the_copy_keeps_the_order_of_the_file(tmp_path: Path) -> None:
    """Targets are run and reported in the order schemactl.toml lists them."""
    root = tmp_path
    (root / CONFIG_FILE).write_text('[targets.zeta]\ndatabase = "z"\n\n'
                                    '[targets.alpha]\ndatabase = "a"\n\n'
                                    '[targets.mid]\ndatabase = "m"\n')
    first = [t.name for t in load_config(root).targets]
    assert _memo(root).exists()
    assert first == [t.name for t in load_config(root).targets] == ["zeta", "alpha", "mid"]
