"""How fast ``ferrolock status`` and ``ferrolock clean --dry-run`` are on a large tree of lock files.

    python bench/bench_status.py [--quick]      (10,000 lock files; 1,000 with --quick)

The tree mixes the kinds status knows (todo2 task locks, logist job locks, plain lock files with holder
records, little-loops claim records) with a few held by another process. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
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


def hold(paths: list[str], ready: object, done: object) -> None:
    locks = [ferrolock.FileLock(p, purpose="bench holder") for p in paths]
    for lock in locks:
        lock.acquire()
    ready.set()  # type: ignore[attr-defined]
    done.wait(600)  # type: ignore[attr-defined]


def timed(fn: object, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    n = 1_000 if parser.parse_args().quick else 10_000
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="ferrolock-status-bench-") as tmp:
        root = Path(tmp)
        build(root, n)
        held = [str(root / "plain" / f"{i % 50}" / f"{i}.lock") for i in range(0, n // 4, max(1, n // 400))]
        ready, done = ctx.Event(), ctx.Event()
        holder = ctx.Process(target=hold, args=(held, ready, done))
        holder.start()
        ready.wait(60)
        try:
            found = _scan_locks([str(root)])
            scan = timed(lambda: _scan_locks([str(root)]))
            dry = timed(lambda: _clean_locks([str(root)], True))
        finally:
            done.set()
            holder.join(60)
    print(f"ferrolock status on {len(found)} lock files ({len(held)} held by another process)\n")
    print("| operation | files | time | per file |")
    print("|---|---:|---:|---:|")
    for label, took in (("status (scan, probe, read records)", scan), ("clean --dry-run (+ /proc fd scan)", dry)):
        print(f"| {label} | {len(found)} | {took * 1e3:.0f} ms | {took / len(found) * 1e6:.1f} us |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
