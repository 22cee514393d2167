"""FileLock in one process: the py-filelock API, re-entrancy, threads, timeouts, cancellation, logging."""

from __future__ import annotations

import logging
import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ferrolock
import pytest
from ferrolock import _ferrolock
from process_helpers import SPAWN, START_DEADLINE, cleanup_processes


def test_py_filelock_surface(lock_path: Path) -> None:
    lock = ferrolock.FileLock(lock_path)
    assert (lock.timeout, lock.mode, lock.blocking, lock.shared) == (-1.0, 0o644, True, False)
    assert lock.lock_file == str(lock_path)
    assert not lock.is_locked
    assert lock.lock_counter == 0
    with lock.acquire() as got:
        assert got is lock
        assert lock.is_locked
        assert lock.lock_counter == 1
    assert not lock.is_locked
    lock.timeout = 2.5
    assert lock.timeout == 2.5
    assert repr(lock) == f"FileLock({str(lock_path)!r}, shared=False, locked=False)".replace("'", '"')


def test_reentrant_for_the_owning_thread(lock_path: Path) -> None:
    lock = ferrolock.FileLock(lock_path)
    with lock, lock:
        assert lock.lock_counter == 2
        lock.acquire()
        assert lock.lock_counter == 3
        lock.release()
        assert lock.lock_counter == 2
    assert lock.lock_counter == 0
    lock.acquire()
    lock.acquire()
    lock.release(force=True)
    assert not lock.is_locked
    lock.release()  # releasing what is not held is a no-op


def test_decorator_use(lock_path: Path) -> None:
    lock = ferrolock.FileLock(lock_path)

    @lock
    def critical() -> bool:
        return lock.is_locked

    assert critical() is True
    assert not lock.is_locked


@pytest.mark.timeout(30)
def test_two_objects_on_one_path_exclude_each_other(lock_path: Path) -> None:
    a, b = ferrolock.FileLock(lock_path), ferrolock.FileLock(lock_path)
    with a:
        with pytest.raises(ferrolock.Timeout):
            b.acquire(timeout=0)
        # Waiting on the second object from the thread that holds the first would wait forever.
        with pytest.raises(ferrolock.WouldDeadlock):
            b.acquire()
        outcome: list[str] = []

        def other_thread() -> None:
            try:
                b.acquire(timeout=0.05)
                outcome.append("acquired")
            except ferrolock.Timeout:
                outcome.append("timeout")

        t = threading.Thread(target=other_thread)
        t.start()
        t.join(START_DEADLINE)
        assert outcome == ["timeout"]
    with b:
        assert b.is_locked


@pytest.mark.timeout(30)
def test_two_threads_sharing_one_object_exclude_each_other(lock_path: Path) -> None:
    lock = ferrolock.FileLock(lock_path)
    seen: list[object] = []
    with lock:

        def other_thread() -> None:
            lock.release()  # not the holder: a no-op, never a release of our lock
            seen.append(lock.lock_counter)
            try:
                lock.acquire(timeout=0.05)
                seen.append("acquired")
            except ferrolock.Timeout:
                seen.append("timeout")

        t = threading.Thread(target=other_thread)
        t.start()
        t.join(START_DEADLINE)
        assert lock.is_locked
    assert seen == [0, "timeout"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("shared_object", [True, False])
def test_thread_hammer_keeps_mutual_exclusion(tmp_path: Path, shared_object: bool) -> None:
    path = tmp_path / "hammer.lock"
    common = ferrolock.FileLock(path)
    inside = 0
    overlaps = 0
    total = 0

    def work(_: int) -> None:
        nonlocal inside, overlaps, total
        lock = common if shared_object else ferrolock.FileLock(path)
        for _ in range(200):
            with lock:
                inside += 1
                if inside != 1:
                    overlaps += 1
                total += 1
                inside -= 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    assert (overlaps, total) == (0, 1600)


@pytest.mark.timeout(30)
def test_the_gil_is_released_while_waiting(lock_path: Path) -> None:
    holder = ferrolock.FileLock(lock_path)
    waiter = ferrolock.FileLock(lock_path)
    holder.acquire()
    done = threading.Event()
    result: list[str] = []

    def wait() -> None:
        try:
            waiter.acquire(timeout=0.3)
        except ferrolock.Timeout:
            result.append("timeout")
        done.set()

    t = threading.Thread(target=wait)
    t.start()
    spins = 0
    while not done.is_set():
        spins += 1  # pure Python work: only possible while the waiter does not hold the GIL
    t.join(START_DEADLINE)
    holder.release()
    assert result == ["timeout"]
    assert spins > 10_000


@pytest.mark.timeout(30)
@pytest.mark.parametrize("timeout", [0.001, 0.02, 0.1, 0.25])
def test_timeouts_are_never_early_and_barely_late(lock_path: Path, timeout: float) -> None:
    holder = ferrolock.FileLock(lock_path)
    holder.acquire()
    waiter = ferrolock.FileLock(lock_path, detect_deadlock=False)
    start = time.monotonic()
    with pytest.raises(ferrolock.Timeout):
        waiter.acquire(timeout=timeout)
    took = time.monotonic() - start
    holder.release()
    assert took >= timeout
    # The benchmark measures the overshoot precisely; here only a gross regression (a poll) fails.
    assert took - timeout < 0.05
    assert not waiter.is_locked


def test_timeout_zero_and_nonblocking_are_one_attempt(lock_path: Path) -> None:
    holder = ferrolock.FileLock(lock_path)
    holder.acquire()
    waiter = ferrolock.FileLock(lock_path, timeout=60)
    for call in (lambda: waiter.acquire(timeout=0), lambda: waiter.acquire(blocking=False)):
        start = time.monotonic()
        with pytest.raises(ferrolock.Timeout):
            call()
        assert time.monotonic() - start < 0.05
    nonblocking = ferrolock.FileLock(lock_path, blocking=False)
    with pytest.raises(ferrolock.Timeout):
        nonblocking.__enter__()


@pytest.mark.timeout(30)
def test_a_cancel_token_ends_a_wait_from_another_thread(lock_path: Path) -> None:
    holder = ferrolock.FileLock(lock_path)
    holder.acquire()
    waiter = ferrolock.FileLock(lock_path, detect_deadlock=False)
    token = ferrolock.CancelToken()
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            waiter.acquire(cancel=token)
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    token.cancel()
    t.join(START_DEADLINE)
    assert not t.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], ferrolock.Cancelled)
    assert token.cancelled
    assert not waiter.is_locked
    holder.release()


