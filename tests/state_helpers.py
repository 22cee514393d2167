"""Worker functions for the state-file tests. They live in an importable module so that
``multiprocessing`` spawn children can find them, and each one reports through a queue or its exit code."""

from __future__ import annotations

import fcntl
import hashlib
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Iterable
from multiprocessing.synchronize import Event
from typing import Any

SPAWN = multiprocessing.get_context("spawn")
JOIN_DEADLINE = 60.0


def run_all(target: Any, args_list: Iterable[tuple[Any, ...]], deadline: float = JOIN_DEADLINE) -> list[int]:
    """Start one spawned process per argument tuple, join them all within ``deadline`` seconds (killing
    stragglers), and return their exit codes."""
    procs = [SPAWN.Process(target=target, args=args) for args in args_list]
    for p in procs:
        p.start()
    codes = []
    for p in procs:
        p.join(deadline)
        if p.is_alive():
            p.kill()
            p.join(5)
        codes.append(p.exitcode if p.exitcode is not None else -999)
        p.close()
    return codes


def increment(path: str, times: int) -> None:
    """Locked read-modify-write of a decimal counter, ``times`` times."""
    import ferrolock

    state = ferrolock.StateFile(path, backup_path=path + ".bak")
    for _ in range(times):
        with state.edit(timeout=30) as draft:
            draft.text = str(int(draft.text or "0") + 1)


def versioned_payload(writer: int, version: int, size: int) -> bytes:
    """A self-checking payload: a header naming its length and hash, then the body. A reader that sees
    a mix of two versions (or a truncated file) cannot make the header match."""
    body = (f"{writer}:{version}:".encode() * (size // 8 + 1))[:size]
    digest = hashlib.sha256(body).hexdigest()
    return f"{len(body)} {digest}\n".encode() + body


def payload_is_whole(data: bytes) -> bool:
    header, _, body = data.partition(b"\n")
    length, _, digest = header.decode().partition(" ")
    return len(body) == int(length) and hashlib.sha256(body).hexdigest() == digest


def write_versions(path: str, writer: int, versions: int, size: int, started: Event) -> None:
    import ferrolock

    state = ferrolock.StateFile(path, backup_path=path + ".bak")
    started.wait(JOIN_DEADLINE)
    for version in range(versions):
        state.write(versioned_payload(writer, version, size), timeout=30)


def read_until(path: str, stop: Event, results: Any) -> None:
    """Reads without any lock until ``stop`` is set; reports (reads, torn) through ``results``."""
    import ferrolock

    state = ferrolock.StateFile(path)
    reads = torn = 0
    while not stop.is_set():
        data = state.read()
        if data is None:
            continue
        reads += 1
        try:
            whole = payload_is_whole(data)
        except ValueError:
            whole = False
        torn += not whole
    results.put((reads, torn))


def hold_flock_until(lock_path: str, ready: Event, release: Event) -> None:
    """A legacy-style holder: plain ``fcntl.flock`` on the lock file, as BlackBox5 and shell
    ``flock(1)`` users do."""
    with open(lock_path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        ready.set()
        release.wait(JOIN_DEADLINE)


def run_python(code: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Runs ``code`` in a fresh interpreter (the fault points are process-global, and a crash kills it)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
