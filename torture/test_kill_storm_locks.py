"""Kill storm on FileLock: workers do locked read-modify-writes of a counter while the driver SIGKILLs
random workers at random moments (and replaces them). Afterwards: no update lost or duplicated, every
file parses, the lock is free, and every surviving worker stops when asked (no waiter hangs).

Each increment writes the counter (atomically, with the writer's pid) and then appends the new value
to a journal, both under the lock. Two holders at once would read the same value and journal it twice;
a lost update would do the same or leave the counter below the journal. A kill between the two writes
leaves one journal gap, so gaps are bounded by the number of kills (see ``storm.check_counter``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import ferrolock
from conftest import storm_seconds
from storm import StopFlag, check_counter, journal, run_storm


def _worker(lock_path: str, counter: str, journal_path: str, stop: StopFlag) -> None:
    lock = ferrolock.FileLock(lock_path)
    log = journal(journal_path)
    pid = os.getpid()
    while not stop.is_set():
        with lock:
            value = int(Path(counter).read_text().split()[0]) + 1
            ferrolock.atomic_write(counter, f"{value} {pid}", durable=False)
            log(str(value))


def test_counter_kill_storm(tmp_path: Path, report: Callable[..., None]) -> None:
    lock_path, counter, journal_path = tmp_path / "c.lock", tmp_path / "counter", tmp_path / "journal"
    counter.write_text("0 0")
    stop = StopFlag()
    storm = run_storm(
        _worker, lambda _n: (str(lock_path), str(counter), str(journal_path), stop), stop, seconds=storm_seconds()
    )

    journaled, unjournaled = check_counter(counter, journal_path, storm.killed)
    assert journaled > 0, "no operation finished: the storm tested nothing"
    assert unjournaled <= storm.kills, f"{unjournaled} unjournaled increments for {storm.kills} kills"
    assert ferrolock.probe(lock_path)[0] == "free", "a dead worker's lock is still held"
    report("counter kill storm", seconds=storm_seconds(), operations=journaled, kills=storm.kills, lost=0, duplicated=0)
