"""Crash-point proof for state files: a process is SIGKILLed (or gets EIO) at every step of a write and
of a removal, and what it leaves must be complete (the old version or the new), with a complete backup,
and nothing that blocks or confuses the next writer.

Each case runs in a fresh interpreter: fault points are process-global, and a crash kills the process.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import state_helpers as h
from ferrolock import StateFile

# (fault point, content of the file after a crash there, content of the backup after it)
WRITE_STEPS = [
    ("atomic_write:create_temp", b"v2", b"v1"),
    ("atomic_write:write", b"v2", b"v1"),  # between the two halves of the data
    ("atomic_write:chmod", b"v2", b"v1"),
    ("atomic_write:fsync_temp", b"v2", b"v1"),
    ("atomic_write:backup_link", b"v2", b"v1"),
    ("atomic_write:backup_rename", b"v2", b"v1"),
    ("atomic_write:rename", b"v2", b"v2"),
    ("atomic_write:fsync_dir", b"v3 new", b"v2"),
]
REMOVE_STEPS = [
    ("atomic_write:backup_link", b"v2", b"v1"),
    ("atomic_write:backup_rename", b"v2", b"v1"),
    ("state_file:unlink", b"v2", b"v2"),
    ("state_file:fsync_dir", None, b"v2"),
]
TEMP_MODES = ["unique", "fixed"]


def make_state(tmp_path: Path, temp_mode: str) -> StateFile:
    temp = tmp_path / "STATE.tmp" if temp_mode == "fixed" else None
    return StateFile(tmp_path / "STATE.md", backup_path=tmp_path / "STATE.backup", temp_path=temp)


def state_expr(tmp_path: Path, temp_mode: str) -> str:
    temp = repr(str(tmp_path / "STATE.tmp")) if temp_mode == "fixed" else "None"
    return (
        f"ferrolock.StateFile({str(tmp_path / 'STATE.md')!r}, "
        f"backup_path={str(tmp_path / 'STATE.backup')!r}, temp_path={temp})"
    )


def run_with_fault(tmp_path: Path, temp_mode: str, point: str, action: str, operation: str) -> tuple[int, str]:
    code = f"""
import ferrolock
from ferrolock import _ferrolock
state = {state_expr(tmp_path, temp_mode)}
_ferrolock._set_failpoint({point!r}, {action!r})
try:
    {operation}
except OSError as exc:
    print("OSError", exc.errno)
else:
    print("completed")
"""
    done = h.run_python(code)
    return done.returncode, done.stdout.strip() + done.stderr.strip()


def leftovers(tmp_path: Path) -> list[str]:
    """Everything beside the state file, its backup and its lock."""
    expected = {"STATE.md", "STATE.backup", "STATE.md.lock"}
    return sorted(p.name for p in tmp_path.iterdir() if p.name not in expected)


def prepare(tmp_path: Path, temp_mode: str) -> StateFile:
    state = make_state(tmp_path, temp_mode)
    state.write(b"v1")
    state.write(b"v2")
    return state


def assert_next_writer_succeeds(state: StateFile, tmp_path: Path) -> None:
    before = state.read()
    state.write(b"v4", timeout=0)  # the crashed holder's lock died with it: no wait at all
    assert state.read() == b"v4"
    assert state.read_backup() == before
    assert leftovers(tmp_path) == [], "the next writer swept what the crash left"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("temp_mode", TEMP_MODES)
@pytest.mark.parametrize(("point", "after", "backup"), WRITE_STEPS)
def test_crash_during_write_leaves_old_or_new_and_a_complete_backup(
    tmp_path: Path, temp_mode: str, point: str, after: bytes, backup: bytes
) -> None:
    state = prepare(tmp_path, temp_mode)
    code, output = run_with_fault(tmp_path, temp_mode, point, "crash", 'state.write(b"v3 new")')
    assert code == -signal.SIGKILL, output
    assert state.read() == after
    assert state.read_backup() == backup
    assert_next_writer_succeeds(state, tmp_path)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("temp_mode", TEMP_MODES)
@pytest.mark.parametrize(("point", "after", "backup"), WRITE_STEPS)
def test_error_during_write_changes_nothing_and_leaves_no_temp_file(
    tmp_path: Path, temp_mode: str, point: str, after: bytes, backup: bytes
) -> None:
    state = prepare(tmp_path, temp_mode)
    code, output = run_with_fault(tmp_path, temp_mode, point, "error", 'state.write(b"v3 new")')
    assert code == 0, output
    assert output == "OSError 5", "an injected EIO fails the call"
    if point == "atomic_write:fsync_dir":
        # The rename happened, but the caller is told the write may not be durable.
        assert state.read() == b"v3 new"
    else:
        assert state.read() == b"v2", "the target is unchanged"
    assert state.read_backup() in (b"v1", b"v2")
    assert leftovers(tmp_path) == [], "no temporary file, even before the next writer"
    assert not state.is_locked
    assert_next_writer_succeeds(state, tmp_path)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("point", "after", "backup"), REMOVE_STEPS)
def test_crash_during_remove_leaves_the_file_or_its_backup(
    tmp_path: Path, point: str, after: bytes | None, backup: bytes
) -> None:
    state = prepare(tmp_path, "unique")
    code, output = run_with_fault(tmp_path, "unique", point, "crash", "state.remove()")
    assert code == -signal.SIGKILL, output
    assert state.read() == after
    assert state.read_backup() == backup
    assert leftovers(tmp_path) == [] or point == "atomic_write:backup_rename"
    state.write(b"v4", timeout=0)
    assert state.read() == b"v4"
    assert leftovers(tmp_path) == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("point", "after", "backup"), REMOVE_STEPS)
def test_error_during_remove_keeps_the_file(tmp_path: Path, point: str, after: bytes | None, backup: bytes) -> None:
    state = prepare(tmp_path, "unique")
    code, output = run_with_fault(tmp_path, "unique", point, "error", "state.remove()")
    assert code == 0, output
    assert output == "OSError 5"
    expected = None if point == "state_file:fsync_dir" else b"v2"
    assert state.read() == expected
    assert state.read_backup() in (b"v1", b"v2")
    assert leftovers(tmp_path) == []
    assert not state.is_locked


@pytest.mark.timeout(60)
def test_a_holder_killed_inside_an_edit_changes_nothing_and_frees_the_lock(tmp_path: Path) -> None:
    state = prepare(tmp_path, "fixed")
    code = f"""
import os, signal, ferrolock
state = {state_expr(tmp_path, "fixed")}
with state.edit() as draft:
    draft.text = "half-done"
    os.kill(os.getpid(), signal.SIGKILL)
"""
    done = h.run_python(code)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert state.read() == b"v2"
    assert state.read_backup() == b"v1"
    with state.edit(timeout=0) as draft:
        draft.text = "next"
    assert state.read() == b"next"
