"""Processes of the legacy tools on a fleet: each "host" is a process with its own working tree (its
own disk) and its own ``FERROLOCK_ROOT``, sharing one coordinator through ``FERROLOCK_URL``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from process_helpers import START_DEADLINE


def host_env(url: str | None, root: Path) -> dict[str, str]:
    """The environment of a process on the host whose tree is ``root`` (no coordinator if ``url`` is None)."""
    env = {k: v for k, v in os.environ.items() if k not in {"FERROLOCK_URL", "FERROLOCK_ROOT"}}
    if url is not None:
        env["FERROLOCK_URL"] = url
        env["FERROLOCK_ROOT"] = str(root)
    return env


def run_on(url: str | None, root: Path, code: str) -> str:
    """Run ``code`` in a new process on host ``root`` (cwd ``root``); its stdout."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env=host_env(url, root),
        capture_output=True,
        text=True,
        timeout=START_DEADLINE * 4,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@contextmanager
def holding_on(url: str | None, root: Path, code: str) -> Iterator[subprocess.Popen[str]]:
    """Run ``code`` (which takes a lock, prints ``held`` and waits for stdin to close) on host ``root``
    until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=root,
        env=host_env(url, root),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == "held", f"the holder said {line!r}"
        yield proc
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(START_DEADLINE)
        finally:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


LOGIST_HOLD = """
import sys
from ferrolock.compat.logist import JobLockManager
lock = JobLockManager("jobs").lock_job_directory("j1", 5)
print("held", flush=True)
sys.stdin.read()
lock.release()
"""

LOGIST_TRY = """
from ferrolock.compat.logist import try_lock_job_directory
lock = try_lock_job_directory("j1", "jobs", 0.3)
print("busy" if lock is None else "got")
"""

LOGIST_LOOP = """
import os, sys
from ferrolock.compat.logist import job_directory_lock
log = sys.argv[1] if len(sys.argv) > 1 else os.environ["FLEET_LOG"]
for _ in range(int(os.environ["FLEET_ROUNDS"])):
    with job_directory_lock("j1", "jobs", timeout=60):
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, f"in {os.getpid()}\\n".encode())
        os.write(fd, f"out {os.getpid()}\\n".encode())
        os.close(fd)
"""

TODO2_HOLD = """
import sys
from ferrolock.compat.todo2.file_lock import task_lock
with task_lock("T1", timeout=5):
    print("held", flush=True)
    sys.stdin.read()
"""

TODO2_TRY = """
from ferrolock.compat.todo2.file_lock import try_lock_task
lock = try_lock_task("T1", timeout=0.3)
print("busy" if lock is None else "got")
"""

BLACKBOX5_HOLD = """
import sys
from ferrolock.compat.blackbox5 import StateManager
manager = StateManager("STATE.md")
with manager._lock_state(timeout=5):
    print("held", flush=True)
    sys.stdin.read()
"""

BLACKBOX5_TRY = """
from ferrolock.compat.blackbox5 import StateManager
try:
    with StateManager("STATE.md", max_retries=1)._lock_state(timeout=0.3):
        print("got")
except RuntimeError as exc:
    print("busy" if "locked by another process" in str(exc) else f"error {exc}")
"""

LITTLE_LOOPS_HOLD = """
import sys
from ferrolock.compat.little_loops import LockManager
manager = LockManager()
assert manager.acquire("refactor", ["src"])
print("held", flush=True)
sys.stdin.read()
manager.release("refactor")
"""

LITTLE_LOOPS_TRY = """
from ferrolock.compat.little_loops import LockManager
manager = LockManager()
got = manager.acquire("docs-pass", ["src/api"])
print("got" if got else "busy")
"""
