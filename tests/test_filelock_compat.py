"""FileLock as a drop-in for py-filelock's: its messages, options, construction rules and log records.

Each test pins one behaviour py-filelock users rely on (see the README's "Migrating from py-filelock").
"""

from __future__ import annotations

import logging
import os
import pickle
import stat
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import ferrolock
import pytest
from ferrolock import _ferrolock


@pytest.fixture
def filelock_debug(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger="filelock")
    yield caplog
    logging.getLogger("filelock").setLevel(logging.NOTSET)


# --- one thread, two objects ------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_second_object_in_the_same_thread_with_a_timeout_waits_it_out_and_raises_timeout(lock_path: Path) -> None:
    first = ferrolock.FileLock(lock_path)
    second = ferrolock.FileLock(lock_path)
    with first:
        start = time.monotonic()
        with pytest.raises(ferrolock.Timeout):
            second.acquire(timeout=0.3)
        assert time.monotonic() - start >= 0.3
        with pytest.raises(ferrolock.Timeout):
            second.acquire(blocking=False)
    assert not second.is_locked


@pytest.mark.timeout(30)
def test_a_second_object_waiting_forever_in_the_same_thread_is_a_deadlock_in_filelocks_words(lock_path: Path) -> None:
    first = ferrolock.FileLock(lock_path)
    with first, pytest.raises(ferrolock.WouldDeadlock, match=r"^Deadlock: lock '.*a\.lock' is already held") as info:
        ferrolock.FileLock(lock_path).acquire()
    assert "is_singleton=True" in str(info.value)
    assert isinstance(info.value, RuntimeError)


@pytest.mark.timeout(30)
def test_a_timed_wait_gets_the_lock_when_another_thread_drops_the_holding_object(lock_path: Path) -> None:
    """Why a finite timeout waits instead of refusing: the other holder may go away meanwhile."""
    first = ferrolock.FileLock(lock_path, thread_local=False)
    first.acquire()
    second = ferrolock.FileLock(lock_path)
    releaser = threading.Timer(0.2, first.release)
    releaser.start()
    try:
        with second.acquire(timeout=20):
            assert second.is_locked
    finally:
        releaser.join()


# --- Timeout -------------------------------------------------------------------------------------------


def test_timeout_message_repr_and_pickling_are_filelocks() -> None:
    exc = ferrolock.Timeout("/x/a.lock")
    assert str(exc) == "The file lock '/x/a.lock' could not be acquired."
    assert repr(exc) == "Timeout('/x/a.lock')"
    again = pickle.loads(pickle.dumps(exc))
    assert (type(again), str(again), repr(again), again.lock_file) == (type(exc), str(exc), repr(exc), "/x/a.lock")


def test_a_timeout_with_a_holder_names_it_and_survives_pickling(lock_path: Path) -> None:
    holder = ferrolock.FileLock(lock_path, purpose="nightly build")
    with holder, pytest.raises(ferrolock.Timeout) as info:
        ferrolock.FileLock(lock_path).acquire(timeout=0)
    exc = info.value
    assert str(exc).startswith(f"The file lock '{lock_path}' could not be acquired: held by pid {os.getpid()} on ")
    assert str(exc).endswith("(nightly build).")
    again = pickle.loads(pickle.dumps(exc))
    assert (str(again), repr(again), again.holder) == (str(exc), repr(exc), exc.holder)


# --- logging ---------------------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_debug_records_go_to_the_filelock_logger_with_its_messages(
    lock_path: Path, filelock_debug: pytest.LogCaptureFixture
) -> None:
    lock = ferrolock.FileLock(lock_path)
    with lock, pytest.raises(ferrolock.Timeout):
        ferrolock.FileLock(lock_path).acquire(timeout=0.05)
    messages = [r.getMessage() for r in filelock_debug.records if r.name == "filelock"]
    ident = id(lock)
    assert f"Attempting to acquire lock {ident} on {lock_path}" in messages
    assert f"Lock {ident} acquired on {lock_path}" in messages
    assert f"Attempting to release lock {ident} on {lock_path}" in messages
    assert f"Lock {ident} released on {lock_path}" in messages
    assert any(m.startswith("Timeout on acquiring lock") for m in messages), messages
    assert all(r.levelno == logging.DEBUG for r in filelock_debug.records if r.name == "filelock")


