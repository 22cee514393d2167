"""Helpers for the logist tests: spawn-process workers (module level, so ``spawn`` children can import
them), a minimal locker speaking logist's original fcntl protocol, and the legacy module itself, fetched
at run time from a bare mirror when ``FERROLOCK_MIRRORS`` names one (CI has none; those cases skip).

An ``impl`` argument names the implementation a worker uses: ``"ferrolock"`` for
``ferrolock.compat.logist``, or the path of the extracted legacy ``locking.py``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Any, Final

from legacy_source import LOGIST, load_module_from_file, read_legacy_file

#: Every bounded wait in these tests (joins, events) gives up after this many seconds.
DEADLINE: Final = 30.0


def extract_legacy_locking(dest: Path) -> Path | None:
    """Write logist's original ``locking.py`` (its one relative import replaced by a local stand-in) to
    ``dest`` and return its path, or None if no mirror is available."""
    shown = read_legacy_file(LOGIST)
    if shown is None:
        return None
    source = shown.decode().replace(
        "from ..job_state import JobStateError", "class JobStateError(Exception):\n    pass\n"
    )
    path = dest / "legacy_logist_locking.py"
    path.write_text(source)
    return path


def load_impl(impl: str) -> Any:
    """``ferrolock.compat.logist``, or the legacy module at path ``impl``."""
    if impl == "ferrolock":
        import ferrolock.compat.logist as compat

        return compat
    return load_module_from_file(impl, Path(impl).stem)


# --- workers (run in spawned processes) ---


def hold_job(impl: str, base: str, job_id: str, ready: Any, release: Any) -> None:
    """Lock ``job_id`` through a manager, signal ``ready``, hold until ``release`` is set."""
    mod = load_impl(impl)
    manager = mod.JobLockManager(base)
    manager.lock_job_directory(job_id, timeout=DEADLINE)
    ready.set()
    release.wait(DEADLINE)
    manager.unlock_job_directory(job_id)


def try_job(impl: str, base: str, job_id: str, timeout: float, result: Any) -> None:
    """``result.value = 1`` if ``try_lock_job_directory`` got the lock within ``timeout``, else 0."""
    mod = load_impl(impl)
    lock = mod.try_lock_job_directory(job_id, base, timeout=timeout)
    result.value = 0 if lock is None else 1
    if lock is not None:
        lock.release()


def wait_for_job(impl: str, base: str, job_id: str, waiting: Any, result: Any) -> None:
    """Block on a held job (the test inspects how this process waits), report when acquired."""
    mod = load_impl(impl)
    manager = mod.JobLockManager(base)
    waiting.set()
    manager.lock_job_directory(job_id, timeout=DEADLINE)
    result.value = 1
    manager.unlock_job_directory(job_id)


def time_out_with_frozen_wall_clock(impl: str, base: str, job_id: str, elapsed: Any) -> None:
    """Try a held job with ``timeout=0.3`` while ``time.time()`` stands still; report the real wait."""
    from unittest import mock

    mod = load_impl(impl)
    manager = mod.JobLockManager(base)
    started = time.monotonic()
    with mock.patch("time.time", return_value=1_000_000.0), contextlib.suppress(mod.LockError):
        manager.lock_job_directory(job_id, timeout=0.3)
    elapsed.value = time.monotonic() - started


def count_under_job_lock(impl: str, base: str, job_id: str, rounds: int, counter: str) -> None:
    """Increment the number in ``counter`` ``rounds`` times, each under the job lock."""
    mod = load_impl(impl)
    manager = mod.JobLockManager(base)
    for _ in range(rounds):
        with manager.job_lock(job_id, timeout=DEADLINE):
            path = Path(counter)
            value = int(path.read_text() or "0") if path.exists() else 0
            path.write_text(str(value + 1))


def legacy_protocol_hold(path: str, ready: Any, release: Any) -> None:
    """logist's FileLock protocol, written from the spec: mkdir, touch, open O_RDWR, then
    ``flock(LOCK_EX|LOCK_NB)`` retried every 0.1 s; hold until ``release``; ``LOCK_UN`` and close."""
    lock_path = Path(path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock_path.touch(exist_ok=True)
    fd = os.open(path, os.O_RDWR)
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    ready.set()
    release.wait(DEADLINE)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def legacy_protocol_try(path: str, result: Any) -> None:
    """One ``flock(LOCK_EX|LOCK_NB)`` attempt with logist's protocol: ``result.value`` 1 if it got it."""
    lock_path = Path(path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock_path.touch(exist_ok=True)
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        result.value = 0
    else:
        result.value = 1
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def hold_file_lock(path: str, ready: Any, release: Any) -> None:
    """Hold a plain ``ferrolock.FileLock`` on ``path`` until ``release``."""
    import ferrolock

    with ferrolock.FileLock(path):
        ready.set()
        release.wait(DEADLINE)


def record_setup(log: str, job_dir: str, seconds: float) -> None:
    """A workspace setup that takes ``seconds`` and notices if another setup runs at the same time:
    ``<job_dir>/setup.running`` is created exclusively while it runs."""
    running = Path(job_dir) / "setup.running"
    try:
        fd = os.open(running, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        _append(log, "overlap")
        raise
    os.close(fd)
    _append(log, f"setup {os.getpid()}")
    time.sleep(seconds)
    running.unlink()


def _append(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")


def ensure_ready(job_dir: str, log: str, seconds: float, start: Any, failures: str | None = None) -> None:
    """Call ``ensure_workspace_ready`` once start is set; append ``returned``/``raised <exc>`` to log.

    If ``failures`` names an existing file, the setup removes it and raises (a setup that fails once).
    """
    from ferrolock.compat.logist import ensure_workspace_ready

    def setup(job_dir: str, debug: bool = False) -> None:
        if failures is not None and os.path.exists(failures):
            os.unlink(failures)
            _append(log, "setup failed")
            raise RuntimeError("first setup fails")
        record_setup(log, job_dir, seconds)

    start.wait(DEADLINE)
    try:
        ensure_workspace_ready(job_dir, setup)
    except Exception as e:
        _append(log, f"raised {type(e).__name__}: {e}")
        return
    _append(log, "returned")


def ensure_ready_replacing_workspace(job_dir: str, log: str, seconds: float, deleted: Any) -> None:
    """``ensure_workspace_ready`` with a setup that deletes the workspace folder (and the legacy lock
    file in it), signals ``deleted``, and recreates the folder after ``seconds``, as logist's does."""
    import shutil

    from ferrolock.compat.logist import ensure_workspace_ready

    def setup(job_dir: str, debug: bool = False) -> None:
        workspace = Path(job_dir) / "workspace"
        shutil.rmtree(workspace, ignore_errors=True)
        deleted.set()
        record_setup(log, job_dir, seconds)
        workspace.mkdir()

    ensure_workspace_ready(job_dir, setup)
    _append(log, "returned")


def ensure_ready_until_interrupted(job_dir: str, log: str, waiting: Any) -> None:
    """Wait in ``ensure_workspace_ready`` (someone else holds the setup lock) until Ctrl-C arrives."""
    from ferrolock.compat.logist import ensure_workspace_ready

    def setup(job_dir: str, debug: bool = False) -> None:
        _append(log, "setup ran")

    try:
        waiting.set()
        ensure_workspace_ready(job_dir, setup)
    except KeyboardInterrupt:
        _append(log, "interrupted")
        return
    _append(log, "returned")
