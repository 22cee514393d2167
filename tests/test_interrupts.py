"""Ctrl-C never leaves anything held: every native call that can wait or log goes through one interrupt
protocol. A real SIGINT interrupts each kind of kernel wait; an exception raised inside a log call (the
Rust core logs through Python's ``logging`` on the calling thread, so a Ctrl-C can land there) surfaces
as itself after whatever the call obtained was given back."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.synchronize import Event
from pathlib import Path

import ferrolock
import pytest
from ferrolock import _ferrolock
from process_helpers import SPAWN, START_DEADLINE, cleanup_processes, wait_until_blocked

pytestmark = pytest.mark.timeout(120)

INTERRUPTED = 7


def wait_until_interrupted(kind: str, path: str, ready: Event, go: Event) -> None:
    """Child: wait for the lock of ``path`` (held by the test) in one of the native waits; after the
    Ctrl-C, hold nothing, then (once the test released) use the same object again."""
    state = ferrolock.StateFile(path, timeout=-1)
    job = ferrolock.JobLock(path + ".lock", None)
    waits: dict[str, Callable[[], None]] = {
        "StateFile.edit": lambda: state.edit().__enter__() and None,
        "StateFile.write": lambda: state.write(b"never"),
        "StateFile.locked": lambda: state.locked().__enter__() and None,
        "JobLock.acquire": lambda: job.acquire() and None,
    }
    try:
        ready.set()
        waits[kind]()
    except KeyboardInterrupt:
        if state.is_locked or job.is_locked():
            sys.exit(4)
        go.wait(START_DEADLINE)
        # The same objects work again: no hold and no "edit in progress" was left behind.
        with state.edit(timeout=START_DEADLINE) as draft:
            draft.text = "after"
        assert job.acquire()
        job.release()
        sys.exit(INTERRUPTED)
    sys.exit(3)


@pytest.mark.parametrize("kind", ["StateFile.edit", "StateFile.write", "StateFile.locked", "JobLock.acquire"])
def test_ctrl_c_interrupts_a_kernel_wait_and_leaves_nothing_held(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "state"
    ready, go = SPAWN.Event(), SPAWN.Event()
    waiter = SPAWN.Process(target=wait_until_interrupted, args=(kind, str(path), ready, go))
    holder = ferrolock.FileLock(f"{path}.lock")
    with cleanup_processes(waiter):
        holder.acquire()
        try:
            waiter.start()
            assert ready.wait(START_DEADLINE)
            assert waiter.pid is not None
            wait_until_blocked(waiter.pid)
            os.kill(waiter.pid, signal.SIGINT)
        finally:
            holder.release()
            go.set()
        waiter.join(START_DEADLINE)
        assert waiter.exitcode == INTERRUPTED
    assert path.read_text() == "after"
    assert ferrolock.probe(f"{path}.lock")[0] in ("free", "missing")


class _RaiseIn(logging.Handler):
    """Raises KeyboardInterrupt from inside the first log call whose message contains ``text``, as a
    Ctrl-C landing there would."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.fired = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.fired and self.text in record.getMessage():
            self.fired = True
            raise KeyboardInterrupt


@contextmanager
def ctrl_c_in_log_call(text: str) -> Iterator[_RaiseIn]:
    handler = _RaiseIn(text)
    logger = logging.getLogger("ferrolock")
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    _ferrolock._reset_logging_cache()
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        _ferrolock._reset_logging_cache()


def _leftover(state: Path) -> None:
    """A temporary file of a crashed writer: the next writer removes it, and logs that it did."""
    (state.parent / f".{state.name}.tmp-crashed").write_bytes(b"half")


def test_ctrl_c_in_a_log_call_during_a_state_file_write(tmp_path: Path) -> None:
    """The write logged its clean-up of a crashed writer's file, and the exception a handler raised
    there was left set: Python reported a SystemError instead of the KeyboardInterrupt."""
    path = tmp_path / "state"
    state = ferrolock.StateFile(path)
    _leftover(path)
    with ctrl_c_in_log_call("left by a crashed writer") as handler, pytest.raises(KeyboardInterrupt):
        state.write(b"new")
    assert handler.fired
    assert not state.is_locked
    state.write(b"again", timeout=0)
    assert path.read_bytes() == b"again"


def test_ctrl_c_in_a_log_call_while_an_edit_writes(tmp_path: Path) -> None:
    path = tmp_path / "state"
    state = ferrolock.StateFile(path)
    edit = state.edit()
    draft = edit.__enter__()
    _leftover(path)
    draft.text = "new"
    with ctrl_c_in_log_call("left by a crashed writer") as handler, pytest.raises(KeyboardInterrupt):
        edit.__exit__(None, None, None)
    assert handler.fired
    assert not state.is_locked
    with state.edit(timeout=0) as draft:  # the interrupted edit is over
        draft.text = "again"
    assert path.read_text() == "again"


def test_ctrl_c_in_a_log_call_during_atomic_write(tmp_path: Path) -> None:
    path, temp = tmp_path / "data", tmp_path / "data.tmp"
    temp.write_bytes(b"stale")
    with ctrl_c_in_log_call("removed stale") as handler, pytest.raises(KeyboardInterrupt):
        ferrolock.atomic_write(path, b"new", temp_path=temp)
    assert handler.fired
    assert path.read_bytes() == b"new"


def test_ctrl_c_in_a_log_call_during_stale_lock_cleanup(tmp_path: Path) -> None:
    """The clean-up logs each entry it skips; a Ctrl-C there was reported as a SystemError."""
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / ".lock").symlink_to(tmp_path / "elsewhere")
    with ctrl_c_in_log_call("is a symbolic link") as handler, pytest.raises(KeyboardInterrupt):
        ferrolock.JobLockManager(tmp_path).cleanup_stale_locks(max_age_seconds=-1)
    assert handler.fired


def test_ctrl_c_in_a_log_call_during_a_scope_release(tmp_path: Path) -> None:
    """Releasing a claim a legacy process rewrote in place logs a warning (and leaves the record)."""
    manager = ferrolock.LockManager(tmp_path)
    assert manager.acquire("job", ["src"])
    record = tmp_path / ".running" / "job.lock"
    legacy = {"loop_name": "job", "scope": ["/src"], "pid": os.getpid(), "started_at": "t"}
    record.write_text(json.dumps(legacy))
    with ctrl_c_in_log_call("rewritten by a legacy process") as handler, pytest.raises(KeyboardInterrupt):
        manager.release("job")
    assert handler.fired
    assert not manager._dir().holds("job")
    assert json.loads(record.read_text()) == legacy


@pytest.mark.parametrize("walk", ["status", "clean"])
def test_ctrl_c_in_a_progress_callback_of_status_or_clean_is_raised(tmp_path: Path, walk: str) -> None:
    """The walk called the progress callback and printed whatever it raised as "unraisable": a Ctrl-C
    while the progress bar drew was swallowed and the command went on as if nothing happened."""
    calls: list[int] = []

    def progress(seen: int) -> None:
        calls.append(seen)
        raise KeyboardInterrupt

    (tmp_path / "a.lock").write_bytes(b"")
    roots = [str(tmp_path)]
    walker: Callable[[], object] = (
        (lambda: _ferrolock._scan_locks(roots, progress))
        if walk == "status"
        else (lambda: _ferrolock._clean_locks(roots, True, progress))
    )
    with pytest.raises(KeyboardInterrupt):
        walker()
    assert len(calls) == 1, "the callback is not called again once it raised"
