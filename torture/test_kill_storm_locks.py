"""Kill storm on FileLock: workers do locked read-modify-writes of a counter while the driver SIGKILLs
random workers at random moments (and replaces them). Afterwards: no update lost or duplicated, every
file parses, the lock is free, and every surviving worker stops when asked (no waiter hangs).

Each increment writes the counter (atomically) and then appends the new value to a journal, both under
the lock. Two holders at once would read the same value and journal it twice; a lost update would do the
same. A kill between the two writes leaves one journal gap, so gaps are bounded by the number of kills.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from multiprocessing.context import SpawnProcess
from pathlib import Path

import ferrolock
from conftest import storm_seconds
from process_helpers import SPAWN
from storm import StopFlag

WORKERS = 6


def _worker(lock_path: str, counter: str, journal: str, stop: StopFlag) -> None:
    lock = ferrolock.FileLock(lock_path)
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    while not stop.is_set():
        with lock:
            value = int(Path(counter).read_text()) + 1
            ferrolock.atomic_write(counter, str(value), durable=False)
            os.write(fd, f"{value}\n".encode())


def test_counter_kill_storm(tmp_path: Path, report: Callable[..., None]) -> None:
    lock_path, counter, journal = tmp_path / "c.lock", tmp_path / "counter", tmp_path / "journal"
    counter.write_text("0")
    stop = StopFlag()  # not a multiprocessing.Event: see storm.StopFlag

    def spawn() -> SpawnProcess:
        p = SPAWN.Process(target=_worker, args=(str(lock_path), str(counter), str(journal), stop))
        p.start()
        return p

    workers = [spawn() for _ in range(WORKERS)]
    kills = 0
    rng = random.Random(os.getpid())
    deadline = time.monotonic() + storm_seconds()
    try:
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.005, 0.05))  # random moments, not settling
            victim = workers.pop(rng.randrange(len(workers)))
            os.kill(victim.pid or 0, signal.SIGKILL)
            victim.join(10)
            kills += 1
            workers.append(spawn())
        stop.set()
        for p in workers:
            p.join(20)
            assert p.exitcode == 0, "a surviving worker hung or failed"
    finally:
        for p in workers:
            if p.is_alive():
                p.kill()
        stop.remove()

    values = [int(line) for line in journal.read_text().split()]
    final = int(counter.read_text())
    assert len(values) == len(set(values)), "a value journaled twice: two holders at once, or a lost update"
    assert values == sorted(values), "journal order disagrees with lock order"
    assert values[-1] <= final <= values[-1] + 1
    missing = final - len(values)  # increments whose journal line a kill prevented
    assert 0 <= missing <= kills, f"{missing} unjournaled increments for {kills} kills"
    assert ferrolock.probe(lock_path)[0] == "free", "a dead worker's lock is still held"
    report("counter kill storm", seconds=storm_seconds(), operations=len(values), kills=kills, lost=0, duplicated=0)
