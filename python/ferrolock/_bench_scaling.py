"""``ferrolock bench --scaling``: how each hot path's cost grows with its size, as curves.

Five curves, each through public APIs (so a rewrite behind them is measured by the same harness):

* ``handoff``: N processes waiting in line for one lock; the median time from a release to the next
  holder's return, for ferrolock, blocking ``fcntl.flock`` (the floor) and the libraries users would pick;
* ``scope``: ``LockManager.acquire`` + ``release`` of a free scope while N claims are held by other
  processes;
* ``status``: ``ferrolock status --json`` over a tree of N lock files (a quarter with holder records);
* ``state``: ``StateManager.update`` of a STATE.md of N tasks;
* ``todo2``: one todo2 ``atomic_assign_task`` in a state file of N tasks.

Other implementations (the legacy modules, from mirrors) are added by ``bench/bench_scaling.py``
through ``extra``: ``{curve: {name: measure(n, workdir) -> seconds}}``.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import multiprocessing.connection
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from . import _bench_adapters as adapters

SPAWN = multiprocessing.get_context("spawn")

Measure = Callable[[int, Path], float]
Curves = dict[str, dict[str, list[tuple[int, float]]]]

FULL_SIZES: dict[str, list[int]] = {
    "handoff": [2, 4, 8, 16, 32, 64],
    "scope": [10, 100, 1_000, 3_000],
    "status": [10, 100, 1_000, 10_000, 100_000],
    "state": [10, 100, 1_000, 10_000, 50_000],
    "todo2": [10, 100, 1_000, 10_000, 50_000],
}
QUICK_SIZES: dict[str, list[int]] = {
    "handoff": [2, 8],
    "scope": [10, 100],
    "status": [10, 100, 1_000],
    "state": [10, 100, 1_000],
    "todo2": [10, 100, 1_000],
}
UNITS = {
    "handoff": "waiting processes",
    "scope": "live claims held by other processes",
    "status": "lock files",
    "state": "tasks in STATE.md",
    "todo2": "tasks in the todo2 state file",
}
TITLES = {
    "handoff": "hand-off, median",
    "scope": "scope acquire + release",
    "status": "ferrolock status",
    "state": "StateManager.update",
    "todo2": "todo2 atomic_assign_task",
}


def _median_time(fn: Callable[[], object], reps: int) -> float:
    fn()  # warm-up: imports, page cache, first-write paths
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- hand-off with N waiters ---------------------------------------------------------------------


def _queued_waiter(key: str, path: str, conn: Connection) -> None:
    """Takes the lock, says so, releases when told, and queues again when told (see ``handoff``)."""
    lock = adapters.make(key, path)
    conn.send("ready")
    if conn.recv() == "stop":
        return
    while True:
        lock.acquire(None)
        conn.send(time.monotonic())
        if conn.recv() == "stop":
            lock.release()
            return
        released = time.monotonic()
        lock.release()
        conn.send(released)
        if conn.recv() == "stop":
            return


def handoff(key: str, n: int, work: Path, samples: int) -> float:
    """Median seconds from a release to the next holder's return while ``n`` processes wait in line.

    The holder of the moment releases when told; the next process to return from its acquire reports
    when; only then does the releaser queue again, so every sample is a real hand-off to one of the
    ``n - 1`` others, never the releaser taking the lock back.
    """
    path = str(work / f"handoff-{key}-{n}.lock")
    procs = []
    for _ in range(n):
        parent, child = SPAWN.Pipe()
        proc = SPAWN.Process(target=_queued_waiter, args=(key, path, child))
        proc.start()
        procs.append((proc, parent))
    conns = [parent for _, parent in procs]
    latencies = []
    try:
        for proc, parent in procs:
            if not parent.poll(120) or parent.recv() != "ready":
                raise RuntimeError(f"hand-off worker {proc.pid} did not start")
        for conn in conns:
            conn.send("go")
        holder = _next_report(conns)[0]
        rng = random.Random(n)
        for _ in range(samples):
            time.sleep(rng.uniform(0.002, 0.006))  # the last one to queue is asleep (or between polls)
            holder.send("release")
            if not holder.poll(60):
                raise RuntimeError("the holder did not release")
            released = holder.recv()
            taker, got = _next_report([c for c in conns if c is not holder])
            latencies.append(got - released)
            holder.send("go")  # queue again, behind the others
            holder = taker
        holder.send("stop")
        waiting = [c for c in conns if c is not holder]
        while waiting:
            conn = _next_report(waiting)[0]
            conn.send("stop")
            waiting.remove(conn)
    finally:
        for proc, _ in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    return float(statistics.median(latencies))


def _next_report(conns: list[Connection]) -> tuple[Connection, float]:
    ready = multiprocessing.connection.wait(conns, timeout=120)
    if not ready:
        raise RuntimeError("no waiter got the lock within 120 s")
    conn = ready[0]
    assert isinstance(conn, Connection)
    return conn, conn.recv()


# --- scope claims --------------------------------------------------------------------------------

HOLDERS = 4  # processes holding the N claims between them


def hold_claims(loops_dir: str, names: list[str], claims_root: str, conn: Connection) -> None:
    """Holder process: claim each name (a scope of its own) with ferrolock and hold until told."""
    import ferrolock

    manager = ferrolock.LockManager(Path(loops_dir))
    for name in names:
        if not manager.acquire(name, [f"{claims_root}/{name}"]):
            raise SystemExit(f"could not claim {name}")
    conn.send("ready")
    conn.poll(3600)


def scope_acquire(n: int, work: Path) -> float:
    import ferrolock

    loops, claims = work / f"scope-{n}" / "loops", work / f"scope-{n}" / "claims"
    loops.mkdir(parents=True)
    names = [f"claim-{i:06d}" for i in range(n)]
    procs = []
    try:
        for k in range(HOLDERS):
            parent, child = SPAWN.Pipe()
            proc = SPAWN.Process(target=hold_claims, args=(str(loops), names[k::HOLDERS], str(claims), child))
            proc.start()
            procs.append((proc, parent))
        for proc, parent in procs:
            if not parent.poll(1800) or parent.recv() != "ready":
                raise RuntimeError(f"claim holder {proc.pid} did not get ready")
        manager = ferrolock.LockManager(loops)

        def cycle() -> None:
            if not manager.acquire("bench-free", [f"{claims}/free"]):
                raise RuntimeError("the free scope was refused")
            manager.release("bench-free")

        return _median_time(cycle, 15)
    finally:
        for proc, parent in procs:
            parent.close()
            proc.join(60)
            if proc.is_alive():
                proc.kill()


# --- status over N lock files --------------------------------------------------------------------


def build_lock_tree(root: Path, n: int) -> None:
    """``n`` lock files, 100 to a directory; every fourth holds a holder record."""
    import ferrolock

    for i in range(n):
        path = root / f"d{i // 100}" / f"{i}.lock"
        if i % 4 == 0:
            with ferrolock.FileLock(path, purpose=f"job {i}"):
                pass
        else:
            path.parent.mkdir(exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))


def status(n: int, work: Path) -> float:
    from .cli import main as cli_main

    root = work / f"status-{n}"
    root.mkdir()
    build_lock_tree(root, n)

    def scan() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            cli_main(["status", "--json", str(root)])

    return _median_time(scan, 3 if n >= 10_000 else 7)


# --- STATE.md and todo2 --------------------------------------------------------------------------

WAVES = 10


def state_workload(n: int) -> dict[str, Any]:
    """``update`` arguments for a workflow of ``n`` tasks over 10 waves, at wave 5."""
    per_wave = max(n // WAVES, 1)

    def task(wave: int, i: int) -> dict[str, Any]:
        return {"task_id": f"w{wave}-t{i}", "description": f"Implement part {i} of wave {wave}", "wave_id": wave}

    return {
        "workflow_id": f"bench-{n}",
        "workflow_name": f"Benchmark with {n} tasks",
        "wave_id": 5,
        "total_waves": WAVES,
        "completed_tasks": [
            {**task(w, i), "commit_hash": f"{w:03x}{i:04x}"} for w in range(1, 5) for i in range(per_wave)
        ],
        "current_wave_tasks": [{**task(5, i), "result": {"success": i % 3 != 0}} for i in range(per_wave)],
        "pending_waves": [[task(w, i) for i in range(per_wave)] for w in range(6, WAVES + 1)],
        "commit_hash": "cafe123",
        "notes": ["benchmark"],
        "metadata": {"size": n},
    }


def state_update(manager_cls: Any, n: int, work: Path) -> float:
    directory = work / f"state-{manager_cls.__module__}-{n}"
    directory.mkdir()
    manager = manager_cls(state_path=directory / "STATE.md")
    args = state_workload(n)
    return _median_time(lambda: manager.update(**args), 5)


def todo2_state(n: int) -> bytes:
    """A todo2 state file of ``n`` tasks shaped like todo2's (about 600 bytes each)."""
    todos = [
        {
            "id": f"T-{i}",
            "name": f"Implement part {i} of the feature",
            "long_description": "Details of what to build, why, and how to check it. " * 4,
            "status": "Todo",
            "priority": "medium",
            "tags": ["backend", "feature"],
            "dependencies": [f"T-{i - 1}"] if i else [],
            "created": "2025-12-01T10:00:00.000Z",
            "lastModified": "2025-12-01T10:00:00.000Z",
        }
        for i in range(n)
    ]
    return json.dumps({"todos": todos, "lastModified": "2025-12-01T10:00:00.000Z", "project": {}}, indent=2).encode()


