"""Benchmark: BlackBox5 ``StateManager.update`` / ``add_note`` / ``load_state`` on STATE.md files of 100,
1,000 and 10,000 tasks, against the floor (one read + parse + write of the same file) and the legacy module.

The floor is what any implementation that keeps the file must do: read the bytes, parse every line
(ferrolock's native parser, building no Python objects), and write the file back the way ferrolock
writes ``STATE.md`` (atomically, keeping the previous version as ``STATE.backup`` by hard link, with
``fsync`` of the file and the directory). ``no fsync`` shows the floor without
the two ``fsync`` calls, to show how much of it the disk takes.

Rounds are interleaved (floor, then each operation, once per round) and the ratio to the floor is taken
within each round, so a machine shared with other work moves both sides of a ratio together; the table
shows medians over the rounds.

The legacy module is not part of this repository: it is extracted at run time from a bare git mirror of
``Lordsisodia/blackbox5`` under ``--mirrors`` (or ``$FERROLOCK_MIRRORS``, the folder holding
``<owner>+<repo>/repo``) into a temporary directory. Without it, only the ferrolock rows are printed.

    python bench/bench_state.py [--mirrors DIR] [--sizes 100,1000,10000] [--rounds 15] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
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
OPERATIONS = ("update", "add_note", "load")
LABELS = {"update": "`update`", "add_note": "`add_note`", "load": "`load_state`"}


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


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


class Subject:
    """One ``StateManager`` on its own file, with a callable per operation."""

    def __init__(self, manager_cls: Any, n: int, directory: Path) -> None:
        directory.mkdir()
        self.path = directory / "STATE.md"
        self.manager = manager_cls(state_path=self.path)
        self.args = workload(n)
        self.manager.update(**self.args)
        self.notes = iter(range(10**9))

    def run(self, op: str) -> float:
        if op == "update":
            return timed(lambda: self.manager.update(**self.args))
        if op == "add_note":
            # add_note grows the file by a line per call: each sample starts from the same file.
            self.manager.update(**self.args)
            return timed(lambda: self.manager.add_note(f"note {next(self.notes)}"))
        return timed(self.manager.load_state)


def floor(source: Path, copy: Path, durable: bool) -> float:
    """Read ``source``, parse every line natively (no Python objects), write it to ``copy`` as
    ferrolock writes a ``STATE.md`` (atomically, the previous version kept as the backup by hard link;
    ``durable``: with the ``fsync`` calls)."""
    from ferrolock import _ferrolock, atomic_write

    def once() -> None:
        data = source.read_bytes()
        _ferrolock._parse_state_md(data)
        atomic_write(copy, data, durable=durable, backup=copy.with_suffix(".backup"))

    return timed(once)


def measure(impls: list[tuple[str, Any]], n: int, scratch: Path, rounds: int) -> dict[str, Any]:
    subjects = {name: Subject(cls, n, scratch / f"{name}-{n}") for name, cls in impls}
    ours = subjects["ferrolock"]
    copy = scratch / f"floor-{n}.md"
    for subject in subjects.values():  # warm-up: imports, page cache, first-write paths
        for op in OPERATIONS:
            subject.run(op)
    samples: dict[str, list[float]] = {"floor": [], "floor_nosync": []}
    ratios: dict[str, list[float]] = {}
    for _ in range(rounds):
        f = floor(ours.path, copy, durable=True)
        samples["floor"].append(f)
        samples["floor_nosync"].append(floor(ours.path, copy, durable=False))
        for name, subject in subjects.items():
            for op in OPERATIONS:
                took = subject.run(op)
                samples.setdefault(f"{name}:{op}", []).append(took)
                ratios.setdefault(f"{name}:{op}", []).append(took / f)
    return {
        "tasks": n,
        "bytes": ours.path.stat().st_size,
        "ms": {key: statistics.median(v) * 1000 for key, v in samples.items()},
        "x_floor": {key: statistics.median(v) for key, v in ratios.items()},
    }


def print_table(results: list[dict[str, Any]], legacy: bool) -> None:
    print("| tasks | STATE.md | floor: read + parse + write (no fsync) | operation | ferrolock | x floor |", end="")
    print(" legacy | legacy x floor |" if legacy else "")
    print("|---:|---:|---:|---|---:|---:|" + ("---:|---:|" if legacy else ""))
    for r in results:
        ms, x = r["ms"], r["x_floor"]
        for op in OPERATIONS:
            row = (
                f"| {r['tasks']:,} | {r['bytes'] / 1024:.0f} KiB | {ms['floor']:.2f} ms ({ms['floor_nosync']:.2f} ms) "
                f"| {LABELS[op]} | {ms['ferrolock:' + op]:.2f} ms | {x['ferrolock:' + op]:.2f}x |"
            )
            if legacy:
                row += f" {ms['legacy:' + op]:.2f} ms | {x['legacy:' + op]:.1f}x |"
            print(row)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirrors", default=os.environ.get("FERROLOCK_MIRRORS"), help="folder of bare mirrors")
    parser.add_argument("--sizes", default="100,1000,10000", help="comma-separated task counts")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds per size")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small files, few rounds")
    parser.add_argument("--json", metavar="FILE", help="also write the raw results as JSON")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # both modules log at INFO/WARNING on every call

    from ferrolock.compat import blackbox5

    if args.quick:
        args.sizes, args.rounds = "100,1000", 3
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="ferrolock-bench-state-") as scratch:
        legacy = load_legacy(args.mirrors, Path(scratch))
        impls: list[tuple[str, Any]] = [("ferrolock", blackbox5.StateManager)]
        if legacy is not None:
            impls.append(("legacy", legacy.StateManager))
        else:
            print("(legacy module not found: pass --mirrors or set FERROLOCK_MIRRORS)", file=sys.stderr)
        results = []
        for n in sizes:
            results.append(measure(impls, n, Path(scratch), args.rounds))
            print(f"measured {n} tasks", file=sys.stderr)
    print_table(results, legacy is not None)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
