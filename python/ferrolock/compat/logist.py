"""Drop-in replacement for logist's ``logist.core.locking`` and ``JobManagerService.ensure_workspace_ready``.

Change ``from logist.core.locking import ...`` to ``from ferrolock.compat.logist import ...``: the names,
signatures, defaults, exception classes, messages and files on disk (``<jobs>/<job_id>/.lock``,
``<jobs>/.jobs_index.lock``, ``workspace/.workspace_ready``) are logist's, and processes still running the
old code exclude and are excluded by new ones. ``LockError`` subclasses the host's
``logist.job_state.JobStateError`` when logist is importable, so its ``except JobStateError`` handlers
keep working.

Differences from logist (each one a fix, or a consequence of one):

* Waiting happens in the kernel: a waiter gets the lock the moment it is released (logist polled every
  0.1 s). Timeouts use a monotonic clock and are exact (logist used the wall clock and overshot by up to
  one poll). ``timeout <= 0`` is still one attempt; ``None`` and ``math.inf`` wait forever; NaN raises
  ``ValueError`` (logist's loop never ended).
* A forked child holds nothing: its ``release()`` (or garbage collection) never releases the parent's
  lock (logist's child unlocked the shared descriptor and the parent silently lost its lock).
* ``is_locked()`` asks the kernel: it is False once the lock file was deleted or replaced under the
  holder, or the lock was dropped through a descriptor shared with a child. ``_locked`` and
  ``_lock_fd`` are read-only views of this process's hold (False/None in a forked child), and
  ``acquire()`` on an instance whose hold no longer protects the file takes the lock afresh.
* Waiting for yourself fails at once: ``lock_job_directory`` for a job the calling thread already holds
  through the same manager, or a second ``FileLock`` on a file the calling thread holds, raises
  ``LockError`` immediately ("... would deadlock") instead of after the whole timeout. A different
  thread of the same manager waits, as a second process would. (Re-entry was not chosen: logist callers
  and tests expect a second lock on a held job to fail, and a re-entrant lock would let a nested caller
  release the outer caller's lock.)
* ``JobLockManager`` may be shared by threads. ``job_lock()`` releases only its own lock on exit, and
  ``get_lock_status()`` lists only locks this process still holds.
* ``cleanup_stale_locks`` never removes a lock file somebody holds, however old (logist deleted it, and
  the next locker got a second "exclusive" lock on a new file). Unheld ones older than ``max_age_seconds``
  are still removed (safely, while holding them, relative to the job directory's descriptor) and their
  job names returned, sorted. Left alone: a ``.lock`` that holds anything but nothing or a holder record
  (it is not a lock), symlinks, non-regular files, and files with several hard links. A job directory
  that is a symlink is followed only if the symlink belongs to the calling user: logist followed any,
  so in a shared jobs directory another user's symlink could make it delete files elsewhere.
* A job id that would escape the jobs directory (``..``, ``/``, an absolute path, NUL, empty) raises
  ``LockError`` (also a ``ferrolock.InvalidName``/``ValueError``); ``try_lock_job_directory`` raises it
  instead of returning None.
* While held, a lock file holds a one-line JSON record naming the holder (logist's were empty); tools
  such as ``ferrolock status`` read it. Files are created with mode ``0o666`` minus the umask, as
  ``Path.touch()`` created them.
* Messages: the timeout text is logist's, except that an integer timeout prints as a float (``5.0s``);
  the OS error inside "Failed to acquire lock ..." names the failed step.
* ``ensure_workspace_ready(job_dir, setup, debug=False, *, timeout=None)`` is a function taking the
  setup callable (called as ``setup(job_dir, debug=debug)``, like ``self.setup_workspace``). Waiters
  wait for the setup however long it takes (logist gave up after about 1 s); on ``timeout`` it raises
  ``ferrolock.Timeout`` (an ``Exception``) with logist's message. The mutex is
  ``<job_dir>/.workspace_setup.lock``, outside the workspace, so a setup that deletes and recreates the
  workspace folder can never run twice at once; logist's ``workspace/.workspace_setup.lock`` is held too
  (excluding old processes). Both are removed after a successful setup when nobody holds them. The
  marker is written atomically, with logist's two lines. ``debug=True`` prints logist's ``[DEBUG]``
  lines except the "waiting" one.
"""

from __future__ import annotations

