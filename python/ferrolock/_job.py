"""``JobLockManager``: logist's job-directory lock manager with the same signatures, minus its races.

The mechanism is native (``JobLock``: kernel waits, inode verification, fork safety; the jobs-directory
layout with validated ids; a stale-lock cleanup that never removes a held lock). This class only keeps
the manager's bookkeeping of the locks it holds, behind a mutex so threads can share one manager.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from ._ferrolock import JobLock, cleanup_stale_job_locks, job_lock_path, jobs_index_lock_path
from .exceptions import WouldDeadlock

__all__ = ["JobLockManager"]


class JobLockManager:
    """Locks job directories (``<base>/<job_id>/.lock``) and the jobs index (``<base>/.jobs_index.lock``).

    The files and signatures are logist's, so old and new processes exclude each other. Differences:
    waits happen in the kernel (the lock is handed over the moment it is released) with exact timeouts;
    a job id that would escape the jobs directory raises ``InvalidName``; locking a job that the calling
    thread already holds through this manager raises ``WouldDeadlock`` at once instead of waiting out
    the timeout (another thread of the same manager waits, as a second process would); the manager may
    be shared by threads; ``cleanup_stale_locks`` never removes a lock file somebody holds.

    Args:
        base_jobs_dir: The jobs directory.
    """

    #: The class of the locks handed out (``ferrolock.compat.logist`` uses its ``FileLock``).
    lock_class: ClassVar[type[JobLock]] = JobLock

    def __init__(self, base_jobs_dir: str | os.PathLike[str]) -> None:
        self.base_jobs_dir = Path(base_jobs_dir)
        self._active_locks: dict[str, JobLock] = {}
        # Guards _active_locks only; never held while waiting for a lock.
        self._guard = threading.Lock()

    def lock_job_directory(self, job_id: str, timeout: float | None = 30.0) -> JobLock:
        """Lock a job's directory, waiting up to ``timeout`` seconds (``None``: forever; ``<= 0``: once).

        Returns:
            The held lock; ``unlock_job_directory(job_id)`` (or its ``release()``) releases it.

        Raises:
            Timeout: another process or thread held it for the whole timeout.
            WouldDeadlock: the calling thread already holds this job (through this or another lock).
            InvalidName: ``job_id`` is empty, ``.``, ``..``, or contains ``/`` or NUL.
        """
        path = self._job_lock_path(job_id)
        with self._guard:
            held = self._active_locks.get(job_id)
            if held is not None and held._held_by_current_thread():
                raise self._already_locked(job_id, path)
        lock = self._new_lock(path, timeout, f"job {job_id}")
        lock.acquire(blocking=True)  # blocking: True, or an exception (Timeout, WouldDeadlock, OSError)
        with self._guard:
            self._active_locks[job_id] = lock
        return lock

    def unlock_job_directory(self, job_id: str) -> None:
        """Release the job's lock if this manager holds it (from any thread); otherwise do nothing."""
        with self._guard:
            lock = self._active_locks.get(job_id)
            if lock is None:
                return
            lock.release()
            del self._active_locks[job_id]

    def is_job_locked(self, job_id: str) -> bool:
        """True if this manager holds the job's lock and the kernel confirms it still protects the file."""
        with self._guard:
            lock = self._active_locks.get(job_id)
        return lock is not None and lock.is_locked()

    @contextmanager
    def job_lock(self, job_id: str, timeout: float | None = 30.0) -> Iterator[JobLock]:
        """``with manager.job_lock(job_id) as lock:`` locks the job for the block."""
        lock = self.lock_job_directory(job_id, timeout)
        try:
            yield lock
        finally:
            self._unlock_if_current(job_id, lock)

    def lock_jobs_index(self, timeout: float | None = 30.0) -> JobLock:
        """Lock the jobs index. Not recorded in ``get_lock_status()``; release it with ``release()``."""
        lock = self._new_lock(Path(jobs_index_lock_path(self.base_jobs_dir)), timeout, "jobs index")
        lock.acquire(blocking=True)
        return lock

    @contextmanager
    def jobs_index_lock(self, timeout: float | None = 30.0) -> Iterator[JobLock]:
        """``with manager.jobs_index_lock():`` locks the jobs index for the block."""
        lock = self.lock_jobs_index(timeout)
        try:
            yield lock
        finally:
            lock.release()

    def cleanup_stale_locks(self, max_age_seconds: float = 3600) -> list[str]:
        """Remove job lock files (and the index lock file) untouched for more than ``max_age_seconds``
        **that nobody holds**; a held lock is kept however old it is.

        Returns:
            The names of the jobs whose lock file was removed.
        """
        return cleanup_stale_job_locks(self.base_jobs_dir, max_age_seconds)

    def get_lock_status(self) -> dict[str, Any]:
        """``{"active_locks": [job ids this manager holds], "lock_count": n}``."""
        with self._guard:
            active = [job_id for job_id, lock in self._active_locks.items() if lock._locked]
        return {"active_locks": active, "lock_count": len(active)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.base_jobs_dir)!r})"

    # Hooks: the compat module overrides these to raise logist's exception classes and messages.

    def _job_lock_path(self, job_id: str) -> Path:
        return Path(job_lock_path(self.base_jobs_dir, job_id))

    def _new_lock(self, path: Path, timeout: float | None, purpose: str) -> JobLock:
        return self.lock_class(path, timeout, purpose=purpose)

    def _already_locked(self, job_id: str, path: Path) -> Exception:
        return WouldDeadlock(
            f"job {job_id!r} is already locked by this thread through this JobLockManager ({path}); "
            "waiting for it would wait for ourselves. Unlock it first."
        )

    def _unlock_if_current(self, job_id: str, lock: JobLock) -> None:
        # Only drop the entry if it is still ours: if the block released the lock and another thread
        # has since locked the job through this manager, that thread's lock must stay held.
        with self._guard:
            if self._active_locks.get(job_id) is lock:
                del self._active_locks[job_id]
            lock.release()