def todo2_assign(task_locking: Any, n: int, work: Path) -> float:
    """One ``atomic_assign_task`` of a different task each time, in a file of ``n`` tasks."""
    root = work / f"todo2-{task_locking.__name__}-{n}"
    (root / ".todo2").mkdir(parents=True)
    (root / ".todo2" / "state.todo2.json").write_bytes(todo2_state(n))
    os.environ["PROJECT_ROOT"] = str(root)
    ids = iter(f"T-{i}" for i in range(n - 1, -1, -1))

    def assign() -> None:
        ok, err = task_locking.atomic_assign_task(next(ids), "bench")
        if not ok:
            raise RuntimeError(f"assignment failed: {err}")

    return _median_time(assign, min(5, n - 1))


# --- the run -------------------------------------------------------------------------------------


def default_measures(handoff_samples: int) -> dict[str, dict[str, Measure]]:
    from . import StateManager
    from .compat.todo2 import task_locking

    def handoff_of(key: str) -> Measure:
        return lambda n, work: handoff(key, n, work, handoff_samples)

    measures: dict[str, dict[str, Measure]] = {
        "handoff": {
            adapters.ADAPTERS[key].name: handoff_of(key)
            for key in adapters.available()
            if key != "legacy"  # the legacy loop polls like filelock; one polling curve per library is enough
        },
        "scope": {"ferrolock": scope_acquire},
        "status": {"ferrolock": status},
        "state": {"ferrolock": lambda n, work: state_update(StateManager, n, work)},
        "todo2": {"ferrolock": lambda n, work: todo2_assign(task_locking, n, work)},
    }
    return measures


