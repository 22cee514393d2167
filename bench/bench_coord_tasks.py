"""A task queue drained by worker processes through a coordinator (``coord.tasks(queue)``), on
``file://`` and on PostgreSQL (a throwaway cluster with ``fsync=on``, or an existing server with
``--url``): throughput, the latency of each ``claim_next`` (median and p99), and a check that every task
was claimed exactly once. Each worker claims the next task and removes it (the work is done), until
none is left.

    python bench/bench_coord_tasks.py [--tasks 100000] [--file-tasks 10000] [--workers 16]
                                      [--backends file,postgresql] [--url postgresql://...] [--quick]
                                      [--json FILE]

The file backend rewrites the whole queue file (JSON, atomically, fsynced) on every claim and removal,
so a drain costs O(n^2) there: it drains ``--file-tasks`` (default 10,000) unless told otherwise.
``--quick`` (what ``make bench-ci`` runs) drains 2,000 tasks with 4 workers on each backend.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import ferrolock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "coord"))
from pg import PgCluster

LEASE = "15s"
ADD_BATCH = 5000


def worker(url: str, queue: str, by: str, start: Event, out: Connection) -> None:
    tasks = ferrolock.connect(url).tasks(queue)
    out.send("ready")
    start.wait(600)
    claimed: list[str] = []
    latencies: list[float] = []
    while True:
        t0 = time.perf_counter()
        task = tasks.claim_next(by=by, block=False)
        latencies.append(time.perf_counter() - t0)
        if task is None:
            break
        claimed.append(task)
        tasks.remove(task)
    out.send((claimed, latencies[:-1]))


def drain(url: str, n_tasks: int, n_workers: int) -> dict[str, Any]:
    queue = f"bench-{time.time_ns()}"
    ids = [f"task-{i:07d}" for i in range(n_tasks)]
    tasks = ferrolock.connect(url).tasks(queue)
    t0 = time.perf_counter()
    for at in range(0, n_tasks, ADD_BATCH):
        tasks.add(*ids[at : at + ADD_BATCH])
    add_seconds = time.perf_counter() - t0
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    pipes = [ctx.Pipe() for _ in range(n_workers)]
    procs = [
        ctx.Process(target=worker, args=(url, queue, f"w{i}", start, theirs)) for i, (_, theirs) in enumerate(pipes)
    ]
    for p in procs:
        p.start()
    for mine, _ in pipes:
        if not mine.poll(120) or mine.recv() != "ready":
            raise RuntimeError("a worker did not start")
    started = time.perf_counter()
    start.set()
    claimed: list[str] = []
    latencies: list[float] = []
    for mine, _ in pipes:
        got, lat = mine.recv()
        claimed.extend(got)
        latencies.extend(lat)
    wall = time.perf_counter() - started
    for p in procs:
        p.join(60)
    latencies.sort()
    exactly_once = len(claimed) == n_tasks and sorted(claimed) == ids
    return {
        "tasks": n_tasks,
        "workers": n_workers,
        "add_s": add_seconds,
        "drain_s": wall,
        "claims_per_s": n_tasks / wall,
        "claim_median_ms": statistics.median(latencies) * 1e3,
        "claim_p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3,
        "exactly_once": exactly_once,
        "left": len(tasks.tasks()),
    }


def table(rows: dict[str, dict[str, Any]]) -> str:
    out = [
        "| backend | tasks | workers | add (s) | drain (s) | claims/s | claim median (ms) | claim p99 (ms) "
        "| each once |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for backend, r in rows.items():
        out.append(
            f"| {backend} | {r['tasks']:,} | {r['workers']} | {r['add_s']:.1f} | {r['drain_s']:.1f} | "
            f"{r['claims_per_s']:,.0f} | {r['claim_median_ms']:.2f} | {r['claim_p99_ms']:.2f} | "
            f"{'yes' if r['exactly_once'] and r['left'] == 0 else 'NO'} |"
        )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--file-tasks", type=int, default=10_000, help="tasks for the file backend")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--backends", default="file,postgresql")
    parser.add_argument("--url", help="an existing PostgreSQL server (default: a throwaway cluster)")
    parser.add_argument("--quick", action="store_true", help="2,000 tasks, 4 workers")
    parser.add_argument("--json", metavar="FILE", help="also write raw results as JSON")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.file_tasks, args.workers = 2000, 2000, 4
    rows: dict[str, dict[str, Any]] = {}
    for backend in args.backends.split(","):
        if backend == "file":
            with tempfile.TemporaryDirectory(prefix="ferrolock-tasks-") as tmp:
                rows["file"] = drain(f"file://{tmp}/coord", min(args.tasks, args.file_tasks), args.workers)
        elif backend == "postgresql":
            cluster = None
            url = args.url
            if url is None:
                cluster = PgCluster.create().start()
                url = cluster.url(lease=LEASE)
            try:
                rows["postgresql"] = drain(url, args.tasks, args.workers)
            finally:
                if cluster is not None:
                    cluster.remove()
        else:
            parser.error(f"unknown backend {backend!r}")
        print(f"{backend}: {rows[backend]}", file=sys.stderr)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0 if all(r["exactly_once"] and r["left"] == 0 for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
