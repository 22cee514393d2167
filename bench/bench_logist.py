"""Benchmark: logist's ``locking.py`` against ``ferrolock.compat.logist`` (same API, same files).

    python bench/bench_logist.py [--mirrors DIR] [--quick]

The legacy module is read at run time from a bare mirror of jjurach/logist (``--mirrors`` or
``FERROLOCK_MIRRORS``: the folder holding ``<owner>+<repo>/repo``) into a temporary directory; without
one, only ferrolock's rows are printed. The workspace-setup rows compare ``ensure_workspace_ready``
with logist's protocol as its spec describes it (10 non-blocking attempts 0.1 s apart), re-implemented
here, since the original is a method of a class with many dependencies. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import fcntl
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from logist_helpers import extract_legacy_locking, load_impl

SPAWN = multiprocessing.get_context("spawn")


def uncontended(impl: str, base: str, rounds: int) -> float:
    """Microseconds per ``lock_job_directory`` + ``unlock_job_directory``."""
    manager = load_impl(impl).JobLockManager(base)
    manager.lock_job_directory("job")
    manager.unlock_job_directory("job")
    started = time.perf_counter()
    for _ in range(rounds):
        manager.lock_job_directory("job")
        manager.unlock_job_directory("job")
    return (time.perf_counter() - started) / rounds * 1e6


def _holder(impl: str, base: str, rounds: int, sync: tuple[Any, Any, Any]) -> None:
    held, released_at, taken = sync
    manager = load_impl(impl).JobLockManager(base)
    for _ in range(rounds):
        manager.lock_job_directory("job", timeout=60)
        held.set()
        time.sleep(0.05)
        released_at.value = time.monotonic()
        manager.unlock_job_directory("job")
        taken.wait(60)
        taken.clear()


def _waiter(impl: str, base: str, rounds: int, sync: tuple[Any, Any, Any], out: Any) -> None:
    held, released_at, taken = sync
    manager = load_impl(impl).JobLockManager(base)
    for i in range(rounds):
        held.wait(60)
        held.clear()
        manager.lock_job_directory("job", timeout=60)
        out[i] = time.monotonic() - released_at.value  # CLOCK_MONOTONIC is system-wide on Linux
        manager.unlock_job_directory("job")
        taken.set()


def handoff(impl: str, base: str, rounds: int) -> list[float]:
    """Milliseconds from the holder's release to the waiting process holding the lock."""
    held, taken = SPAWN.Event(), SPAWN.Event()
    released_at, out = SPAWN.Value("d", 0.0), SPAWN.Array("d", rounds)
    procs = [
        SPAWN.Process(target=_holder, args=(impl, base, rounds, (held, released_at, taken))),
        SPAWN.Process(target=_waiter, args=(impl, base, rounds, (held, released_at, taken), out)),
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        if p.is_alive():
            p.kill()
    return [x * 1000 for x in out]


def _logist_protocol_ensure(job_dir: str, setup_seconds: float, go: Any, results: Any, i: int) -> None:
    """logist's ensure_workspace_ready protocol as specified (no original code)."""
    ws = os.path.join(job_dir, "workspace")
    ready, lock = os.path.join(ws, ".workspace_ready"), os.path.join(ws, ".workspace_setup.lock")
    go.wait(60)
    if os.path.exists(ready):
        results[i] = 1
        return
    os.makedirs(ws, exist_ok=True)
    for _ in range(10):
        try:
            with open(lock, "w") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                if not os.path.exists(ready):
                    time.sleep(setup_seconds)
                    with open(ready, "w") as r:
                        r.write("ready\n")
                results[i] = 1
                return
        except BlockingIOError:
            time.sleep(0.1)
    results[i] = 0


def _ferrolock_ensure(job_dir: str, setup_seconds: float, go: Any, results: Any, i: int) -> None:
    from ferrolock.compat.logist import ensure_workspace_ready

    go.wait(60)
    try:
        ensure_workspace_ready(job_dir, lambda job_dir, debug=False: time.sleep(setup_seconds))
    except Exception:
        results[i] = 0
    else:
        results[i] = 1


def workspace_race(target: Any, base: str, procs_n: int, setup_seconds: float) -> tuple[int, float]:
    """(callers that returned normally, seconds until all were done)."""
    job_dir = os.path.join(base, f"job-{target.__name__}")
    go, results = SPAWN.Event(), SPAWN.Array("i", procs_n)
    procs = [SPAWN.Process(target=target, args=(job_dir, setup_seconds, go, results, i)) for i in range(procs_n)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # let every interpreter start before the race (spawn start-up is not measured)
    started = time.monotonic()
    go.set()
    for p in procs:
        p.join(120)
    return sum(results), time.monotonic() - started


def cleanup_while_held(impl: str, base: str) -> str:
    """Does ``cleanup_stale_locks`` remove a job lock that is held (and older than max_age)?"""
    manager = load_impl(impl).JobLockManager(base)
    manager.lock_job_directory("held")
    old = time.time() - 3600
    os.utime(Path(base) / "held" / ".lock", (old, old))
    cleaned = manager.cleanup_stale_locks(max_age_seconds=300)
    survived = (Path(base) / "held" / ".lock").exists()
    manager.unlock_job_directory("held")
    return f"kept (cleaned={cleaned})" if survived else f"**removed** (cleaned={cleaned})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirrors", help="folder holding <owner>+<repo>/repo bare mirrors (or FERROLOCK_MIRRORS)")
    ap.add_argument("--quick", action="store_true", help="fewer rounds (CI smoke run)")
    args = ap.parse_args()
    if args.mirrors:
        os.environ["FERROLOCK_MIRRORS"] = args.mirrors
    rounds, handoffs = (200, 5) if args.quick else (5000, 40)
    with tempfile.TemporaryDirectory() as tmp:
        impls = {"ferrolock.compat.logist": "ferrolock"}
        legacy = extract_legacy_locking(Path(tmp))
        if legacy is not None:
            impls = {"logist locking.py": str(legacy), **impls}
        else:
            print("(logist's original module not found: legacy rows skipped; pass --mirrors)\n")
        print(
            "| implementation | lock+unlock, uncontended | hand-off to a waiting process: median / p99 |"
            " held lock older than max_age, after cleanup_stale_locks |"
        )
        print("|---|---|---|---|")
        for name, impl in impls.items():
            base = tempfile.mkdtemp(dir=tmp)
            us = uncontended(impl, base, rounds)
            lat = sorted(handoff(impl, tempfile.mkdtemp(dir=tmp), handoffs))
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            kept = cleanup_while_held(impl, tempfile.mkdtemp(dir=tmp))
            print(f"| {name} | {us:.1f} us | {statistics.median(lat):.2f} ms / {p99:.2f} ms | {kept} |")
        n, setup_s = (4, 1.0) if args.quick else (8, 3.0)
        print(
            f"\n| workspace setup, {n} processes race, setup takes {setup_s:.0f} s | callers that returned |"
            " wall time |"
        )
        print("|---|---|---|")
        for name, target in (
            ("logist protocol (from its spec)", _logist_protocol_ensure),
            ("ferrolock.compat.logist.ensure_workspace_ready", _ferrolock_ensure),
        ):
            ok, wall = workspace_race(target, tmp, n, setup_s)
            print(f"| {name} | {ok}/{n} | {wall:.1f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
