"""Paths that are not valid UTF-8 come back exactly as they went in.

Linux file names are bytes. Python represents an undecodable name as ``str`` with surrogate escapes
(``os.fsdecode(b"caf\\xe9") == "caf\\udce9"``), and every path ferrolock hands back must decode the same
way (``os.fsencode`` of it gives the original bytes), or a caller that opens, compares or removes the
path it got back names a different file (``display()`` used to turn the byte into U+FFFD).
"""

from __future__ import annotations

import os
from pathlib import Path

import ferrolock
import pytest

pytestmark = pytest.mark.timeout(30)

RAW = b"caf\xe9-\xff"


@pytest.fixture
def odd(tmp_path: Path) -> Path:
    """A directory whose own name is not valid UTF-8."""
    path = Path(os.fsdecode(os.fsencode(tmp_path) + b"/" + RAW))
    path.mkdir()
    return path


def test_file_lock_returns_its_path_unchanged(odd: Path) -> None:
    path = os.fsdecode(os.fsencode(odd) + b"/" + RAW + b".lock")
    lock = ferrolock.FileLock(path)
    assert lock.lock_file == path
    with lock:
        assert os.path.exists(os.fsencode(lock.lock_file)), "the name handed back names the file created"
    assert os.fsencode(lock.lock_file).endswith(RAW + b".lock")


def test_state_file_returns_its_paths_unchanged(odd: Path) -> None:
    base = os.fsencode(odd) + b"/" + RAW
    state = ferrolock.StateFile(
        os.fsdecode(base), backup_path=os.fsdecode(base + b".bak"), temp_path=os.fsdecode(base + b".tmp")
    )
    assert os.fsencode(state.path) == base
    assert os.fsencode(state.lock_path) == base + b".lock"
    assert os.fsencode(state.backup_path or "") == base + b".bak"
    assert os.fsencode(state.temp_path or "") == base + b".tmp"
    state.write(b"x")
    assert os.path.exists(os.fsencode(state.path))


def test_errors_name_the_path_unchanged(odd: Path) -> None:
    path = os.fsdecode(os.fsencode(odd) + b"/" + RAW + b".lock")
    holder = ferrolock.FileLock(path)
    with holder:
        other = ferrolock.FileLock(path, detect_deadlock=False)
        with pytest.raises(ferrolock.Timeout) as timeout:
            other.acquire(timeout=0)
    assert timeout.value.lock_file == path
    missing = os.fsdecode(os.fsencode(odd) + b"/no-such-dir/" + RAW)
    with pytest.raises(FileNotFoundError) as err:
        ferrolock.atomic_write(missing, b"x")
    assert err.value.filename is not None, "the missing directory is named"
    assert os.fsencode(err.value.filename) == os.fsencode(odd) + b"/no-such-dir"
