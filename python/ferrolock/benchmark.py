"""``ferrolock bench``: ferrolock against ``fcntl.flock`` and the libraries users would pick instead.

Every number comes from real processes on this machine in one run. The floor is a blocking
``fcntl.flock``: the kernel's own hand-off with no library around it. Each metric is run for every
library in the same way; the table gives ferrolock's ratio to the floor and the design targets.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from . import _bench_adapters as adapters

SPAWN = multiprocessing.get_context("spawn")
ROUNDS = 4  # interleaved rounds of hand-off measurements


@dataclass
class Settings:
    cycles: int = 200_000  # uncontended acquire+release cycles
    wakeups: int = 120  # hand-off samples per library
    fairness_seconds: float = 3.0
    timeouts: int = 20
    kills: int = 15

    @classmethod
    def quick(cls) -> Settings:
        return cls(cycles=5_000, wakeups=8, fairness_seconds=0.5, timeouts=4, kills=3)


@dataclass
class Results:
    libs: list[str]
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    def put(self, metric: str, lib: str, value: Any) -> None:
        self.rows.setdefault(metric, {})[lib] = value


# --- workers (run in spawned processes) ----------------------------------------------------------


def _waiter(key: str, path: str, conn: Connection, samples: int) -> None:
    lock = adapters.make(key, path)
    for _ in range(samples):
        conn.recv()  # "go": the holder has the lock
        conn.send("waiting")
        lock.acquire(None)
        got = time.monotonic()
        lock.release()
        conn.send(got)


def _holder(key: str, path: str, conn: Connection) -> None:
    lock = adapters.make(key, path)
    lock.acquire(None)
    conn.send("held")
    conn.recv()  # never answered: the parent SIGKILLs us


def _timed_waiter(key: str, path: str, conn: Connection, timeout: float, samples: int) -> None:
    lock = adapters.make(key, path)
    for _ in range(samples):
        start = time.monotonic()
        got = lock.acquire(timeout)
        conn.send((time.monotonic() - start, got))
        if got:
            lock.release()


def _contender(key: str, path: str, start_at: float, stop_at: float, conn: Connection) -> None:
    lock = adapters.make(key, path)
    count, longest = 0, 0.0
    while time.monotonic() < start_at:
        time.sleep(0.0005)
    while time.monotonic() < stop_at:
        want = time.monotonic()
        lock.acquire(None)
        longest = max(longest, time.monotonic() - want)
        _spin(0.0001)  # critical section
        lock.release()
        count += 1
        _spin(0.0001)  # work outside the lock
    conn.send((count, longest))


def _fork_then_child_releases(key: str, path: str, conn: Connection) -> None:
    lock = adapters.make(key, path)
    lock.acquire(None)
    pid = os.fork()
    if pid == 0:
        try:
            lock.release()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    conn.send("forked")
    conn.recv()


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


# --- metrics ---------------------------------------------------------------------------------------


def uncontended(key: str, path: str, cycles: int) -> float:
    lock = adapters.make(key, path)
    timeout = None if key == "floor" else -1.0
    lock.acquire(None if key == "floor" else timeout)
    lock.release()
    start = time.perf_counter()
    for _ in range(cycles):
        lock.acquire(None)
        lock.release()
    return (time.perf_counter() - start) / cycles * 1e6


def wakeup(key: str, path: str, samples: int) -> list[float]:
    """Hand-off latency: the holder releases at t0, the waiter (another process) has it at t1."""
    lock = adapters.make(key, path)
    parent, child = SPAWN.Pipe()
    proc = SPAWN.Process(target=_waiter, args=(key, path, child, samples))
    proc.start()
    latencies = []
    try:
        for _ in range(samples):
            lock.acquire(None)
            parent.send("go")
            assert parent.recv() == "waiting"
            time.sleep(random.uniform(0.01, 0.03))  # the waiter is now asleep (or between polls)
            t0 = time.monotonic()
            lock.release()
            latencies.append(parent.recv() - t0)
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    return latencies


def fairness(key: str, path: str, seconds: float, workers: int = 4) -> tuple[list[int], float]:
    start_at = time.monotonic() + 1.0  # all four are running before anyone starts
    stop_at = start_at + seconds
    pipes, procs = [], []
    for _ in range(workers):
        parent, child = SPAWN.Pipe()
        proc = SPAWN.Process(target=_contender, args=(key, path, start_at, stop_at, child))
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    counts, longest = [], 0.0
    for parent, proc in zip(pipes, procs, strict=True):
        count, worst = parent.recv()
        counts.append(count)
        longest = max(longest, worst)
        proc.join(30)
    return counts, longest


def timeout_overshoot(key: str, path: str, samples: int, timeout: float = 0.05) -> list[float]:
    holder = adapters.make(key, path)
    holder.acquire(None)
    parent, child = SPAWN.Pipe()
    proc = SPAWN.Process(target=_timed_waiter, args=(key, path, child, timeout, samples))
    proc.start()
    overshoots = []
    try:
        for _ in range(samples):
            took, got = parent.recv()
            if got:
                raise RuntimeError(f"{key}: acquired a held lock")
            overshoots.append(took - timeout)
    finally:
        proc.join(30)
        holder.release()
    return overshoots


def kill_handoff(key: str, path: str, samples: int) -> list[float]:
    """SIGKILL the holder at t0; the waiting process has the lock at t1."""
    latencies = []
    for _ in range(samples):
        hp, hc = SPAWN.Pipe()
        holder = SPAWN.Process(target=_holder, args=(key, path, hc))
        holder.start()
        assert hp.recv() == "held"
        wp, wc = SPAWN.Pipe()
        waiter = SPAWN.Process(target=_waiter, args=(key, path, wc, 1))
        waiter.start()
        wp.send("go")
        assert wp.recv() == "waiting"
        time.sleep(random.uniform(0.01, 0.03))
        t0 = time.monotonic()
        os.kill(holder.pid or 0, signal.SIGKILL)
        latencies.append(wp.recv() - t0)
        waiter.join(30)
        holder.join(30)
    return latencies


def fork_release(key: str, path: str) -> str:
    """Does a forked child's release() free the parent's lock?"""
    parent, child = SPAWN.Pipe()
    proc = SPAWN.Process(target=_fork_then_child_releases, args=(key, path, child))
    proc.start()
    try:
        assert parent.recv() == "forked"
        probe = adapters.PollingFlock(path)
        stolen = probe.acquire(0.0)
        if stolen:
            probe.release()
        return "parent LOST" if stolen else "ok"
    finally:
        proc.kill()
        proc.join(30)


# --- driver ------------------------------------------------------------------------------------------


def run(settings: Settings, libs: list[str], progress: Any = None) -> Results:
    results = Results(libs)
    work = tempfile.mkdtemp(prefix="ferrolock-bench-")

    def path(tag: str, key: str) -> str:
        return str(Path(work) / f"{tag}-{key}.lock")

    def step(label: str) -> None:
        if progress is not None:
            progress(label)

    # Latencies are measured in interleaved rounds (every library once per round), so a burst of
    # noise from the rest of the machine lands on all of them rather than on whichever ran then.
    rounds = ROUNDS if settings.wakeups >= ROUNDS else 1
    for key in libs:
        step(f"{key}: uncontended")
        results.put("uncontended", key, uncontended(key, path("u", key), settings.cycles))
    for r in range(rounds):
        for key in libs:
            step(f"{key}: hand-off (round {r + 1}/{rounds})")
            samples = wakeup(key, path("w", key), settings.wakeups // rounds)
            results.rows.setdefault("wakeup", {}).setdefault(key, []).extend(samples)
    for key in libs:
        step(f"{key}: fairness")
        results.put("fairness", key, fairness(key, path("f", key), settings.fairness_seconds))
        if key != "floor":
            step(f"{key}: timeouts")
            results.put("timeout", key, timeout_overshoot(key, path("t", key), settings.timeouts))
        step(f"{key}: SIGKILL")
        results.put("kill", key, kill_handoff(key, path("k", key), settings.kills))
        step(f"{key}: fork")
        results.put("fork", key, fork_release(key, path("x", key)))
    return results


def _p99(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=100)[98] if len(xs) >= 2 else xs[0]


def _fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def summarize(results: Results) -> dict[str, dict[str, str]]:
    """Human-readable cells: metric -> library -> text."""
    cells: dict[str, dict[str, str]] = {}
    for key in results.libs:
        r: dict[str, Any] = {
            m: results.rows.get(m, {}).get(key) for m in ("uncontended", "wakeup", "fairness", "timeout", "kill")
        }
        counts, longest = r["fairness"]
        cells.setdefault("uncontended acquire+release", {})[key] = f"{r['uncontended']:.2f} us"
        w = r["wakeup"]
        cells.setdefault("wake-up after release, median / p99", {})[key] = (
            f"{_fmt_time(statistics.median(w))} / {_fmt_time(_p99(w))}"
        )
        share = min(counts) / max(counts) if max(counts) else 0.0
        cells.setdefault("fairness, 4 workers: min/max share, longest wait", {})[key] = (
            f"{share:.2f}, {_fmt_time(longest)}"
        )
        t = r["timeout"]
        cells.setdefault("timeout 50 ms: overshoot median / max (early?)", {})[key] = (
            "n/a (no timeout)"
            if t is None
            else f"{_fmt_time(statistics.median(t))} / {_fmt_time(max(t))}" + (" EARLY" if min(t) < 0 else "")
        )
        k = r["kill"]
        cells.setdefault("holder SIGKILLed -> waiter has lock, median / max", {})[key] = (
            f"{_fmt_time(statistics.median(k))} / {_fmt_time(max(k))}"
        )
        cells.setdefault("fork, child calls release()", {})[key] = results.rows["fork"][key]
    return cells


TARGETS = {
    "uncontended acquire+release": "<= 3 us",
    "wake-up after release, median / p99": "<= 2x floor / <= 1 ms",
    "fairness, 4 workers: min/max share, longest wait": ">= 0.8, <= 100 ms",
    "timeout 50 ms: overshoot median / max (early?)": "never early, <= 5 ms",
    "holder SIGKILLed -> waiter has lock, median / max": "<= 2 ms",
    "fork, child calls release()": "ok",
}


def markdown(results: Results) -> str:
    cells = summarize(results)
    names = [adapters.ADAPTERS[k].name for k in results.libs]
    lines = [
        "| metric | " + " | ".join(names) + " | ferrolock / floor | target |",
        "|---" * (len(names) + 3) + "|",
    ]
    for metric, row in cells.items():
        ratio = _ratio(results, metric)
        lines.append(f"| {metric} | " + " | ".join(row[k] for k in results.libs) + f" | {ratio} | {TARGETS[metric]} |")
    return "\n".join(lines)


def _ratio(results: Results, metric: str) -> str:
    rows = results.rows
    if "floor" not in results.libs or "ferrolock" not in results.libs:
        return ""
    if metric.startswith("uncontended"):
        return f"{rows['uncontended']['ferrolock'] / rows['uncontended']['floor']:.1f}x"
    if metric.startswith("wake-up"):
        f, b = rows["wakeup"]["ferrolock"], rows["wakeup"]["floor"]
        return f"{statistics.median(f) / statistics.median(b):.1f}x / {_p99(f) / _p99(b):.1f}x"
    if metric.startswith("holder SIGKILLed"):
        f, b = rows["kill"]["ferrolock"], rows["kill"]["floor"]
        return f"{statistics.median(f) / statistics.median(b):.1f}x"
    return ""


def main(quick: bool = False, json_path: str | None = None, plot_path: str | None = None) -> int:
    settings = Settings.quick() if quick else Settings()
    libs = adapters.available()
    with _progress_reporter(len(libs) * (5 + ROUNDS)) as progress:
        results = run(settings, libs, progress)
    print(f"ferrolock bench ({'quick' if quick else 'full'}; {os.cpu_count()} CPUs, Python {sys.version.split()[0]})")
    print()
    print(markdown(results))
    if json_path:
        Path(json_path).write_text(json.dumps({"settings": settings.__dict__, "rows": results.rows}, indent=1))
    if plot_path:
        from ._bench_plot import plot

        plot(results, plot_path)
        print(f"\nplot written to {plot_path}")
    return 0


@contextlib.contextmanager
def _progress_reporter(steps: int) -> Iterator[Callable[[str], None]]:
    """A progress bar on stderr (rich) when it is a terminal and rich is installed; else timestamped lines."""
    started = time.monotonic()
    try:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:
        rich_available = False
    else:
        rich_available = True
    if not rich_available or not sys.stderr.isatty():

        def line(label: str) -> None:
            print(f"[{time.monotonic() - started:6.1f} s] {label}", file=sys.stderr, flush=True)

        yield line
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("bench", total=steps)
        first = True

        def advance(label: str) -> None:
            nonlocal first
            bar.update(task, description=label, advance=0 if first else 1)
            first = False

        yield advance