def run(
    quick: bool = False,
    extra: dict[str, dict[str, Measure]] | None = None,
    curves: list[str] | None = None,
    progress: Callable[[str], None] = print,
) -> Curves:
    sizes = QUICK_SIZES if quick else FULL_SIZES
    measures = default_measures(8 if quick else 40)
    for curve, impls in (extra or {}).items():
        measures.setdefault(curve, {}).update(impls)
    results: Curves = {}
    with tempfile.TemporaryDirectory(prefix="ferrolock-scaling-") as tmp:
        for curve in curves or list(sizes):
            for name, measure in measures[curve].items():
                for n in sizes[curve]:
                    work = Path(tempfile.mkdtemp(dir=tmp))
                    seconds = measure(n, work)
                    results.setdefault(curve, {}).setdefault(name, []).append((n, seconds))
                    progress(f"{curve:8} {name:28} n={n:<7} {seconds * 1e6:12.1f} us")
    return results


def growth(points: list[tuple[int, float]]) -> float:
    """The exponent k in cost ~ size^k between the two largest sizes (1 = linear)."""
    import math

    if len(points) < 2:
        return float("nan")
    (n1, t1), (n2, t2) = points[-2], points[-1]
    return math.log(t2 / t1) / math.log(n2 / n1)


def markdown(results: Curves) -> str:
    lines = []
    for curve, impls in results.items():
        sizes = sorted({n for points in impls.values() for n, _ in points})
        lines.append(f"**{TITLES[curve]}** (per call, by {UNITS[curve]})\n")
        lines.append("| implementation | " + " | ".join(f"{n:,}" for n in sizes) + " | growth exponent |")
        lines.append("|---|" + "---:|" * (len(sizes) + 1))
        for name, points in impls.items():
            by_size = dict(points)
            cells = [_fmt(by_size[n]) if n in by_size else "" for n in sizes]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {growth(points):.2f} |")
        lines.append("")
    return "\n".join(lines)


def _fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def plot(results: Curves, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    columns = min(3, len(results))
    rows = -(-len(results) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.0 * columns, 3.9 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax, (curve, impls) in zip(flat, results.items(), strict=False):
        for name, points in impls.items():
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, [y * 1e6 for y in ys], marker="o", label=name)
        ax.set_xscale("log", base=2 if curve == "handoff" else 10)
        if curve == "handoff":
            ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_yscale("log")
        ax.set_title(TITLES[curve])
        ax.set_xlabel(UNITS[curve])
        ax.set_ylabel("us per call")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in flat[len(results) :]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def replot(json_path: str, plot_path: str) -> None:
    """Draws a PNG from a ``--json`` file of an earlier run."""
    raw = json.loads(Path(json_path).read_text())
    plot(
        {
            curve: {name: [(int(n), float(t)) for n, t in pts] for name, pts in impls.items()}
            for curve, impls in raw.items()
        },
        plot_path,
    )


def main(
    quick: bool = False,
    json_path: str | None = None,
    plot_path: str | None = None,
    extra: dict[str, dict[str, Measure]] | None = None,
    curves: list[str] | None = None,
) -> int:
    results = run(quick=quick, extra=extra, curves=curves)
    print()
    print(markdown(results))
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2))
    if plot_path:
        plot(results, plot_path)
    return 0
