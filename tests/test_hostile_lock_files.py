"""Lock files and holder records another user controls.

* A lock file that belongs to another user in a shared (sticky, world-writable) directory is refused:
  its owner may delete it at any moment, and then a newcomer creates a fresh file at the same path and
  "wins" a lock that the victim still holds on the old inode: two exclusive holders. The refusal says
  why. A file of the directory's owner is trusted, as the kernel's ``protected_regular`` trusts it.
* A holder record is shown (in ``Timeout`` messages, ``holder()``, ``probe()``) only when the kernel
  confirms it: ``/proc/locks`` must list the record's pid as the exclusive flock holder of that very
  file. Anyone who can write the file can write any text into it; only the kernel knows who holds it.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import ferrolock
import pytest
from process_helpers import SPAWN, START_DEADLINE, cleanup_processes, hold_lock
from users import ATTACKER, VICTIM, give, needs_root, report_as, run_as_popen, shared_dir

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def shared() -> Iterator[Path]:
    with shared_dir() as path:
        yield path


def forged_record(purpose: str) -> bytes:
    """A record claiming the lock for a process that exists on this host (this test's own)."""
    record = {"pid": os.getpid(), "host": socket.gethostname(), "since": "2026-01-01T00:00:00Z"}
    return (json.dumps({**record, "purpose": purpose, "version": 1}) + "\n").encode()


# --- a lock file someone else owns -----------------------------------------------------------------------


@needs_root
@pytest.mark.parametrize("mode", [0o666, 0o644], ids=["writable by all", "read-only for others"])
def test_another_users_lock_file_in_a_shared_directory_is_refused(shared: Path, mode: int) -> None:
    lock = shared / "a.lock"
    lock.write_bytes(forged_record("theirs"))
    give(lock, ATTACKER, mode)
    result = report_as(VICTIM, "report(lambda: ferrolock.FileLock(sys.argv[1]).acquire(timeout=0) and None)", str(lock))
    assert result["ok"] is False, "the victim took a lock whose file its owner can delete at any moment"
    assert result["untrusted"], result
    assert result["errno"] == 13
    message = str(result["message"])
    assert f"uid {ATTACKER}" in message, message
    assert "delete" in message, "the refusal says why"
    assert lock.read_bytes() == forged_record("theirs")


@needs_root
def test_a_lock_file_of_the_directory_owner_is_used(shared: Path) -> None:
    """``shared`` belongs to root (as ``/tmp`` does): root may remove anything in it anyway, so its files
    are as trustworthy as the directory itself."""
    lock = shared / "communal.lock"
    lock.touch()
    give(lock, 0, 0o666)
    code = (
        "lock = ferrolock.FileLock(sys.argv[1])\n"
        "def use():\n"
        "    with lock:\n"
        "        return lock.holder()['pid'] == os.getpid()\n"
        "report(use)"
    )
    assert report_as(VICTIM, code, str(lock)) == {"ok": True, "value": True}


def test_a_lock_file_with_foreign_content_gets_no_record(tmp_path: Path) -> None:
    """A path that names a data file by mistake: locking it is harmless, writing a record over its first
    bytes is not."""
    data = tmp_path / "notes.txt"
    data.write_bytes(b"do not overwrite me\n")
    lock = ferrolock.FileLock(data)
    with lock:
        assert lock.is_locked
    assert data.read_bytes() == b"do not overwrite me\n"


# --- holder records the holder did not write -------------------------------------------------------------


@needs_root
def test_a_forged_record_is_not_presented_as_the_holder(shared: Path) -> None:
    """The attacker holds a communal lock file with a plain ``fcntl.flock`` and writes a record naming a
    live process of this host with a purpose of its choosing. The victim's ``Timeout`` and ``holder()``
    must not repeat it; the kernel's holder pid is what the message can state."""
    lock = shared / "communal.lock"
    lock.touch()
    give(lock, 0, 0o666)
    forged = forged_record("FORGED: maintenance by the admin, call 555-0100")
    attacker = (
        "import fcntl\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.pwrite(fd, sys.argv[2].encode(), 0)\n"
        "print(os.getpid(), flush=True)\n"
        "sys.stdin.readline()\n"
    )
    victim = (
        "lock = ferrolock.FileLock(sys.argv[1])\n"
        "def attempt():\n"
        "    try:\n"
        "        lock.acquire(timeout=0)\n"
        "    except ferrolock.Timeout as e:\n"
        "        return [str(e), e.holder, lock.holder(), ferrolock.probe(sys.argv[1])[1]]\n"
        "report(attempt)\n"
    )
    with run_as_popen(ATTACKER, attacker, str(lock), forged.decode()) as holder:
        assert holder.stdout is not None
        attacker_pid = int(holder.stdout.readline())
        result = report_as(VICTIM, victim, str(lock))
    assert result["ok"] is True, result
    message, timeout_holder, holder_now, probed = result["value"]  # type: ignore[misc]
    assert "FORGED" not in message, message
    assert f"pid {attacker_pid}" in message, "the kernel's holder is named"
    assert timeout_holder is None
    assert holder_now is None
    assert probed is None


def test_a_genuine_record_is_presented(lock_path: Path) -> None:
    held, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold_lock, args=(str(lock_path), held, release, False, "nightly build"))
    with cleanup_processes(holder):
        holder.start()
        holder_pid = holder.pid
        assert held.wait(START_DEADLINE)
        with pytest.raises(ferrolock.Timeout) as err:
            ferrolock.FileLock(lock_path).acquire(timeout=0)
        release.set()
    assert err.value.holder is not None
    assert err.value.holder["pid"] == holder_pid
    assert f"held by pid {holder_pid}" in str(err.value)
    assert "nightly build" in str(err.value)
