"""How fast ``ferrolock status`` and ``ferrolock clean`` are on a large tree of lock files.

    python bench/bench_status.py [--quick] [--files N] [--depth D]

``--files`` lock files (default 100,000; 1,000 with ``--quick``). The tree mixes the kinds status knows
(todo2 task locks, logist job locks, plain lock files with holder records, little-loops claim records),
a few held by another process; ``--depth`` puts the whole tree that many directories further down, to
show that the cost of a file does not grow with its depth. ``status`` and ``clean --dry-run`` are timed
(best of 3); ``clean`` is timed once, on the same tree, and removes every unused file (three quarters of
them). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event
from pathlib import Path

import ferrolock
from ferrolock._ferrolock import _clean_locks, _scan_locks


def build(root: Path, n: int) -> None:
    quarter = n // 4
    for i in range(quarter):
        task = root / ".todo2" / "locks" / f"task_T-{i}.lock"
        task.parent.mkdir(parents=True, exist_ok=True)
        task.touch()
        job = root / "jobs" / f"job-{i}" / ".lock"
        job.parent.mkdir(parents=True, exist_ok=True)
        job.touch()
        with ferrolock.FileLock(root / "plain" / f"{i % 50}" / f"{i}.lock", purpose=f"job {i}"):
            pass
        claim = root / ".loops" / ".running" / f"loop-{i}.lock"
        claim.parent.mkdir(parents=True, exist_ok=True)
        claim.write_text(json.dumps({"loop_name": f"loop-{i}", "scope": [f"/r/{i}"], "pid": 1, "started_at": "t"}))


def hold(paths: list[str], ready: Event, done: Event) -> None:
    locks = [ferrolock.FileLock(p, purpose="bench holder") for p in paths]
    for lock in locks:
        lock.acquire()
    ready.set()
    done.wait(3600)


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 files")
    parser.add_argument("--files", type=int, default=100_000, help="lock files in the tree (default 100,000)")
    parser.add_argument("--depth", type=int, default=0, help="directories above the tree (default 0)")
    args = parser.parse_args()
    n = 1_000 if args.quick else args.files
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="ferrolock-status-bench-") as tmp:
        top = Path(tmp)
        root = top.joinpath(*(["d"] * args.depth))
        build(root, n)
        held = [str(root / "plain" / f"{i % 50}" / f"{i}.lock") for i in range(0, n // 4, max(1, n // 400))]
        ready, done = ctx.Event(), ctx.Event()
        holder = ctx.Process(target=hold, args=(held, ready, done))
        holder.start()
        if not ready.wait(600):
            raise SystemExit("the holder never took its locks")
        try:
            found = _scan_locks([str(top)])["locks"]
            scan = timed(lambda: _scan_locks([str(top)]))
            dry = timed(lambda: _clean_locks([str(top)], True))
            start = time.perf_counter()
            removed = len(_clean_locks([str(top)], False)["removed"])
            real = time.perf_counter() - start
        finally:
            done.set()
            holder.join(60)
    print(f"ferrolock status on {len(found)} lock files ({len(held)} held by another process), depth {args.depth}\n")
    print("| operation | files | time | per file |")
    print("|---|---:|---:|---:|")
    rows = (
        ("status (walk, probe, read records)", len(found), scan),
        ("clean --dry-run (+ /proc fd scan)", len(found), dry),
        (f"clean (removes {removed})", len(found), real),
    )
    for label, files, took in rows:
        print(f"| {label} | {files} | {took * 1e3:.0f} ms | {took / files * 1e6:.1f} us |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
