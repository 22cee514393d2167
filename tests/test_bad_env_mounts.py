"""Bad environments, part 3: a full disk and a read-only mount. Each test mounts a small tmpfs (real
``ENOSPC``, from the kernel, at whatever step runs out first), fills it, and runs a write path: the
write fails with ``ENOSPC`` and the file's name, the old content and its backup are intact, no temporary
file is left, and once space is freed the same call succeeds. Without the privilege to mount, the tests
skip (the same steps fail with injected ``EIO`` in ``test_state_crash.py`` and ``test_crash_points.py``).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import ferrolock
import pytest
from ferrolock.compat.blackbox5 import StateManager
from ferrolock.compat.todo2 import task_locking

pytestmark = pytest.mark.timeout(60)


def until_it_fails(step: Callable[[], object]) -> int | None:
    """Repeat ``step`` until it raises ``OSError``; its errno."""
    while True:
        try:
            step()
        except OSError as e:
            return e.errno


class FullDisk:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._fillers: list[Path] = []

    def fill(self) -> None:
        """Use up every inode (empty files), then every block."""

        def another_file() -> None:
            path = self.root / f".fill-{len(self._fillers)}"
            path.touch()
            self._fillers.append(path)

        assert until_it_fails(another_file) == errno.ENOSPC
        with open(self._fillers[0], "ab", buffering=0) as fh:
            assert until_it_fails(lambda: fh.write(b"\0" * 4096)) == errno.ENOSPC

    def free(self) -> None:
        for path in self._fillers:
            path.unlink()
        self._fillers.clear()


@pytest.fixture
def disk() -> Iterator[FullDisk]:
    mount = Path(tempfile.gettempdir()) / f"ferrolock-full-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k,nr_inodes=64,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield FullDisk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], timeout=30, check=False)
        mount.rmdir()


def no_litter(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if ".tmp-" in p.name or ".bak-" in p.name or p.name.endswith(".tmp")]


def test_a_state_file_write_on_a_full_disk_fails_cleanly_and_succeeds_after(disk: FullDisk) -> None:
    state = ferrolock.StateFile(disk.root / "s.txt", backup_path=disk.root / "s.bak")
    state.write(b"v1")
    state.write(b"v2")
    disk.fill()
    with pytest.raises(OSError, match="No space") as info:
        state.write(b"v3" * 100_000)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename is not None
    assert (state.read(), state.read_backup()) == (b"v2", b"v1")
    assert no_litter(disk.root) == []
    assert not state.is_locked
    disk.free()
    state.write(b"v3" * 100_000)
    assert state.read_backup() == b"v2"


def test_state_manager_on_a_full_disk_keeps_state_md_and_its_backup(disk: FullDisk) -> None:
    manager = StateManager(disk.root / "STATE.md", max_retries=1)
    manager.initialize("wf", "Full", 2, [[{"task_id": "T-1", "description": "first"}]])
    manager.add_note("before")
    before = (disk.root / "STATE.md").read_bytes(), (disk.root / "STATE.backup").read_bytes()
    disk.fill()
    with pytest.raises(OSError, match="No space") as info:
        manager.add_note("x" * 600_000)
    assert info.value.errno == errno.ENOSPC
    assert ((disk.root / "STATE.md").read_bytes(), (disk.root / "STATE.backup").read_bytes()) == before
    assert manager.load_state().notes == ["before"]
    assert no_litter(disk.root) == []
    disk.free()
    manager.add_note("after")
    assert manager.load_state().notes == ["before", "after"]


def test_a_lock_works_on_a_full_disk_and_a_new_lock_file_fails_clearly(disk: FullDisk) -> None:
    existing = ferrolock.FileLock(disk.root / "existing.lock")
    with existing:
        pass
    disk.fill()
    with existing:  # the record cannot be written (no block for it): the lock is still held
        assert ferrolock.probe(disk.root / "existing.lock")[0] == "held"
    with pytest.raises(OSError, match="No space") as info:
        ferrolock.FileLock(disk.root / "new.lock").acquire(timeout=0)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(disk.root / "new.lock")


def test_todo2_assignment_on_a_full_disk_reports_failure_and_keeps_the_json(
    disk: FullDisk, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = disk.root / ".todo2" / "state.todo2.json"
    state.parent.mkdir()
    todos = [{"id": f"T-{i}", "notes": "x" * 2000} for i in range(60)]
    state.write_text(json.dumps({"todos": todos}, indent=2))
    monkeypatch.setenv("PROJECT_ROOT", str(disk.root))
    assert task_locking.atomic_assign_task("T-1", "first", timeout=0) == (True, None)
    before = state.read_bytes()
    disk.fill()
    ok, reason = task_locking.atomic_assign_task("T-2", "second", timeout=0)
    assert not ok
    assert "No space" in str(reason)
    assert state.read_bytes() == before
    assert no_litter(disk.root) == []
    disk.free()
    assert task_locking.atomic_assign_task("T-2", "second", timeout=0) == (True, None)


def test_a_scope_claim_on_a_full_disk_fails_clearly_and_leaves_nothing(disk: FullDisk) -> None:
    manager = ferrolock.LockManager(disk.root / ".loops")
    assert manager.acquire("first", [str(disk.root / "a")])
    manager.release("first")
    disk.fill()
    with pytest.raises(OSError, match="No space") as info:
        manager.acquire("second", [str(disk.root / "b")])
    assert info.value.errno == errno.ENOSPC
    assert sorted(p.name for p in (disk.root / ".loops" / ".running").iterdir()) == [".acquire.lock"]
    disk.free()
    assert manager.acquire("second", [str(disk.root / "b")])
    manager.release("second")


def test_run_once_on_a_full_disk_leaves_no_marker_and_runs_again_after(disk: FullDisk) -> None:
    runs = []
    marker, lock = disk.root / "ws" / ".done", disk.root / "setup.lock"
    (disk.root / "ws").mkdir()
    lock.touch()  # the lock file exists before the disk fills
    disk.fill()
    with pytest.raises(OSError, match="No space") as info:
        ferrolock.run_once(marker, lock, lambda: runs.append(1), marker_text="x" * 4096)
    assert info.value.errno == errno.ENOSPC
    assert runs == [1]
    assert not marker.exists()
    assert no_litter(disk.root) == []
    disk.free()
    assert ferrolock.run_once(marker, lock, lambda: runs.append(2)) is True
    assert runs == [1, 2]


def test_an_existing_lock_file_on_a_read_only_mount_still_locks(disk: FullDisk) -> None:
    """flock needs no write access: a lock file on a read-only mount is locked through a read-only
    descriptor (before the fix: EROFS). A lock file that does not exist there cannot be created."""
    (disk.root / "a.lock").touch()
    done = subprocess.run(["mount", "-o", "remount,ro", str(disk.root)], capture_output=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    with ferrolock.FileLock(disk.root / "a.lock", timeout=0):
        assert ferrolock.probe(disk.root / "a.lock")[0] == "held"
    with pytest.raises(OSError, match="Read-only") as info:
        ferrolock.FileLock(disk.root / "new.lock").acquire(timeout=0)
    assert info.value.errno == errno.EROFS
    with pytest.raises(OSError, match="Read-only"):
        ferrolock.StateFile(disk.root / "s.txt").write(b"x")
