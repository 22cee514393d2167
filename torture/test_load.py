"""Load: many threads and processes on one lock and on many locks, counting every critical section; and
a long mixed run of every API in one process whose memory and file descriptors must stay flat after
warm-up (no leak in the lock objects, the waits, the error paths, the state and claim code).
"""

from __future__ import annotations

import gc
import os
import random
import threading
import time
from collections.abc import Callable
from multiprocessing.queues import Queue
from pathlib import Path

import ferrolock
from conftest import storm_seconds
from process_helpers import SPAWN

PROCESSES = 4
THREADS = 4
MANY = 64  # lock files in the "many locks" run

# RSS may grow by this much after warm-up (allocator noise, caches that settle); a leak of one small
# object per operation would exceed it within seconds.
RSS_SLACK = 8 * 1024 * 1024


def _hammer(base: str, seconds: float, results: Queue[tuple[int, int]]) -> None:
    """``THREADS`` threads, each incrementing a counter under one shared lock file and, in between, one
    of ``MANY`` counters under its own lock file. Reports (one-lock increments, many-lock increments)."""
    done = [0, 0]
    guard = threading.Lock()
    deadline = time.monotonic() + seconds

    def work(seed: int) -> None:
        rng = random.Random(seed)
        one, many = 0, 0
        lock = ferrolock.FileLock(os.path.join(base, "one.lock"))  # one object per thread
        while time.monotonic() < deadline:
            with lock:
                _bump(os.path.join(base, "one.count"))
            one += 1
            k = rng.randrange(MANY)
            with ferrolock.FileLock(os.path.join(base, f"many-{k}.lock")):
                _bump(os.path.join(base, f"many-{k}.count"))
            many += 1
        with guard:
            done[0] += one
            done[1] += many

    threads = [threading.Thread(target=work, args=(os.getpid() * 100 + i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    results.put((done[0], done[1]))


def _bump(path: str) -> None:
    try:
        with open(path, encoding="ascii") as fh:
            value = int(fh.read() or "0")
    except FileNotFoundError:
        value = 0
    with open(path, "w", encoding="ascii") as fh:
        fh.write(str(value + 1))


def test_threads_and_processes_on_one_lock_and_many(tmp_path: Path, report: Callable[..., None]) -> None:
    results: Queue[tuple[int, int]] = SPAWN.Queue()
    seconds = storm_seconds()
    procs = [SPAWN.Process(target=_hammer, args=(str(tmp_path), seconds, results)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    try:
        counts = [results.get(timeout=seconds + 120) for _ in procs]
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    assert all(p.exitcode == 0 for p in procs)
    one = sum(c[0] for c in counts)
    many = sum(c[1] for c in counts)
    assert int((tmp_path / "one.count").read_text()) == one, "a lost update on the shared lock"
    total_many = sum(int(p.read_text()) for p in tmp_path.glob("many-*.count"))
    assert total_many == many, "a lost update on one of the many locks"
    report(
        "load: processes x threads on one lock and on many",
        seconds=seconds,
        processes=PROCESSES,
        threads_each=THREADS,
        one_lock_sections=one,
        many_lock_sections=many,
        locks=MANY + 1,
        lost=0,
    )


# --- leaks ---------------------------------------------------------------------------------------------


def _usage() -> tuple[int, int]:
    gc.collect()
    with open("/proc/self/statm", encoding="ascii") as fh:
        rss_pages = int(fh.read().split()[1])
    return rss_pages * os.sysconf("SC_PAGE_SIZE"), len(os.listdir("/proc/self/fd"))


def _mixed_run(base: str, warmup: float, seconds: float, results: Queue[tuple[int, int, int, int, int]]) -> None:
    """Every API in a loop, with fresh objects each time and every error path; reports
    (operations, rss after warm-up, rss at the end, fds after warm-up, fds at the end)."""
    from ferrolock.compat.blackbox5 import StateManager

    root = Path(base)
    # Another thread holds this one for the whole run: every try on it times out (the error path).
    holding, done = threading.Event(), threading.Event()

    def hold_busy() -> None:
        with ferrolock.FileLock(root / "busy.lock", purpose="busy"):
            holding.set()
            done.wait(warmup + seconds + 60)

    holder = threading.Thread(target=hold_busy)
    holder.start()
    holding.wait(30)
    state = ferrolock.StateFile(root / "state.txt", backup_path=root / "state.bak")
    manager = StateManager(root / "STATE.md")
    manager.initialize("wf", "Leak check", 2, [[{"task_id": "T-1", "description": "task"}]])
    jobs = ferrolock.JobLockManager(root / "jobs")
    scopes = ferrolock.LockManager(root / ".loops")
    ops = 0

    def once(i: int) -> None:
        with ferrolock.FileLock(root / f"l{i % 8}.lock", purpose="leak check") as lock:
            lock.holder()
        with ferrolock.FileLock(root / "shared.lock", shared=True):
            pass
        try:
            ferrolock.FileLock(root / "busy.lock").acquire(timeout=0)
        except ferrolock.Timeout:
            pass
        else:
            raise AssertionError("a held lock was acquired")
        with state.edit() as draft:
            draft.text = str(int(draft.text or "0") + 1)
        if i % 10 == 0:
            manager.add_note(f"note {i}")
        if i % 500 == 0:  # keep STATE.md small: a growing file grows the buffers, not a leak
            manager.initialize("wf", "Leak check", 2, [[{"task_id": "T-1", "description": "task"}]])
        with jobs.job_lock(f"job-{i % 4}"):
            pass
        scopes.acquire("loop", [str(root / "src")])
        scopes.find_conflict([str(root / "src" / "a")])
        scopes.release("loop")
        ferrolock.probe(root / "busy.lock")
        ferrolock.atomic_write(root / "scratch", b"x" * (i % 512), durable=False)
        try:
            ferrolock.FileLock(root / "dir.lock").acquire(timeout=0)
        except IsADirectoryError:
            pass
        else:
            raise AssertionError("a directory was locked")

    (root / "dir.lock").mkdir()
    end = time.monotonic() + warmup
    while time.monotonic() < end:
        once(ops)
        ops += 1
    rss0, fds0 = _usage()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        once(ops)
        ops += 1
    rss1, fds1 = _usage()
    done.set()
    holder.join(30)
    results.put((ops, rss0, rss1, fds0, fds1))


def test_memory_and_descriptors_stay_flat(tmp_path: Path, report: Callable[..., None]) -> None:
    results: Queue[tuple[int, int, int, int, int]] = SPAWN.Queue()
    seconds = storm_seconds()
    warmup = min(5.0, seconds / 2)
    proc = SPAWN.Process(target=_mixed_run, args=(str(tmp_path), warmup, seconds, results))
    proc.start()
    try:
        ops, rss0, rss1, fds0, fds1 = results.get(timeout=warmup + seconds + 120)
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == 0
    assert fds1 <= fds0, f"file descriptors grew from {fds0} to {fds1} over {ops} operations"
    assert rss1 - rss0 <= RSS_SLACK, f"RSS grew by {(rss1 - rss0) / 1e6:.1f} MB after warm-up over {ops} operations"
    report(
        "load: mixed API run, leak check after warm-up",
        seconds=seconds,
        operations=ops,
        rss_growth_kib=(rss1 - rss0) // 1024,
        fd_growth=fds1 - fds0,
    )
