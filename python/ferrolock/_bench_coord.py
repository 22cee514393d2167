"""The coordinator benchmark (``ferrolock bench --url URL``): ferrolock's PostgreSQL backend against the
server's own floor and against what users would pick instead, on one server, in one run, as ratios.

* floor: raw ``pg_advisory_lock``/``pg_advisory_unlock`` through the same Rust client ferrolock uses
  (``postgres`` crate, one round trip each), nothing else: the best any library on this client can do;
* ferrolock: ``ferrolock.connect(url).lock(name)`` (holder row, exact name mapping, lease settings);
* tooz (if installed): OpenStack tooz's PostgreSQL driver (psycopg2; blocking waits use ``pg_advisory_lock``);
* poll loop: ``pg_try_advisory_lock`` every 10 ms through the same Rust client, what hand-written code does.

Metrics: uncontended acquire+release; hand-off to a waiter blocked in the server (median, p99);
holder SIGKILLed to the next holder; holder SIGSTOPped past its lease to the next holder (ferrolock only:
the others never free a paused holder's lock).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import statistics
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["lease_of", "run", "table"]

SPAWN = multiprocessing.get_context("spawn")
KEY = 4242


class Adapter:
    """``acquire()`` blocks until held, ``release()`` gives it back."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        if kind == "ferrolock":
            import ferrolock

            self.lock: Any = ferrolock.connect(url).lock("bench/lock")
        elif kind in ("floor", "poll"):
            from ferrolock._ferrolock import _RawAdvisory

            self.raw = _RawAdvisory(url)
        elif kind == "tooz":
            from tooz import coordination

            dsn = url.split("?", maxsplit=1)[0]
            self.coord = coordination.get_coordinator(dsn, b"bench-" + str(os.getpid()).encode())
            self.coord.start()
            self.lock = self.coord.get_lock(b"bench/lock")

    def acquire(self) -> None:
        if self.kind == "ferrolock":
            self.lock.acquire()
        elif self.kind == "floor":
            self.raw.lock(KEY)
        elif self.kind == "poll":
            while not self.raw.try_lock(KEY):
                time.sleep(0.01)
        else:
            self.lock.acquire(blocking=True)

    def release(self) -> None:
        if self.kind in ("floor", "poll"):
            self.raw.unlock(KEY)
        else:
            self.lock.release()


def _waiter(kind: str, url: str, conn: Connection, samples: int) -> None:
    lock = Adapter(kind, url)
    conn.send("ready")
    for _ in range(samples):
        conn.recv()
        conn.send("waiting")
        lock.acquire()
        got = time.monotonic()
        lock.release()
        conn.send(got)


def _holder(kind: str, url: str, conn: Connection) -> None:
    lock = Adapter(kind, url)
    lock.acquire()
    conn.send("held")
    conn.recv()  # never answered: the parent kills or stops us


def uncontended(kind: str, url: str, cycles: int) -> float:
    lock = Adapter(kind, url)
    lock.acquire()
    lock.release()
    start = time.perf_counter()
    for _ in range(cycles):
        lock.acquire()
        lock.release()
    return (time.perf_counter() - start) / cycles


def handoff(kind: str, url: str, samples: int) -> list[float]:
    lock = Adapter(kind, url)
    mine, theirs = SPAWN.Pipe()
    p = SPAWN.Process(target=_waiter, args=(kind, url, theirs, samples))
    p.start()
    assert mine.recv() == "ready"
    out = []
    for _ in range(samples):
        lock.acquire()
        mine.send("go")
        mine.recv()
        time.sleep(0.02)  # the waiter is now blocked in the server
        released = time.monotonic()
        lock.release()
        out.append(mine.recv() - released)
    p.join(30)
    return out


def to_next_holder(kind: str, url: str, sig: signal.Signals) -> float:
    mine, theirs = SPAWN.Pipe()
    p = SPAWN.Process(target=_holder, args=(kind, url, theirs))
    p.start()
    assert mine.recv() == "held"
    waiter = Adapter(kind, url)
    result: list[float] = []

    def wait() -> None:
        waiter.acquire()
        result.append(time.monotonic())

    t = threading.Thread(target=wait, daemon=True)
    t.start()
    time.sleep(0.2)
    hit = time.monotonic()
    os.kill(p.pid, sig)  # type: ignore[arg-type]
    t.join(60)
    if sig == signal.SIGSTOP:
        os.kill(p.pid, signal.SIGKILL)  # type: ignore[arg-type]
    p.join(30)
    waiter.release()
    return result[0] - hit if result else float("nan")


def run(url: str, quick: bool) -> dict[str, Any]:
    """Every metric for every contender on the server at ``url``, interleaved in one run."""
    cycles, samples, kills = (200, 10, 2) if quick else (2000, 120, 10)
    kinds = ["floor", "ferrolock", "poll"]
    try:
        import tooz  # noqa: F401

        kinds.append("tooz")
    except ImportError:
        print("tooz is not installed: skipping it", file=sys.stderr)
    results: dict[str, dict[str, float]] = {k: {} for k in kinds}
    for kind in kinds:
        results[kind]["uncontended_ms"] = uncontended(kind, url, cycles if kind != "tooz" else cycles // 2) * 1e3
    for kind in kinds:
        samples_k = samples if kind != "poll" else max(samples // 4, 5)
        h = sorted(handoff(kind, url, samples_k))
        results[kind]["handoff_median_ms"] = statistics.median(h) * 1e3
        results[kind]["handoff_p99_ms"] = h[min(len(h) - 1, int(len(h) * 0.99))] * 1e3
    for kind in kinds:
        crash = [to_next_holder(kind, url, signal.SIGKILL) for _ in range(kills)]
        results[kind]["crash_to_next_ms"] = statistics.median(crash) * 1e3
    results["ferrolock"]["paused_to_next_s"] = to_next_holder("ferrolock", url, signal.SIGSTOP)
    return results


def table(results: dict[str, dict[str, float]], lease: str) -> str:
    """The results as a Markdown table, with ratios to the floor; ``lease`` labels the paused-holder row."""
    floor = results["floor"]
    metrics = [
        ("uncontended acquire+release", "uncontended_ms", "ms"),
        ("hand-off median", "handoff_median_ms", "ms"),
        ("hand-off p99", "handoff_p99_ms", "ms"),
        ("holder SIGKILLed -> next holder", "crash_to_next_ms", "ms"),
    ]
    kinds = list(results)
    lines = ["| metric | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
    for label, key, unit in metrics:
        cells = []
        for k in kinds:
            v = results[k].get(key)
            if v is None:
                cells.append("-")
            elif k == "floor":
                cells.append(f"{v:.3f} {unit}")
            else:
                cells.append(f"{v:.3f} {unit} ({v / floor[key]:.2f}x)")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    paused = results["ferrolock"]["paused_to_next_s"]
    lines.append(
        f"| holder SIGSTOPped -> next holder (lease {lease}) | never | {paused:.2f} s | never | "
        + ("never |" if "tooz" in results else "")
    )
    return "\n".join(lines)


def lease_of(url: str) -> str:
    """The lease a ``postgresql://`` URL asks for (the coordinator's default when it names none)."""
    return parse_qs(urlsplit(url).query).get("lease", ["15s"])[-1]
