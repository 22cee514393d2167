"""A 1 MB value updated by 16 processes at once: ``coord.state`` on ``file://`` and on PostgreSQL (a
throwaway cluster, or ``--url``) beside the one-machine ``StateFile``, in one run.

Each process does locked read-modify-writes that bump a counter inside the value; the run checks that
no update was lost (the counter equals the number of edits) and reports updates per second and the
latency of one edit (wait + read + write) at the median and p99.

    python bench/bench_fleet_state.py [--quick] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "coord"))

SPAWN = multiprocessing.get_context("spawn")
HEADER = 16  # the counter, as 16 decimal digits at the front of the value


def _bump(data: bytes | None, size: int) -> bytes:
    count = int(data[:HEADER]) if data else 0
    body = data[HEADER:] if data else b"x" * (size - HEADER)
    return b"%016d" % (count + 1) + body


def _worker(where: str, name: str, size: int, edits: int, start: Event, out: Connection) -> None:  # noqa: PLR0917
    import ferrolock

    if where.startswith("statefile:"):
        store = ferrolock.StateFile(where.removeprefix("statefile:"))
    else:
        store = ferrolock.connect(where).state(name)
    store.read()  # connected and warm before the clock starts
    out.send("ready")
    start.wait(120)
    times = []
    for _ in range(edits):
        began = time.perf_counter()
        with store.edit(timeout=600) as draft:
            draft.data = _bump(draft.data, size)
        times.append(time.perf_counter() - began)
    out.send(times)


def run(where: str, workers: int, edits: int, size: int) -> dict[str, float]:
    import ferrolock

    name = f"bench-{uuid.uuid4().hex[:8]}"
    start = SPAWN.Event()
    pipes = [SPAWN.Pipe() for _ in range(workers)]
    procs = [SPAWN.Process(target=_worker, args=(where, name, size, edits, start, w)) for _, w in pipes]
    for p in procs:
        p.start()
    for r, _ in pipes:
        assert r.recv() == "ready"
    began = time.perf_counter()
    start.set()
    times = [t for r, _ in pipes for t in r.recv()]
    elapsed = time.perf_counter() - began
    for p in procs:
        p.join(60)
    if where.startswith("statefile:"):
        final = ferrolock.StateFile(where.removeprefix("statefile:")).read()
    else:
        final = ferrolock.connect(where).state(name).read()
    assert final is not None
    assert int(final[:HEADER]) == workers * edits, "an update was lost"
    assert len(final) == size
    times.sort()
    return {
        "updates_per_s": workers * edits / elapsed,
        "median_ms": statistics.median(times) * 1000,
        "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))] * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--url", help="an existing PostgreSQL server (default: a throwaway cluster)")
    args = parser.parse_args()
    workers, edits, size = (4, 3, 256 * 1024) if args.quick else (16, 20, 1024 * 1024)
    from pg import PgCluster

    cluster = None
    url = args.url
    if url is None:
        cluster = PgCluster.create().start()
        url = cluster.url(lease="5s")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for label, where in (
                ("StateFile (one machine)", f"statefile:{tmp}/state.bin"),
                ("coord.state, file://", f"file://{tmp}/coord"),
                ("coord.state, postgresql://", url),
            ):
                rows.append((label, run(where, workers, edits, size)))
        finally:
            if cluster is not None:
                cluster.remove()
    print(f"{size // 1024} KiB value, {workers} processes x {edits} locked edits each; no update lost")
    print(f"| {'store':<28} | updates/s | edit median | edit p99 |")
    print(f"|{'-' * 30}|-----------|-------------|----------|")
    for label, r in rows:
        print(f"| {label:<28} | {r['updates_per_s']:9.1f} | {r['median_ms']:8.1f} ms | {r['p99_ms']:5.0f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