import importlib
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .._ferrolock import WORKSPACE_DIR, WORKSPACE_SETUP_LOCK_FILE, JobLock, run_once
from .._fleet import fleet_held, fleet_lock, left
from .._job import JobLockManager as _NativeJobLockManager
from ..exceptions import InvalidName, Timeout, WouldDeadlock
from ..exceptions import LockError as _FerrolockLockError

__all__ = [
    "FileLock",
    "JobLockManager",
    "LockError",
    "ensure_workspace_ready",
    "job_directory_lock",
    "try_lock_job_directory",
]

#: logist's file names inside ``<job_dir>/workspace`` (the folder and its setup lock's names come from
#: the core's job layout, which ``ferrolock status`` recognises them by).
WORKSPACE_READY_FILE = ".workspace_ready"
#: The real mutex of the workspace setup, beside (not inside) the folder the setup may replace.
WORKSPACE_SETUP_MUTEX_FILE = WORKSPACE_SETUP_LOCK_FILE


def _host_job_state_error() -> type[Exception]:
    """logist's ``JobStateError`` when logist is importable (its handlers catch it), else a local class."""
    try:
        module = importlib.import_module("logist.job_state")
        base = module.JobStateError
    except (ImportError, AttributeError):
        return _LocalJobStateError
    if isinstance(base, type) and issubclass(base, Exception):
        return base
    return _LocalJobStateError


class _LocalJobStateError(Exception):
    """Stands in for ``logist.job_state.JobStateError`` when logist is not installed."""


if TYPE_CHECKING:
    JobStateError = _LocalJobStateError
else:
    JobStateError = _host_job_state_error()


class LockError(JobStateError, _FerrolockLockError):
    """Custom exception for locking-related errors (logist's class; also a ``ferrolock.LockError``)."""


class _InvalidJobId(LockError, InvalidName):
    """A job id that would escape the jobs directory."""


class FileLock(JobLock):
    """logist's ``FileLock(lock_file_path, timeout=30.0)``: an exclusive lock held by this instance.

    ``acquire(blocking=True) -> bool``, ``release()``, ``is_locked()``, ``with``; attributes
    ``lock_file_path`` (a ``Path``), ``timeout`` (settable), ``_lock_fd`` and ``_locked`` (read-only).
    """

    def acquire(self, blocking: bool = True) -> bool:
        """Acquire the file lock; False only for ``blocking=False`` when someone else holds it. With
        ``FERROLOCK_URL`` set, the coordinator lock standing for the file is taken first (see
        ``ferrolock._fleet``), within the same timeout.

        Raises:
            LockError: timeout, would-deadlock, or an OS error.
        """
        gate = fleet_lock(self.lock_file_path, "logist job lock")
        if gate is None or self._held_by_current_thread():
            return self._acquire_file(blocking, None)
        timeout = self.timeout
        fleet_timeout: float
        if not blocking or (timeout is not None and timeout <= 0):
            fleet_timeout = 0.0  # one attempt, as for the file
        elif timeout is None or timeout == math.inf:
            fleet_timeout = -1.0  # forever
        else:
            fleet_timeout = timeout
        started = time.monotonic()
        try:
            gate.acquire(timeout=fleet_timeout)
        except Timeout as e:
            if not blocking:
                return False
            raise LockError(f"Lock acquisition timeout after {self.timeout}s: {self.lock_file_path}") from e
        except WouldDeadlock as e:
            raise LockError(
                f"Lock acquisition would deadlock: {self.lock_file_path} is already held by this thread "
                "through another lock object"
            ) from e
        remaining = math.inf if fleet_timeout < 0 else left(fleet_timeout, started)
        try:
            acquired = self._acquire_file(blocking, remaining)
        except BaseException:
            gate.release()
            raise
        if not acquired:
            gate.release()
        return acquired

    def _acquire_file(self, blocking: bool, timeout: float | None) -> bool:
        try:
            return self._acquire_within(blocking, timeout)
        except Timeout as e:
            raise LockError(f"Lock acquisition timeout after {self.timeout}s: {self.lock_file_path}") from e
        except WouldDeadlock as e:
            raise LockError(
                f"Lock acquisition would deadlock: {self.lock_file_path} is already held by this thread "
                "through another lock object"
            ) from e
        except OSError as e:
            raise LockError(f"Failed to acquire lock {self.lock_file_path}: {e}") from e

    def release(self) -> None:
        """Release the file lock (a no-op unless this instance holds it), then its fleet lock.

        Raises:
            LockError: the unlock failed.
        """
        held = self._held_by_current_thread()
        try:
            super().release()
        except OSError as e:
            raise LockError(f"Failed to release lock {self.lock_file_path}: {e}") from e
        finally:
            gate = fleet_lock(self.lock_file_path) if held else None
            if gate is not None:
                gate.release()


