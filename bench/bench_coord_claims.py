"""Scope claims at scale: claim + release of a free path, and conflict checks, with N live claims held
by other sessions / processes, on ``file://`` and on a throwaway PostgreSQL cluster.

    python bench/bench_coord_claims.py [--quick] [--claims N ...] [--json FILE]

The N claims are made through the same protocol the library uses, without going through its
one-claim-at-a-time API (which would make setting up N claims cost N conflict checks): on PostgreSQL,
four sessions call the schema's ``claim`` function and keep the claims' advisory keys; on ``file://``, a
holder process publishes N marked records and keeps each one ``flock``-held, as ``ScopeDir`` does.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import ferrolock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "coord"))
from pg import PgCluster

PROJECT = "bench"
NAMESPACE = 0x464C6B31 + 1  # the claims' advisory namespace next to the default lock namespace
SESSIONS = 4


def claim_path(i: int) -> str:
    return f"area-{i % 100:03d}/item-{i:06d}"


def escape(name: str) -> str:
    return "".join(
        c if c.isalnum() or c in "_-" or (c == "." and i > 0) else f"%{ord(c):02X}" for i, c in enumerate(name)
    )


def hold_file_claims(root: str, n: int, conn: Connection) -> None:
    """Publish ``n`` marked claim records under ``root`` and hold each with ``flock`` until told."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 256)), hard))
    running = Path(root) / ".claims" / escape(PROJECT)
    running.mkdir(parents=True, exist_ok=True)
    held = []
    for i in range(n):
        record = {
            "loop_name": "bench",
            "scope": [f"/{claim_path(i)}"],
            "pid": os.getpid(),
            "started_at": "2026-01-01T00:00:00+00:00",
            "ferrolock": 1,
        }
        tmp = running / f".held-{i}.lock.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps(record).encode())
        os.rename(tmp, running / f"held-{i}.lock")
        held.append(fd)
    conn.send("ready")
    conn.recv()


def hold_pg_claims(url: str, n: int) -> list[Any]:
    import psycopg2

    dsn = url.split("?", maxsplit=1)[0]
    conns = []
    for s in range(SESSIONS):
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            for i in range(s, n, SESSIONS):
                key = PROJECT + "".join("\x01" + c for c in claim_path(i).split("/"))
                cur.execute(
                    "SELECT ferrolock.claim(%s, %s, %s, %s, false, 'bench', %s, 'bench')",
                    (NAMESPACE, PROJECT, [key], [claim_path(i)], os.getpid()),
                )
                if cur.fetchone()[0] <= 0:
                    raise RuntimeError(f"could not claim {claim_path(i)}")
        conns.append(conn)
    return conns


def median_ms(fn: Callable[[], object], reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(url: str, n: int, reps: int) -> dict[str, float]:
    space = ferrolock.connect(url).claims(PROJECT)
    live = space.live_claims()
    assert len(live) == n, f"{len(live)} live claims, expected {n}"

    def claim_free() -> None:
        with space.claim("free/x", timeout=0):
            pass

    hit = claim_path(n // 2) + "/deeper" if n else "free/y"
    if n:
        assert space.find_conflict(hit) is not None
        assert space.find_conflict(claim_path(n // 2).split("/")[0]) is not None
    return {
        "claim+release (free path)": median_ms(claim_free, reps),
        "find_conflict, conflict": median_ms(lambda: space.find_conflict(hit), reps),
        "find_conflict, none": median_ms(lambda: space.find_conflict("free/y"), reps),
        "live_claims (all)": median_ms(space.live_claims, max(3, reps // 10)),
    }


def run(sizes: list[int], reps: int) -> dict[str, dict[str, dict[str, float]]]:
    results: dict[str, dict[str, dict[str, float]]] = {"file": {}, "postgresql": {}}
    spawn = multiprocessing.get_context("spawn")
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="ferrolock-claims-bench-") as work:
            mine, theirs = spawn.Pipe()
            holder = spawn.Process(target=hold_file_claims, args=(work, n, theirs))
            holder.start()
            try:
                if not mine.poll(600):
                    raise RuntimeError("file claim holder did not get ready")
                mine.recv()
                results["file"][str(n)] = measure(f"file://{work}", n, reps)
            finally:
                mine.send("stop")
                holder.join(60)
        cluster = PgCluster.create().start()
        try:
            url = cluster.url(lease="15s")
            ferrolock.connect(url)  # creates the schema
            conns = hold_pg_claims(url, n)
            try:
                results["postgresql"][str(n)] = measure(url, n, reps)
            finally:
                for conn in conns:
                    conn.close()
        finally:
            cluster.remove()
    return results


def table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    sizes = list(results["file"])
    metrics = list(next(iter(results["file"].values())))
    head = "| live claims | " + " | ".join(f"{m}: file / pg" for m in metrics) + " |"
    lines = [head, "|---|" + "---:|" * len(metrics)]
    for n in sizes:
        cells = [f"{results['file'][n][m]:.2f} / {results['postgresql'][n][m]:.2f} ms" for m in metrics]
        lines.append(f"| {int(n):,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (CI)")
    parser.add_argument("--claims", type=int, nargs="*", help="live-claim counts (default 10 1000 10000)")
    parser.add_argument("--json", metavar="FILE", help="also write raw results as JSON")
    args = parser.parse_args()
    sizes = args.claims or ([10, 300] if args.quick else [10, 1000, 10000])
    results = run(sizes, reps=5 if args.quick else 31)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
