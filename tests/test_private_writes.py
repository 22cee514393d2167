"""No window where private data is readable: the temporary file of an atomic replace has its final mode
(or a stricter one) before its first byte, so another user can never open it and read the new content of
a ``0600`` file while it is being written.

Each case crashes a writer (a test-only fault point, ``SIGKILL``) between the two halves of its data,
which leaves the temporary file exactly as it was at that moment, and looks at its mode.
"""

from __future__ import annotations

import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)


def crash_during(point: str, code: str, *, umask: int = 0o022) -> None:
    """Run ``code`` in a fresh interpreter with ``point`` armed to crash and ``umask`` set; it must die."""
    program = (
        f"import os, ferrolock\nfrom ferrolock import _ferrolock\nos.umask({umask})\n"
        f"_ferrolock._set_failpoint({point!r}, 'crash')\n{code}\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=30, check=False)
    assert done.returncode == -9, done.stderr


def leftover(directory: Path, tag: str) -> Path:
    """The one hidden file a crashed writer left (``.<name>.<tag>-...``)."""
    found = [p for p in directory.iterdir() if p.name.startswith(".") and f".{tag}-" in p.name]
    assert len(found) == 1, sorted(p.name for p in directory.iterdir())
    return found[0]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.parametrize("final", [0o600, 0o640, 0o400])
def test_replacing_a_private_file_never_exposes_the_new_content(tmp_path: Path, final: int) -> None:
    target = tmp_path / "secret.json"
    target.write_bytes(b"old")
    target.chmod(final)
    new = b"new secret content"
    crash_during("atomic_write:write", f"ferrolock.atomic_write({str(target)!r}, {new!r})")
    temp = leftover(tmp_path, "tmp")
    assert temp.read_bytes() == new[: len(new) // 2], "the crash left the first half, as the test intends"
    assert mode_of(temp) == final, f"the temporary file had mode {mode_of(temp):o} while the target has {final:o}"


def test_a_mode_asked_for_is_exact_before_the_first_byte_whatever_the_umask(tmp_path: Path) -> None:
    """``mode=0o644`` under ``umask 077``: ``open()`` alone would create ``0600``; the file must be ``0644``
    when it appears under its name, and it is already that while it is written."""
    target = tmp_path / "shared.txt"
    crash_during(
        "atomic_write:write", f"ferrolock.atomic_write({str(target)!r}, b'public data', mode=0o644)", umask=0o077
    )
    assert mode_of(leftover(tmp_path, "tmp")) == 0o644


def test_a_state_file_write_keeps_its_mode_from_the_start(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_bytes(b"{}")
    state.chmod(0o600)
    crash_during("atomic_write:write", f"ferrolock.StateFile({str(state)!r}).write(b'{{\"token\": 1}}')")
    assert mode_of(leftover(tmp_path, "tmp")) == 0o600


def test_a_backup_made_by_copy_has_the_files_mode_from_the_start(tmp_path: Path) -> None:
    """Where the backup cannot be a hard link (another filesystem), it is a copy: created with the
    file's mode before the first byte is copied, like the temporary file."""
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs a second filesystem (/dev/shm) for a backup that cannot be a hard link")
    with tempfile.TemporaryDirectory(dir=other) as backups:
        target = tmp_path / "secret.json"
        target.write_bytes(b"v1")
        target.chmod(0o600)
        backup = Path(backups) / "secret.json.bak"
        crash_during(
            "atomic_write:backup_rename",
            f"ferrolock.atomic_write({str(target)!r}, b'v2', backup={str(backup)!r})",
        )
        copy = leftover(Path(backups), "bak")
        assert copy.read_bytes() == b"v1"
        assert mode_of(copy) == 0o600