def test_exception_hierarchy_and_pickling(lock_path: Path) -> None:
    holder = ferrolock.FileLock(lock_path, purpose="pickle test")
    holder.acquire()
    with pytest.raises(ferrolock.Timeout) as info:
        ferrolock.FileLock(lock_path).acquire(timeout=0)
    holder.release()
    exc = info.value
    assert isinstance(exc, ferrolock.LockError)
    assert isinstance(exc, TimeoutError)
    assert exc.lock_file == str(lock_path)
    again = pickle.loads(pickle.dumps(exc))
    assert (type(again), str(again), again.lock_file, again.holder) == (type(exc), str(exc), exc.lock_file, exc.holder)


def _raise_timeout(queue: object) -> None:
    import ferrolock as fl

    queue.put(fl.Timeout("/x.lock", {"pid": 1}, "message"))  # type: ignore[attr-defined]


@pytest.mark.timeout(60)
def test_timeout_survives_a_trip_between_processes() -> None:
    queue = SPAWN.Queue()
    p = SPAWN.Process(target=_raise_timeout, args=(queue,))
    with cleanup_processes(p):
        p.start()
        exc = queue.get(timeout=START_DEADLINE)
        p.join(START_DEADLINE)
    assert isinstance(exc, ferrolock.Timeout)
    assert (exc.lock_file, exc.holder, str(exc)) == ("/x.lock", {"pid": 1}, "message")


@pytest.mark.timeout(30)
def test_log_records_reach_python_logging(lock_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ferrolock")
    _ferrolock._reset_logging_cache()
    holder = ferrolock.FileLock(lock_path)
    holder.acquire()
    with pytest.raises(ferrolock.Timeout):
        ferrolock.FileLock(lock_path, detect_deadlock=False).acquire(timeout=0.01)
    holder.release()
    waits = [r for r in caplog.records if r.name == "ferrolock.lock" and "waiting for" in r.getMessage()]
    assert waits, [(r.name, r.getMessage()) for r in caplog.records]
    assert waits[0].levelno == logging.DEBUG


class _InterruptingHandler(logging.Handler):
    """Raises KeyboardInterrupt from inside a log call, as a Ctrl-C landing there would."""

    def emit(self, record: logging.LogRecord) -> None:
        if "waiting for" in record.getMessage():
            raise KeyboardInterrupt


@pytest.mark.timeout(30)
def test_ctrl_c_inside_a_log_call_during_a_wait_holds_nothing(lock_path: Path) -> None:
    """pyo3-log runs Python logging on the waiting thread; an exception raised there must surface as
    itself (not as a SystemError) and leave nothing held."""
    holder = ferrolock.FileLock(lock_path)
    holder.acquire()
    logger = logging.getLogger("ferrolock.lock")
    handler = _InterruptingHandler()
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    _ferrolock._reset_logging_cache()
    waiter = ferrolock.FileLock(lock_path, detect_deadlock=False)
    try:
        with pytest.raises(KeyboardInterrupt):
            waiter.acquire(timeout=10)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        _ferrolock._reset_logging_cache()
        holder.release()
    assert not waiter.is_locked
    # Not a single attempt: with the helper-thread wake mechanism the interrupted wait's helper may get
    # the lock from the holder's release and give it back a moment later (src/lock/wait/by_thread.rs).
    with waiter.acquire(timeout=5):
        pass
