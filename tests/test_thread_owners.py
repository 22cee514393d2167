"""A thread that ends while holding a lock leaves its hold to nobody.

glibc gives a joined thread's ``pthread_t`` (Python's ``threading.get_ident()``) to the next thread it
creates. If owners were thread idents, that new thread would find itself "re-entering" a lock it never
took, and its ``release()`` would free the dead thread's hold. Owners are unique for the life of the
process instead.
"""

from __future__ import annotations

import threading
from pathlib import Path

import ferrolock
import pytest
from process_helpers import SPAWN, START_DEADLINE, cleanup_processes, try_lock


def _can_lock_elsewhere(path: Path) -> bool:
    result = SPAWN.Value("i", -1)
    p = SPAWN.Process(target=try_lock, args=(str(path), result))
    with cleanup_processes(p):
        p.start()
        p.join(START_DEADLINE)
        assert p.exitcode == 0
    return bool(result.value)


def _in_thread(fn: object) -> tuple[int, object]:
    """Run ``fn`` in a new thread, return that thread's ident and what ``fn`` returned or raised."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(fn())  # type: ignore[operator]
        except BaseException as exc:  # handed back to the test
            out.append(exc)
        out.insert(0, threading.get_ident())

    t = threading.Thread(target=run)
    t.start()
    t.join(START_DEADLINE)
    assert not t.is_alive()
    return out[0], out[1]  # type: ignore[return-value]


@pytest.mark.timeout(60)
def test_a_later_thread_with_the_same_ident_neither_reenters_nor_releases_a_dead_threads_hold(
    lock_path: Path,
) -> None:
    lock = ferrolock.FileLock(lock_path)
    dead_ident, _ = _in_thread(lock.acquire)  # acquires, then the thread ends without releasing
    assert lock.is_locked

    def as_the_next_thread() -> tuple[int, bool, bool]:
        counter = lock.lock_counter
        try:
            lock.acquire(timeout=0)
            reentered = True
        except ferrolock.Timeout:
            reentered = False
        lock.release()  # a non-holder's release is a no-op
        return counter, reentered, lock.is_locked

    # The next threads usually get the dead thread's ident back; find one that does.
    for _ in range(20):
        ident, outcome = _in_thread(as_the_next_thread)
        if ident == dead_ident:
            break
    else:
        pytest.fail("no later thread reused the ident; this test relies on glibc reusing it")
    assert outcome == (0, False, True), "a new thread inherited a finished thread's hold"
    assert not _can_lock_elsewhere(lock_path), "the finished thread's hold was released by another thread"
