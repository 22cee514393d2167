"""Walkers in trees that other users can write: ``ferrolock status`` / ``clean`` show hostile names escaped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FERROLOCK = [sys.executable, "-m", "ferrolock.cli"]


def cli(*args: str, plain: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FERROLOCK_PLAIN"} | {"COLUMNS": "250"}
    if plain:
        env["FERROLOCK_PLAIN"] = "1"
    return subprocess.run([*FERROLOCK, *args], capture_output=True, text=True, timeout=120, check=False, env=env)


HOSTILE_NAMES = [
    "row\nheld  exclusive  lock_file  forged  pid 1",
    "bell\x07-esc\x1b[2J\x1b]0;title\x07-csi\x9b31m",
    "rtl\u202eoverride",
    "back\\slash",
]


def plant_hostile_names(tree: Path) -> None:
    for name in HOSTILE_NAMES:
        (tree / f"{name}.lock").touch()
        (tree / name).mkdir()
        (tree / name / ".jobs_index.lock").touch()  # removable: shown by clean too
    (tree / "jobs" / "job\nSTALE").mkdir(parents=True)
    (tree / "jobs" / "job\nSTALE" / ".lock").touch()


def assert_escaped(text: str, rows: int) -> None:
    assert not any(ch in text for ch in "\x07\x1b\x9b\u202e"), "a raw control character reached the terminal"
    assert len(text.strip("\n").splitlines()) == rows, text
    assert "row\\nheld" in text
    assert "\\x1b[2J" in text
    assert "\\u202e" in text
    assert "back\\\\slash" in text


@pytest.mark.timeout(120)
@pytest.mark.parametrize("plain", [True, False], ids=["plain", "rich"])
def test_status_and_clean_output_escape_hostile_names(tmp_path: Path, plain: bool) -> None:
    if not plain:
        pytest.importorskip("rich")
    plant_hostile_names(tmp_path)
    locks = 2 * len(HOSTILE_NAMES) + 1
    status = cli("status", str(tmp_path), plain=plain)
    assert status.returncode == 0, status.stderr
    if plain:
        assert_escaped(status.stdout, rows=1 + locks + 1)
        assert "job job\\nSTALE" in status.stdout
    else:
        assert not any(ch in status.stdout for ch in "\x07\x1b\x9b\u202e")
        assert "row\\nheld" in status.stdout
    clean = cli("clean", str(tmp_path), plain=plain)
    assert clean.returncode == 0, clean.stderr
    assert_escaped(clean.stdout, rows=len(HOSTILE_NAMES) + 2)


@pytest.mark.timeout(60)
def test_json_output_keeps_names_intact(tmp_path: Path) -> None:
    plant_hostile_names(tmp_path)
    out = cli("status", "--json", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert all(ord(ch) < 128 for ch in out.stdout), "--json output is ASCII: every other character is escaped"
    paths = {lock["path"] for lock in json.loads(out.stdout)["locks"]}
    assert {str(tmp_path / f"{name}.lock") for name in HOSTILE_NAMES} <= paths