@pytest.mark.timeout(30)
def test_no_record_is_made_while_the_filelock_logger_is_above_debug(
    lock_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The level is watched: raising it after DEBUG was on stops the records (and their cost) at once."""
    logger = logging.getLogger("filelock")
    logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)  # the capture handler takes everything that is emitted
    try:
        with ferrolock.FileLock(lock_path):
            pass
        assert any(r.name == "filelock" for r in caplog.records)
        caplog.clear()
        logger.setLevel(logging.INFO)
        with ferrolock.FileLock(lock_path):
            pass
        assert [r for r in caplog.records if r.name == "filelock"] == []
    finally:
        logger.setLevel(logging.NOTSET)


# --- mode ------------------------------------------------------------------------------------------------


def _created_with_umask(path: Path, umask: int, **kwargs: object) -> int:
    old = os.umask(umask)
    try:
        with ferrolock.FileLock(path, **kwargs):  # type: ignore[arg-type]
            pass
    finally:
        os.umask(old)
    return stat.S_IMODE(path.stat().st_mode)


def test_an_explicit_mode_wins_over_the_umask(tmp_path: Path) -> None:
    assert _created_with_umask(tmp_path / "a.lock", 0o077, mode=0o664) == 0o664


def test_without_a_mode_the_umask_decides_as_for_any_new_file(tmp_path: Path) -> None:
    assert _created_with_umask(tmp_path / "a.lock", 0o022) == 0o644
    assert _created_with_umask(tmp_path / "b.lock", 0o002) == 0o664
    assert not ferrolock.FileLock(tmp_path / "c.lock").has_explicit_mode


# --- construction ----------------------------------------------------------------------------------------


class _PathOnlyLock(ferrolock.FileLock):
    """virtualenv's shape: a subclass whose ``__init__`` takes only a path."""

    def __init__(self, path: str) -> None:
        super().__init__(path + ".lock")
        self.base = path


def test_a_subclass_may_narrow_the_constructor(tmp_path: Path) -> None:
    lock = _PathOnlyLock(str(tmp_path / "venv"))
    assert (lock.lock_file, lock.base) == (str(tmp_path / "venv.lock"), str(tmp_path / "venv"))
    with lock:
        assert lock.is_locked
    with pytest.raises(TypeError, match="timeout"):
        _PathOnlyLock(str(tmp_path / "venv"), timeout=3)  # type: ignore[call-arg]


def test_is_singleton_shares_one_instance_per_path_and_refuses_other_options(tmp_path: Path) -> None:
    first = ferrolock.FileLock(tmp_path / "a.lock", is_singleton=True)
    assert ferrolock.FileLock(str(tmp_path / "sub" / ".." / "a.lock"), is_singleton=True) is first
    assert ferrolock.FileLock(tmp_path / "a.lock") is not first
    with pytest.raises(ValueError, match="timeout"):
        ferrolock.FileLock(tmp_path / "a.lock", is_singleton=True, timeout=5)
    with first:
        again = ferrolock.FileLock(tmp_path / "a.lock", is_singleton=True)
        with again:  # the same object: re-entry, never a deadlock
            assert first.lock_counter == 2


def test_lifetime_is_validated_then_ignored_with_a_warning(lock_path: Path) -> None:
    with pytest.warns(UserWarning, match="lifetime is ignored"):
        lock = ferrolock.FileLock(lock_path, lifetime=5)
    assert lock.lifetime is None
    with pytest.raises(ValueError, match="lifetime"):
        ferrolock.FileLock(lock_path, lifetime=-1)
    with pytest.raises(TypeError, match="lifetime"):
        ferrolock.FileLock(lock_path, lifetime="5")  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ferrolock.FileLock(lock_path, lifetime=None).lifetime is None


@pytest.mark.timeout(30)
def test_thread_local_false_makes_the_object_the_owner(lock_path: Path) -> None:
    lock = ferrolock.FileLock(lock_path, thread_local=False)
    assert not lock.is_thread_local()
    lock.acquire()
    counts: list[int] = []
    worker = threading.Thread(target=lambda: (lock.acquire(timeout=0), counts.append(lock.lock_counter)))
    worker.start()
    worker.join(20)
    assert counts == [2]
    lock.release(force=True)
    assert not lock.is_locked


@pytest.mark.timeout(30)
def test_thread_local_settings_are_seen_by_the_thread_that_set_them(lock_path: Path) -> None:
    lock = ferrolock.FileLock(lock_path, timeout=7)
    lock.timeout = 1
    seen: list[float] = []
    worker = threading.Thread(target=lambda: seen.append(lock.timeout))
    worker.start()
    worker.join(20)
    assert (lock.timeout, seen) == (1, [7])


def test_on_acquired_gets_the_descriptor_of_each_fresh_acquisition(lock_path: Path) -> None:
    calls: list[int] = []
    lock = ferrolock.FileLock(lock_path, on_acquired=calls.append)
    with lock, lock:
        assert len(calls) == 1
        os.write(calls[0], b"mine")
    assert lock_path.read_bytes() == b"mine"


def test_a_raising_on_acquired_hook_leaves_nothing_held(lock_path: Path) -> None:
    def refuse(fd: int) -> None:
        raise RuntimeError("hook")

    lock = ferrolock.FileLock(lock_path, on_acquired=refuse)
    with pytest.raises(RuntimeError, match="hook"):
        lock.acquire()
    assert not lock.is_locked
    with ferrolock.FileLock(lock_path).acquire(timeout=0):
        pass


def test_accepted_options_read_back(lock_path: Path) -> None:
    lock = ferrolock.FileLock(
        lock_path, poll_interval=0.2, preserve_lock_file=True, close_error_policy="raise", fallback_to_soft=False
    )
    assert (lock.poll_interval, lock.preserve_lock_file, lock.close_error_policy, lock.fallback_to_soft) == (
        0.2,
        True,
        "raise",
        False,
    )
    lock.poll_interval = 0.01
    assert lock.poll_interval == 0.01
    with lock:
        pass
    assert lock_path.exists()  # never removed on release, preserve_lock_file or not
    with pytest.raises(ValueError, match="close_error_policy"):
        ferrolock.FileLock(lock_path, close_error_policy="loud")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="poll_interval"):
        ferrolock.FileLock(lock_path, poll_interval=float("nan"))


@pytest.mark.timeout(30)
def test_cancel_check_ends_a_wait_with_timeout_and_nothing_held(lock_path: Path) -> None:
    holder = ferrolock.FileLock(lock_path)
    holder.acquire()
    calls = 0

    def cancel() -> bool:
        nonlocal calls
        calls += 1
        return calls >= 3

    waiter = ferrolock.FileLock(lock_path, detect_deadlock=False)
    start = time.monotonic()
    with pytest.raises(ferrolock.Timeout):
        waiter.acquire(timeout=20, poll_interval=0.01, cancel_check=cancel)
    assert calls == 3
    assert time.monotonic() - start < 10
    assert not waiter.is_locked
    holder.release()
    with waiter.acquire(cancel_check=lambda: False, timeout=0):
        assert waiter.is_locked


def test_the_native_flag_follows_the_filelock_loggers_level() -> None:
    """While DEBUG is off the acquire path checks one flag and builds no record."""
    logger = logging.getLogger("filelock")
    logger.setLevel(logging.WARNING)
    try:
        assert not _ferrolock._filelock_debug_enabled()
        logger.setLevel(logging.DEBUG)
        assert _ferrolock._filelock_debug_enabled()
    finally:
        logger.setLevel(logging.NOTSET)
