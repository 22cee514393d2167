"""Process helpers for the scope-claim tests (spawn-safe: everything here is importable top-level).

The module under test is named by a spec string so that child processes load the same one:
``ferrolock.compat.little_loops`` by default, or a file path (the legacy little-loops module, when
``FERROLOCK_SCOPE_IMPL`` points at a copy, to check that the weakness tests fail on it).
"""

from __future__ import annotations

import errno
import fcntl
import importlib
import importlib.util
import json
import os
import sys
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from types import ModuleType
from typing import Any

from legacy_source import load_module_from_file

DEFAULT_IMPL = "ferrolock.compat.little_loops"

# Every wait in these helpers is bounded by this, so a broken test fails instead of hanging.
BOUND = 30.0


def impl_spec() -> str:
    return os.environ.get("FERROLOCK_SCOPE_IMPL", DEFAULT_IMPL)


def load_impl(spec: str) -> ModuleType:
    """The module named by ``spec``: a dotted module name, or a path to a ``.py`` file."""
    if not spec.endswith(".py"):
        return importlib.import_module(spec)
    return load_module_from_file(spec, "_scope_impl_under_test")


def hold_claim(
    spec: str,
    loops_dir: str,
    name: str,
    scope: list[str],
    conn: Connection,
    *,
    fake_pid: int | None = None,
    instance_id: str | None = None,
) -> None:
    """Child: claim ``scope`` as ``name`` (optionally recording ``fake_pid``), send the outcome, hold
    until the parent closes its end of ``conn`` (or sends anything), then release. A pipe rather than
    an Event, so that the parent can SIGKILL the holder and still clean up."""
    mod = load_impl(spec)
    if fake_pid is not None:
        os.getpid = lambda: fake_pid  # the claim records this pid (both implementations ask os.getpid)
    manager = mod.LockManager(Path(loops_dir))
    ok = manager.acquire(name, scope, instance_id=instance_id)
    conn.send(ok)
    if ok:
        conn.poll(BOUND)
        manager.release(name, instance_id=instance_id)


def claim_cycles(spec: str, loops_dir: str, name: str, scope: list[str], *, cycles: int, done: Event) -> None:
    """Child: acquire and release ``name`` ``cycles`` times as fast as it can."""
    manager = load_impl(spec).LockManager(Path(loops_dir))
    for _ in range(cycles):
        if manager.acquire(name, scope):
            manager.release(name)
    done.set()


def wait_and_report(spec: str, loops_dir: str, scope: list[str], timeout: float, conn: Connection) -> None:
    """Child: wait for ``scope`` and send ``(result, monotonic time when the wait returned)``."""
    manager = load_impl(spec).LockManager(Path(loops_dir))
    conn.send("waiting")
    result = manager.wait_for_scope(scope, timeout=timeout)
    conn.send((result, time.monotonic()))


def wait_forever(spec: str, loops_dir: str, scope: list[str], ready: Event) -> None:
    """Child: wait for ``scope`` with no deadline; the test interrupts it with SIGINT."""
    manager = load_impl(spec).LockManager(Path(loops_dir))
    try:
        ready.set()  # inside the try: a SIGINT that lands before the wait starts counts too
        result = manager.wait_for_scope(scope, timeout=10_000)
    except KeyboardInterrupt:
        sys.exit(7)
    sys.exit(3 if result else 4)  # the wait ended by itself: the scope was (or was not) free


def acquire_until_interrupted(spec: str, loops_dir: str, scope: list[str], ready: Event, *, in_log: bool) -> None:
    """Child: an acquire that must wait for the sentinel; the test interrupts it with SIGINT. With
    ``in_log``, ``ready`` is set from inside the log call the wait makes (through pyo3-log), so the
    signal lands while Python's logging code runs there."""
    import logging

    class Trap(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("waiting for"):
                ready.set()
                time.sleep(1)

    if in_log:
        logger = logging.getLogger("ferrolock.lock")
        logger.setLevel(logging.DEBUG)
        logger.addHandler(Trap())
    manager = load_impl(spec).LockManager(Path(loops_dir))
    try:
        if not in_log:
            ready.set()
        manager.acquire("stuck", scope)
    except KeyboardInterrupt:
        sys.exit(7)
    sys.exit(0)


# --- A minimal legacy little-loops writer, written from the protocol spec -------------------------
# (the `.acquire.lock` sentinel, `<name>.lock` JSON records written in place, pid-based liveness);
# used to show that ferrolock and un-upgraded processes exclude each other.


def legacy_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno != errno.ESRCH
    return True


def legacy_conflict(running: Path, scope: list[str]) -> dict[str, Any] | None:
    """The legacy check: every top-level ``*.lock``, live by pid, overlapping lexically."""
    for record in running.glob("*.lock"):
        try:
            data = json.loads(record.read_text())
            pid, lock_scope = int(data["pid"]), data["scope"]
        except (json.JSONDecodeError, KeyError, FileNotFoundError):
            continue
        if not legacy_alive(pid):
            continue
        for mine in scope:
            for theirs in lock_scope:
                a, b = Path(mine), Path(theirs)
                if a == b or a.is_relative_to(b) or b.is_relative_to(a):
                    return dict(data)
    return None


def legacy_acquire(loops_dir: Path, name: str, scope: list[str]) -> bool:
    running = loops_dir / ".running"
    running.mkdir(parents=True, exist_ok=True)
    scope = [str(Path(p).resolve()) for p in scope]
    with open(running / ".acquire.lock", "w") as sentinel:
        fcntl.flock(sentinel, fcntl.LOCK_EX)
        if legacy_conflict(running, scope) is not None:
            return False
        record = {"loop_name": name, "scope": scope, "pid": os.getpid(), "started_at": "2026-01-01T00:00:00+00:00"}
        with open(running / f"{name}.lock", "w") as f:
            json.dump(record, f)
    return True


def legacy_hold(loops_dir: str, name: str, scope: list[str], conn: Connection) -> None:
    """Child: a legacy process. Acquire, report, then obey commands: "release", "exit"."""
    ok = legacy_acquire(Path(loops_dir), name, scope)
    conn.send(ok)
    while conn.poll(BOUND):
        try:
            command = conn.recv()
        except EOFError:
            return
        if command == "release":
            (Path(loops_dir) / ".running" / f"{name}.lock").unlink(missing_ok=True)
            conn.send("released")
        elif command == "exit":
            return


def legacy_hold_sentinel(loops_dir: str, conn: Connection) -> None:
    """Child: a legacy process inside its check-and-write section (holding the sentinel) until told."""
    running = Path(loops_dir) / ".running"
    running.mkdir(parents=True, exist_ok=True)
    with open(running / ".acquire.lock", "w") as sentinel:
        fcntl.flock(sentinel, fcntl.LOCK_EX)
        conn.send("holding")
        conn.poll(BOUND)
    conn.send("released")


def legacy_try(loops_dir: str, name: str, scope: list[str], conn: Connection) -> None:
    """Child: a legacy process's acquire attempt; reports the outcome and any conflict it saw."""
    running = Path(loops_dir) / ".running"
    seen = legacy_conflict(running, [str(Path(p).resolve()) for p in scope]) if running.exists() else None
    conn.send((legacy_acquire(Path(loops_dir), name, scope), seen))