class JobLockManager(_NativeJobLockManager):
    """logist's ``JobLockManager(base_jobs_dir)``, handing out this module's ``FileLock``."""

    lock_class = FileLock

    def _job_lock_path(self, job_id: str) -> Path:
        try:
            return super()._job_lock_path(job_id)
        except InvalidName as e:
            raise _InvalidJobId(str(e)) from e

    def _already_locked(self, job_id: str, path: Path) -> Exception:
        return LockError(
            f"Lock acquisition would deadlock: job {job_id} is already locked by this thread through this "
            f"JobLockManager: {path}"
        )


@contextmanager
def job_directory_lock(job_id: str, base_jobs_dir: str, timeout: float = 30.0) -> Iterator[JobLock]:
    """Convenience context manager for locking a job directory."""
    lock_manager = JobLockManager(base_jobs_dir)
    with lock_manager.job_lock(job_id, timeout) as lock:
        yield lock


def try_lock_job_directory(job_id: str, base_jobs_dir: str, timeout: float = 5.0) -> JobLock | None:
    """Lock a job directory, waiting up to ``timeout``; None if it stayed locked. The caller releases it."""
    lock_manager = JobLockManager(base_jobs_dir)
    try:
        return lock_manager.lock_job_directory(job_id, timeout)
    except _InvalidJobId:
        raise
    except LockError:
        return None


def ensure_workspace_ready(
    job_dir: str,
    setup: Callable[..., object],
    debug: bool = False,
    *,
    timeout: float | None = None,
) -> None:
    """Run ``setup(job_dir, debug=debug)`` once for the job's workspace, across processes.

    Returns at once if ``<job_dir>/workspace/.workspace_ready`` exists. Otherwise the first caller runs
    the setup and writes the marker; concurrent callers wait for it (up to ``timeout`` seconds, default
    forever) and return without running it. If the setup raises, the exception reaches the caller that
    ran it, no marker is left, and the next caller runs the setup again.

    Raises:
        ferrolock.Timeout: ``timeout`` passed while another process was setting up.
    """
    name = os.path.basename(job_dir)
    workspace = os.path.join(job_dir, WORKSPACE_DIR)
    marker = os.path.join(workspace, WORKSPACE_READY_FILE)
    if os.path.exists(marker):
        _debug(debug, f"Workspace already ready for job: {name}")
        return

    def run_setup() -> None:
        _debug(debug, f"Setting up workspace for job: {name} (attempt 1)")
        setup(job_dir, debug=debug)

    def marker_text() -> str:
        return f"Workspace ready for job: {name}\nSetup completed at: {datetime.now().isoformat()}\n"

    mutex = os.path.join(job_dir, WORKSPACE_SETUP_MUTEX_FILE)
    try:
        # On a fleet the setup is also exclusive across hosts; the marker stays on disk, so a host
        # with its own copy of the job directory still sets up its own workspace.
        with fleet_held(mutex, -1.0 if timeout is None else timeout, "logist workspace setup") as left_over:
            ran = run_once(
                marker,
                mutex,
                run_setup,
                timeout=None if timeout is None or left_over < 0 else left_over,
                marker_text=marker_text,
                also_lock=[os.path.join(workspace, WORKSPACE_SETUP_LOCK_FILE)],
            )
    except Timeout as e:
        message = f"Failed to coordinate workspace setup for job {name}: lock acquisition timeout"
        raise Timeout(e.lock_file, e.holder, message) from e
    except Exception as e:
        _debug(debug, f"Unexpected error during workspace setup coordination: {e}")
        raise
    if ran:
        _debug(debug, f"Workspace setup completed successfully for job: {name}")
    else:
        _debug(debug, f"Workspace setup completed by another process for job: {name}")


def _debug(enabled: bool, message: str) -> None:
    if enabled:
        print(f"[DEBUG] {message}")
