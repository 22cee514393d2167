"""Benchmark: BlackBox5 ``StateManager.update`` / ``add_note`` / ``load_state`` on STATE.md files of 100,
1,000 and 10,000 tasks, ferrolock against the legacy module.

The legacy module is not part of this repository: it is extracted at run time from a bare git mirror of
``Lordsisodia/blackbox5`` under ``--mirrors`` (or ``$FERROLOCK_MIRRORS``, the folder holding
``<owner>+<repo>/repo``) into a temporary directory. Without it, only the ferrolock rows are printed.

    python bench/bench_state.py [--mirrors DIR] [--sizes 100,1000,10000] [--budget 1.0]

Prints a markdown table of the median wall time per call (ferrolock fsyncs the file and the directory
on every write; the legacy module does not).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from legacy_source import BLACKBOX5, extract_legacy_module

WAVES = 10
CURRENT = 5


def load_legacy(mirrors: str | None, scratch: Path) -> ModuleType | None:
    """The legacy module extracted into ``scratch``, or ``None`` without a mirror."""
    return extract_legacy_module(BLACKBOX5, into=scratch, name="legacy_state_manager", mirrors=mirrors)


def workload(n: int) -> dict[str, Any]:
    """An ``update`` call for a workflow of ``n`` tasks over 10 waves, at wave 5: completed tasks with a
    commit and files, the current wave with results, and pending waves."""
    per_wave = max(n // WAVES, 1)

    def task(wave: int, i: int) -> dict[str, Any]:
        return {"task_id": f"w{wave}-t{i}", "description": f"Implement part {i} of wave {wave}", "wave_id": wave}

    completed = [
        {**task(w, i), "commit_hash": f"{w:03x}{i:04x}", "result": {"files_modified": [f"src/m{i}.py", "tests/t.py"]}}
        for w in range(1, CURRENT)
        for i in range(per_wave)
    ]
    current = [{**task(CURRENT, i), "result": {"success": i % 3 != 0}} for i in range(per_wave)]
    pending = [[task(w, i) for i in range(per_wave)] for w in range(CURRENT + 1, WAVES + 1)]
    return {
        "workflow_id": f"bench-{n}",
        "workflow_name": f"Benchmark with {n} tasks",
        "wave_id": CURRENT,
        "total_waves": WAVES,
        "completed_tasks": completed,
        "current_wave_tasks": current,
        "pending_waves": pending,
        "commit_hash": "cafe123",
        "notes": ["benchmark"],
        "metadata": {"size": n},
    }


def median_ms(fn: Callable[[], object], budget: float) -> float:
    """Median wall time of ``fn`` in ms, over at least 3 runs and at most ``budget`` seconds (or 50 runs)."""
    fn()  # warm-up: imports, page cache, first-write paths
    times: list[float] = []
    deadline = time.perf_counter() + budget
    while len(times) < 3 or (time.perf_counter() < deadline and len(times) < 50):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(manager_cls: Any, n: int, directory: Path, budget: float) -> dict[str, float]:
    path = directory / "STATE.md"
    manager = manager_cls(state_path=path)
    args = workload(n)
    manager.update(**args)
    size = path.stat().st_size
    read_ms = median_ms(path.read_bytes, budget / 4)
    update_ms = median_ms(lambda: manager.update(**args), budget)
    counter = iter(range(10**9))
    # add_note grows the file by a line per call; reset it so every size measures what it says.
    manager.update(**args)
    note_ms = median_ms(lambda: manager.add_note(f"note {next(counter)}"), budget)
    manager.update(**args)
    load_ms = median_ms(manager.load_state, budget)
    return {"size": size, "read": read_ms, "update": update_ms, "add_note": note_ms, "load": load_ms}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirrors", default=os.environ.get("FERROLOCK_MIRRORS"), help="folder of bare mirrors")
    parser.add_argument("--sizes", default="100,1000,10000", help="comma-separated task counts")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small files, short measurements")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # both modules log at INFO/WARNING on every call

    from ferrolock.compat import blackbox5

    if args.quick:
        args.sizes, args.budget = "100,1000", 0.1
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="ferrolock-bench-state-") as scratch:
        legacy = load_legacy(args.mirrors, Path(scratch))
        impls: list[tuple[str, Any]] = [("ferrolock", blackbox5.StateManager)]
        if legacy is not None:
            impls.append(("legacy", legacy.StateManager))
        else:
            print("(legacy module not found: pass --mirrors or set FERROLOCK_MIRRORS)", file=sys.stderr)
        results: dict[tuple[str, int], dict[str, float]] = {}
        for n in sizes:
            for name, cls in impls:
                directory = Path(scratch) / f"{name}-{n}"
                directory.mkdir()
                results[name, n] = measure(cls, n, directory, args.budget)
                print(f"measured {name} with {n} tasks", file=sys.stderr)

    print("| tasks | STATE.md | read file | operation | ferrolock | legacy | speed-up |")
    print("|---:|---:|---:|---|---:|---:|---:|")
    for n in sizes:
        ours = results["ferrolock", n]
        theirs = results.get(("legacy", n))
        for op in ("update", "add_note", "load"):
            label = {"update": "`update`", "add_note": "`add_note`", "load": "`load_state`"}[op]
            legacy_cell = f"{theirs[op]:.2f} ms" if theirs else "n/a"
            speedup = f"{theirs[op] / ours[op]:.1f}x" if theirs else "n/a"
            print(
                f"| {n:,} | {ours['size'] / 1024:.0f} KiB | {ours['read']:.3f} ms | {label} "
                f"| {ours[op]:.2f} ms | {legacy_cell} | {speedup} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
