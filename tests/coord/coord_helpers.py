"""Spawn-context workers for the coordinator tests (module-level so ``spawn`` can import them)."""

from __future__ import annotations

import os
import time
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event

from process_helpers import START_DEADLINE


def hold(url: str, name: str, held: Event, release: Event, purpose: str | None = None) -> None:
    """Hold ``name`` exclusively until told to release."""
    import ferrolock

    with ferrolock.connect(url).lock(name, purpose=purpose):
        held.set()
        release.wait(START_DEADLINE * 4)


def hold_shared(url: str, name: str, held: Event, release: Event) -> None:
    """Hold ``name`` shared until told to release."""
    import ferrolock

    with ferrolock.connect(url).lock(name, shared=True):
        held.set()
        release.wait(START_DEADLINE * 4)


def hold_and_draw(url: str, name: str, held: Event, token: Synchronized[int]) -> None:
    """Hold ``name``, draw a token, report it, then hold forever (the test kills or stops us)."""
    import ferrolock

    lock = ferrolock.connect(url).lock(name)
    lock.acquire()
    token.value = lock.token
    held.set()
    time.sleep(START_DEADLINE * 4)


def try_once(url: str, name: str, result: Synchronized[int], shared: bool = False) -> None:
    """One attempt: 1 if acquired (then released), 0 if busy."""
    import ferrolock

    lock = ferrolock.connect(url).lock(name, shared=shared, timeout=0)
    try:
        with lock:
            result.value = 1
    except ferrolock.Timeout:
        result.value = 0


def acquire_and_report(
    url: str, name: str, waiting: Event, acquired_at: Synchronized[float], token: Synchronized[int]
) -> None:
    """Wait for ``name``, record when it was granted (monotonic clock) and the token drawn."""
    import ferrolock

    lock = ferrolock.connect(url).lock(name)
    waiting.set()
    with lock.acquire(timeout=START_DEADLINE * 2):
        acquired_at.value = time.monotonic()
        token.value = lock.token


def fenced_increments(url: str, name: str, times: int, start: Event) -> None:
    """Locked, fenced read-modify-write of a counter, ``times`` times."""
    import ferrolock

    coord = ferrolock.connect(url)
    lock = coord.lock(name)
    start.wait(START_DEADLINE)
    for _ in range(times):
        with lock:
            current = coord.fenced_read(name)
            value = int(current[1]) if current else 0
            lock.fenced_write(str(value + 1).encode())


def run_setup_once(url: str, name: str, log_path: str, start: Event) -> None:
    """``run_once`` with a setup that appends a line to ``log_path`` (slowly, to overlap callers)."""
    import ferrolock

    def setup() -> None:
        with open(log_path, "a", encoding="ascii") as fh:
            fh.write(f"{os.getpid()}\n")
        time.sleep(0.3)

    start.wait(START_DEADLINE)
    ferrolock.connect(url).run_once(name, setup)
