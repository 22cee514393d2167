"""todo2 task claims: ferrolock's ``ferrolock.compat.todo2.task_locking`` against the legacy module.

Measures, on state files of 1,000 and 50,000 tasks, one single assignment and one batch of 1,000
assignments (tasks spread evenly over the file), next to the cost of one plain read-modify-write of
the file (read, ``json.loads``, ``json.dumps(indent=2)``, write: the floor for anything that keeps the
legacy file format). Then runs 12 processes assigning 12 different tasks at once, several times, and
counts what survived.

The legacy module is extracted at run time from the mirrors named by ``--mirrors`` or
``FERROLOCK_MIRRORS`` (a folder of ``<owner>+<repo>/repo`` bare git mirrors); without them its
columns say "n/a".

    python bench/bench_todo2.py [--quick] [--mirrors DIR] [--dir DIR] [--json FILE]
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "compat" / "todo2"))
from ferrolock._bench_scaling import todo2_state as state_bytes
from todo2_helpers import Impl, Where, assign_worker, extract_legacy, load_impl, read_until

SPAWN = multiprocessing.get_context("spawn")


@dataclass
class Settings:
    sizes: tuple[int, ...] = (1_000, 50_000)
    batch: int = 1_000
    single_reps: int = 5
    batch_reps: int = 3
    race_runs: int = 10

    @classmethod
    def quick(cls) -> Settings:
        return cls(sizes=(1_000,), batch=200, single_reps=2, batch_reps=1, race_runs=1)


def fresh_root(base: Path, tag: str, content: bytes) -> Path:
    root = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=base))
    (root / ".todo2").mkdir()
    (root / ".todo2" / "state.todo2.json").write_bytes(content)
    os.environ["PROJECT_ROOT"] = str(root)
    return root


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def check(ok: bool, detail: object) -> None:
    if not ok:
        raise RuntimeError(f"unexpected result: {detail}")


def one_rmw(root: Path) -> float:
    """The floor: read, parse, format as the legacy code does, write in place (no lock, no fsync)."""
    path = root / ".todo2" / "state.todo2.json"
    started = time.perf_counter()
    state = json.loads(path.read_bytes())
    path.write_bytes(json.dumps(state, indent=2).encode())
    return time.perf_counter() - started


def bench_sizes(impls: list[Impl], settings: Settings, base: Path) -> list[dict[str, Any]]:
    rows = []
    for n in settings.sizes:
        content = state_bytes(n)
        floor_root = fresh_root(base, "floor", content)
        floor = statistics.median(one_rmw(floor_root) for _ in range(3))
        single: dict[str, float] = {}
        batch: dict[str, float] = {}
        for impl in impls:
            fresh_root(base, impl.name, content)
            times = []
            for i in range(settings.single_reps):
                took, result = timed(impl.task_locking.atomic_assign_task, f"T-{i}", "bench")
                check(result == (True, None), result)
                times.append(took)
            single[impl.name] = statistics.median(times)
            # Spread over the file, as a batch of real tasks would be (not just its first 1,000).
            ids = [f"T-{i}" for i in range(n - 1, -1, -max(n // settings.batch, 1))][: settings.batch]
            times = []
            for _ in range(settings.batch_reps):
                root = fresh_root(base, impl.name, content)  # every batch starts from the same file
                took, result = timed(impl.task_locking.atomic_batch_assign, ids, "bench")
                check(len(result["assigned"]) == len(ids), result["failed"][:3])
                times.append(took)
            batch[impl.name] = statistics.median(times)
        # The batch writes a bigger file (one assignee object per task); its floor is this file's.
        floor_after = statistics.median(one_rmw(root) for _ in range(3))
        size_mb = len(content) / 1e6
        rows.append(
            {
                "tasks": n,
                "file_mb": size_mb,
                "floor": floor,
                "floor_after_batch": floor_after,
                "single": single,
                "batch": batch,
            }
        )
    return rows


def race(impl: Impl, legacy_path: str | None, runs: int, base: Path) -> dict[str, Any]:
    """12 processes each assign a different task, released together, with an unlocked reader."""
    ids = [f"T-{i}" for i in range(12)]
    content = state_bytes(600)
    kept, torn_runs, corrupt_runs, failed_calls = [], 0, 0, 0
    for _ in range(runs):
        root = fresh_root(base, f"race-{impl.name}", content)
        state = root / ".todo2" / "state.todo2.json"
        start, out, stop = SPAWN.Event(), SPAWN.Queue(), SPAWN.Event()
        reads, torn = SPAWN.Value("i", 0), SPAWN.Value("i", 0)
        reader = SPAWN.Process(target=read_until, args=(str(state), stop, reads, torn))
        where = Where(impl.name, legacy_path, str(root))
        procs = [SPAWN.Process(target=assign_worker, args=(where, i, f"agent-{i}", start, out)) for i in ids]
        reader.start()
        for p in procs:
            p.start()
        start.set()
        results = dict(out.get(timeout=300) for _ in procs)
        for p in procs:
            p.join(60)
        stop.set()
        reader.join(60)
        failed_calls += sum(1 for r in results.values() if r != (True, None))
        torn_runs += torn.value > 0
        try:
            final = json.loads(state.read_bytes())
        except ValueError:
            corrupt_runs += 1
            kept.append(0)
            continue
        kept.append(sum(1 for t in final["todos"] if t["id"] in ids and t.get("assignee")))
    return {
        "runs": runs,
        "kept_min": min(kept),
        "kept_max": max(kept),
        "kept_mean": statistics.mean(kept),
        "failed_calls": failed_calls,
        "torn_runs": torn_runs,
        "corrupt_runs": corrupt_runs,
    }


def ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:,.1f} ms"


def print_tables(rows: list[dict[str, Any]], races: dict[str, dict[str, Any]], batch: int) -> None:
    print("| operation | tasks (file size) | ferrolock (x floor) | legacy | floor: one read+parse+format+write |")
    print("|---|---|---|---|---|")
    for row in rows:
        size = f"{row['tasks']:,} ({row['file_mb']:.1f} MB)"
        for op, label in (("single", "one assignment"), ("batch", f"batch of {min(batch, row['tasks']):,}")):
            ours, legacy = row[op].get("ferrolock"), row[op].get("legacy")
            floor = row["floor"] if op == "single" else row["floor_after_batch"]
            ratio = f" ({ours / floor:.1f}x)" if ours else ""
            note = "" if op == "single" else " (of the file the batch writes)"
            print(f"| {label} | {size} | {ms(ours)}{ratio} | {ms(legacy)} | {ms(floor)}{note} |")
    print()
    print("| 12 processes assign 12 different tasks at once | runs | assignments kept (min-max, mean) |", end="")
    print(" calls that failed | runs where an unlocked reader saw a torn file | runs that left the file corrupt |")
    print("|---|---|---|---|---|---|")
    for name, r in races.items():
        kept = f"{r['kept_min']}-{r['kept_max']} of 12 (mean {r['kept_mean']:.1f})"
        row = f"| {name} | {r['runs']} | {kept} | {r['failed_calls']} | {r['torn_runs']} | {r['corrupt_runs']} |"
        print(row)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (1,000 tasks, one race)")
    parser.add_argument("--mirrors", help="folder of <owner>+<repo>/repo mirrors (default: $FERROLOCK_MIRRORS)")
    parser.add_argument("--dir", help="where to put the state files (default: the system temp dir)")
    parser.add_argument("--json", metavar="FILE", help="also write raw results as JSON")
    args = parser.parse_args()
    settings = Settings.quick() if args.quick else Settings()

    with tempfile.TemporaryDirectory(prefix="bench-todo2-", dir=args.dir) as tmp:
        base = Path(tmp)
        legacy = extract_legacy(base / "legacy", args.mirrors)
        legacy_path = None if legacy is None else str(legacy)
        impls = [load_impl("ferrolock")] + ([load_impl("legacy", legacy_path)] if legacy_path else [])
        if legacy_path is None:
            print("(legacy module not available: set FERROLOCK_MIRRORS or --mirrors for its columns)\n")
        rows = bench_sizes(impls, settings, base)
        races = {impl.name: race(impl, legacy_path, settings.race_runs, base) for impl in impls}
    print_tables(rows, races, settings.batch)
    if args.json:
        Path(args.json).write_text(json.dumps({"sizes": rows, "races": races}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
