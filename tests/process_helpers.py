"""Helpers for cross-process tests: spawn-context workers and bounded cleanup.

Workers are module-level functions so that ``multiprocessing``'s spawn start method can import them in
a fresh interpreter (no state inherited from the test process, as in real deployments).
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import time
from collections.abc import Iterator
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import Final

SPAWN: Final[SpawnContext] = multiprocessing.get_context("spawn")
# Generous bounds for process start-up on a loaded 2-core CI machine; tests fail, never hang, past them.
START_DEADLINE: Final = 30.0
REAP_DEADLINE: Final = 10.0


@contextlib.contextmanager
def cleanup_processes(*procs: BaseProcess) -> Iterator[None]:
    """Start nothing; on exit make sure every process is gone (terminate, then kill), so a failing test
    never leaves a lock holder behind for the next one."""
    try:
        yield
    finally:
        for p in procs:
            if p.pid is None:
                continue
            p.join(REAP_DEADLINE if p.exitcode is None and not p.is_alive() else 0.5)
            if p.is_alive():
                p.terminate()
                p.join(REAP_DEADLINE)
            if p.is_alive():
                p.kill()
                p.join(REAP_DEADLINE)
            p.close()


def blocked_waiters() -> set[int]:
    """Pids with a lock request blocked in the kernel right now (``->`` lines of ``/proc/locks``)."""
    pids = set()
    with open("/proc/locks", encoding="ascii") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) > 5 and fields[1] == "->":
                pids.add(int(fields[5]))
    return pids


def wait_until_blocked(pid: int, deadline: float = START_DEADLINE) -> None:
    """Wait (bounded) until process ``pid`` is asleep in the kernel waiting for a lock: the event a
    test needs before it releases, kills or interrupts, so it exercises a real kernel wait."""
    end = time.monotonic() + deadline
    while pid not in blocked_waiters():
        if time.monotonic() > end:
            raise AssertionError(f"process {pid} never blocked on a lock")
        time.sleep(0.001)


def hold_lock(path: str, held: Event, release: Event, shared: bool = False, purpose: str | None = None) -> None:
    """Acquire ``path`` with ferrolock, report it, hold until told to release."""
    import ferrolock

    lock = ferrolock.FileLock(path, shared=shared, purpose=purpose)
    with lock:
        held.set()
        release.wait(START_DEADLINE * 4)


def hold_with_fcntl(path: str, held: Event, release: Event) -> None:
    """The legacy way: a plain ``fcntl.flock`` on the same path."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    held.set()
    release.wait(START_DEADLINE * 4)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def try_lock(path: str, result: Synchronized[int], shared: bool = False) -> None:
    """One non-blocking attempt: result = 1 if acquired (then released), 0 if busy."""
    import ferrolock

    lock = ferrolock.FileLock(path, shared=shared, timeout=0)
    try:
        with lock:
            result.value = 1
    except ferrolock.Timeout:
        result.value = 0


def fcntl_try_lock(path: str, result: Synchronized[int]) -> None:
    """One non-blocking ``fcntl.flock`` attempt: result = 1 if acquired, 0 if busy."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result.value = 1
    except BlockingIOError:
        result.value = 0
    finally:
        os.close(fd)


def increment_counter(lock_path: str, counter_path: str, times: int, start: Event) -> None:
    """Locked read-modify-write of an integer in ``counter_path``, ``times`` times."""
    import ferrolock

    lock = ferrolock.FileLock(lock_path)
    start.wait(START_DEADLINE)
    for _ in range(times):
        with lock:
            with open(counter_path, encoding="ascii") as fh:
                value = int(fh.read() or "0")
            with open(counter_path, "w", encoding="ascii") as fh:
                fh.write(str(value + 1))


def wait_then_report(path: str, waiting: Event, acquired: Event, timeout: float) -> None:
    """Report that it is about to wait, then wait for the lock and report when it has it."""
    import ferrolock

    lock = ferrolock.FileLock(path)
    waiting.set()
    with lock.acquire(timeout=timeout):
        acquired.set()


def fork_child_releases(path: str, parent_holds: Event, child_done: Event, release: Event) -> None:
    """Hold the lock, fork, let the child call release() (and drop the object), then hold on."""
    import ferrolock

    lock = ferrolock.FileLock(path)
    lock.acquire()
    pid = os.fork()
    if pid == 0:  # the child: try every way of releasing the parent's lock
        code = 4
        try:
            lock.release()
            lock.release(force=True)
            code = 3 if lock.is_locked else 0
            del lock
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("child saw the parent's lock as its own")
    parent_holds.set()
    child_done.set()
    release.wait(START_DEADLINE * 4)
    lock.release()
