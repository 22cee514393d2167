"""Scaling curves: each hot path's cost against its size, ferrolock beside the legacy modules and the
libraries users would pick instead, drawn as one PNG.

    python bench/bench_scaling.py [--quick] [--mirrors DIR] [--curves handoff,scope,...]
                                  [--json FILE] [--plot docs/scaling.png]

The ferrolock and library curves are ``ferrolock bench --scaling``'s (``ferrolock._bench_scaling``); this
script adds the legacy modules (little-loops scope locks, the BlackBox5 StateManager, todo2 task locking),
extracted at run time from the bare mirrors under ``--mirrors`` (or ``$FERROLOCK_MIRRORS``). Without
mirrors the legacy curves are left out. ``--quick`` runs the small sizes only (``make bench-ci``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "tests" / "compat" / "todo2"))

from ferrolock import _bench_scaling as scaling  # noqa: E402
from legacy_source import BLACKBOX5, LITTLE_LOOPS, extract_legacy_module  # noqa: E402


def legacy_measures(mirrors: str, scratch: Path) -> dict[str, dict[str, scaling.Measure]]:
    """The legacy modules' curves, for each module its mirror provides."""
    extra: dict[str, dict[str, scaling.Measure]] = {}
    loops = extract_legacy_module(LITTLE_LOOPS, into=scratch, name="legacy_concurrency", mirrors=mirrors)
    if loops is not None:
        extra["scope"] = {"little-loops (legacy)": lambda n, work: legacy_scope(loops, n, work)}
    state = extract_legacy_module(BLACKBOX5, into=scratch, name="legacy_state_manager", mirrors=mirrors)
    if state is not None:
        extra["state"] = {
            "BlackBox5 StateManager (legacy)": lambda n, work: scaling.state_update(state.StateManager, n, work)
        }
    from todo2_helpers import extract_legacy, load_impl

    legacy_todo2 = extract_legacy(scratch / "todo2", mirrors)
    if legacy_todo2 is not None:
        impl = load_impl("legacy", str(legacy_todo2))
        extra["todo2"] = {"todo2 (legacy)": lambda n, work: scaling.todo2_assign(impl.task_locking, n, work)}
    return extra


def legacy_scope(module: Any, n: int, work: Path) -> float:
    """The legacy ``acquire`` + ``release`` with ``n`` live claims, written as its own holders write them."""
    from bench_scope import hold_legacy, start_holders, stop_holders

    loops = work / "loops"
    holders = start_holders(hold_legacy, loops, n, work / "claims")
    try:
        manager = module.LockManager(loops)

        def cycle() -> None:
            if not manager.acquire("bench-free", [str(work / "claims" / "free")]):
                raise RuntimeError("the free scope was refused")
            manager.release("bench-free")

        return scaling._median_time(cycle, 15)
    finally:
        stop_holders(holders)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes only (CI smoke run)")
    parser.add_argument("--mirrors", default=os.environ.get("FERROLOCK_MIRRORS"), help="folder of bare mirrors")
    parser.add_argument("--curves", help="comma-separated subset of " + ",".join(scaling.FULL_SIZES))
    parser.add_argument("--json", metavar="FILE", help="also write the raw results as JSON")
    parser.add_argument("--plot", metavar="PNG", help="also draw the curves")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ferrolock-legacy-") as scratch:
        extra = legacy_measures(args.mirrors, Path(scratch)) if args.mirrors else {}
        curves = args.curves.split(",") if args.curves else None
        return scaling.main(quick=args.quick, json_path=args.json, plot_path=args.plot, extra=extra, curves=curves)


if __name__ == "__main__":
    sys.exit(main())
