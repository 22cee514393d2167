"""Scope claims at scale: `acquire`, `find_conflict` and `release` with N live claims held by other
processes, ferrolock against the legacy little-loops module, and the cost of reading the N records
once as the floor.

    python bench/bench_scope.py [--sizes 10,100,1000] [--mirrors DIR] [--quick]

The legacy module is extracted at run time from the little-loops bare mirror under ``--mirrors`` (or
``$FERROLOCK_MIRRORS``) into a temporary directory; without it the legacy column is left empty.
Prints a markdown table (median microseconds per call).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from ferrolock._bench_scaling import HOLDERS
from ferrolock._bench_scaling import hold_claims as hold_ferrolock
from legacy_source import LITTLE_LOOPS, extract_legacy_module, load_module_from_file


def load_legacy(mirrors: str | None, into: Path) -> ModuleType | None:
    return extract_legacy_module(LITTLE_LOOPS, into=into, name="legacy_concurrency", mirrors=mirrors)


def hold_legacy(loops_dir: str, names: list[str], claims_root: str, conn: Connection) -> None:
    """Holder process: write legacy records (exactly what a legacy acquire writes) with this pid."""
    running = Path(loops_dir) / ".running"
    running.mkdir(parents=True, exist_ok=True)
    for name in names:
        record = {"loop_name": name, "scope": [f"{claims_root}/{name}"], "pid": os.getpid(), "started_at": "t"}
        (running / f"{name}.lock").write_text(json.dumps(record))
    conn.send("ready")
    conn.poll(3600)


def start_holders(target: Callable[..., None], loops_dir: Path, n: int, claims_root: Path) -> list[Any]:
    ctx = multiprocessing.get_context("spawn")
    names = [f"claim-{i:05d}" for i in range(n)]
    procs = []
    for k in range(HOLDERS):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=target, args=(str(loops_dir), names[k::HOLDERS], str(claims_root), child))
        p.start()
        procs.append((p, parent))
    for p, parent in procs:
        if not parent.poll(600) or parent.recv() != "ready":
            raise SystemExit(f"holder {p.pid} did not get ready")
    return procs


def stop_holders(procs: list[Any]) -> None:
    for p, parent in procs:
        parent.close()
        p.join(60)
        if p.is_alive():
            p.kill()


def median_us(samples: list[int]) -> float:
    return statistics.median(samples) / 1000


def measure(manager: Any, free_scope: str, rounds: int) -> dict[str, float]:
    acquire, release, find = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        ok = manager.acquire("bench", [free_scope])
        t1 = time.perf_counter_ns()
        manager.release("bench")
        t2 = time.perf_counter_ns()
        if not ok:
            raise SystemExit("bench acquire failed")
        conflict = manager.find_conflict([free_scope])
        t3 = time.perf_counter_ns()
        if conflict is not None:
            raise SystemExit("unexpected conflict")
        acquire.append(t1 - t0)
        release.append(t2 - t1)
        find.append(t3 - t2)
    return {"acquire": median_us(acquire), "find_conflict": median_us(find), "release": median_us(release)}


def read_once_us(running: Path, rounds: int) -> float:
    """The floor: list the directory and read every record once, from Python."""
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for entry in os.scandir(running):
            if entry.name.endswith(".lock") and entry.name != ".acquire.lock":
                with open(entry.path, "rb") as f:
                    f.read()
        samples.append(time.perf_counter_ns() - t0)
    return median_us(samples)


Row = tuple[str, float | None, float, float]


def run_size(n: int, legacy: ModuleType | None, work: Path, quick: bool) -> list[Row]:
    import ferrolock

    rounds = max(5 if quick else 20, (20 if quick else 200) * 10 // max(n, 10))
    claims_root = work / "claims"
    rows: dict[str, dict[str, float]] = {}
    floor = 0.0
    for impl in ("ferrolock", "legacy"):
        if impl == "legacy" and legacy is None:
            continue
        loops = work / f"{impl}-{n}" / ".loops"
        holders = start_holders(hold_ferrolock if impl == "ferrolock" else hold_legacy, loops, n, claims_root)
        try:
            manager = ferrolock.LockManager(loops) if impl == "ferrolock" else legacy.LockManager(loops)  # type: ignore[union-attr]
            rows[impl] = measure(manager, str(work / "free"), rounds)
            if impl == "ferrolock":
                floor = read_once_us(loops / ".running", rounds)
        finally:
            stop_holders(holders)
    ops = ("acquire", "find_conflict", "release")
    return [(op, rows.get("legacy", {}).get(op), rows["ferrolock"][op], floor) for op in ops]


def hold_and_release(impl_path: str | None, loops_dir: str, scope: str, rounds: int, conn: Connection) -> None:
    """Holder process for the wake-up benchmark: claim, report, release on command and report when."""
    if impl_path is None:
        import ferrolock

        manager: Any = ferrolock.LockManager(Path(loops_dir))
    else:
        impl = Path(impl_path)
        manager = load_module_from_file(impl, impl.stem).LockManager(Path(loops_dir))
    for _ in range(rounds):
        conn.recv()  # claim only once the previous waiter has returned
        if not manager.acquire("holder", [scope]):
            raise SystemExit("holder could not claim")
        conn.send("held")
        conn.recv()
        started = time.monotonic()  # CLOCK_MONOTONIC is system-wide: comparable across processes
        manager.release("holder")
        conn.send(started)


def wake_latencies(impl: str, legacy: ModuleType | None, work: Path, rounds: int) -> list[float]:
    """Milliseconds from the start of a holder's release (in another process) to the waiter's return.
    The release comes right after the waiter's check, so a poll-based waiter shows its full interval."""
    import threading

    import ferrolock

    module: Any = ferrolock if impl == "ferrolock" else legacy
    loops = work / f"wake-{impl}" / ".loops"
    scope = str(work / "wake-scope")
    seen = threading.Event()

    class Signalling(module.LockManager):  # type: ignore[misc,name-defined]
        def _get_ancestry(self) -> set[int]:
            seen.set()  # the waiter found the live conflict: it is about to sleep
            return set()

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    impl_path = None if impl == "ferrolock" else str(work / "legacy_concurrency.py")
    holder = ctx.Process(target=hold_and_release, args=(impl_path, str(loops), scope, rounds, child))
    holder.start()
    waiter = Signalling(loops)
    out = []
    try:
        for _ in range(rounds):
            parent.send("claim")
            if not parent.poll(60) or parent.recv() != "held":
                raise SystemExit("holder did not claim")
            seen.clear()
            returned: list[float] = []

            def wait(into: list[float] = returned) -> None:
                waiter.wait_for_scope([scope], timeout=30)
                into.append(time.monotonic())

            t = threading.Thread(target=wait)
            t.start()
            if not seen.wait(30):
                raise SystemExit("waiter did not start waiting")
            parent.send("release")
            released = parent.recv()
            t.join(60)
            out.append((returned[0] - released) * 1000)
    finally:
        holder.join(60)
        if holder.is_alive():
            holder.kill()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--mirrors", default=os.environ.get("FERROLOCK_MIRRORS"))
    parser.add_argument("--quick", action="store_true", help="fewer rounds (CI smoke run)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ferrolock-bench-scope-") as tmp:
        work = Path(tmp).resolve()
        legacy = load_legacy(args.mirrors, work)
        out = sys.stdout
        out.write(
            "| live claims | operation | legacy little-loops (us) | ferrolock (us) | speed-up"
            " | read N records once (us) |\n"
        )
        out.write("|---:|---|---:|---:|---:|---:|\n")
        for n in (int(s) for s in args.sizes.split(",")):
            for op, old, new, floor in run_size(n, legacy, work, args.quick):
                old_text = "n/a" if old is None else f"{old:,.0f}"
                speedup = "n/a" if old is None else f"{old / new:,.1f}x"
                out.write(f"| {n:,} | {op} | {old_text} | {new:,.1f} | {speedup} | {floor:,.0f} |\n")
                out.flush()
        out.write(
            "\n| wake-up after a release in another process | legacy little-loops | ferrolock |\n|---|---:|---:|\n"
        )
        wake = {
            impl: wake_latencies(impl, legacy, work, 5 if args.quick or impl == "legacy" else 50)
            for impl in ("legacy", "ferrolock")
            if impl == "ferrolock" or legacy is not None
        }
        for label, stat in (("median (ms)", statistics.median), ("max (ms)", max)):
            old_text = f"{stat(wake['legacy']):,.1f}" if "legacy" in wake else "n/a"
            out.write(f"| {label} | {old_text} | {stat(wake['ferrolock']):,.2f} |\n")
        if legacy is None:
            out.write("\n(legacy column empty: no little-loops mirror; pass --mirrors or set FERROLOCK_MIRRORS)\n")


if __name__ == "__main__":
    main()
