"""Drop-in for todo2/exarp's ``project_management_automation.utils.file_lock``.

Same names, signatures, defaults, return values and messages: ``FileLock(lock_file, timeout=10.0,
poll_interval=0.1)`` whose ``acquire()`` returns ``True``/``False``, ``task_lock``, ``state_file_lock``,
``try_lock_task`` and ``HAS_WINDOWS_LOCK``, on the same lock files (``<root>/.todo2/locks/task_<id>.lock``
and ``<root>/.todo2/state.todo2.json.lock``, both ``flock(2)``), so legacy processes and ferrolock
processes exclude each other during a migration.

Differences from the legacy module:

* Waiting happens in the kernel: the lock is taken the moment its holder releases it (the legacy code
  polled every ``poll_interval``, which is accepted and kept as an attribute but not used), and a
  timeout is measured on the monotonic clock. ``timeout`` is still the budget: ``acquire()`` returns
  ``False`` when it runs out. A NaN timeout raises ``ValueError`` (the legacy code waited forever).
* Only contention means "busy". Any other error (a directory or a symlink where the lock file should
  be, no permission, a missing filesystem) raises ``OSError`` with errno and filename; the legacy code
  logged it and returned ``False`` as if the lock were held.
* Lock files are never followed through symbolic links (``O_NOFOLLOW``), so a planted link cannot make
  a lock create or open its target. New lock files get mode ``0o666`` minus the umask (legacy:
  ``0o777`` minus the umask, i.e. executable). The holder of a lock writes a one-line JSON holder
  record into the lock file (pid, host, since, purpose), shown by ``ferrolock status``.
* ``acquire()`` on an instance this thread already holds returns ``True`` at once (the legacy code
  leaked the descriptor and then blocked on itself until the timeout); ``release()`` releases it
  completely. ``release()`` by a thread that does not hold the lock does nothing.
* ``lock_fd`` is ``-1`` (not ``None``) while held: the descriptor belongs to the Rust core, and handing
  it out would let a caller close or unlock it behind the core's back. It is read-only.
* After ``fork()`` the child holds nothing: its ``release()``, ``del`` or garbage collection never
  releases the parent's lock (the legacy ``__del__`` did ``LOCK_UN`` on the shared descriptor).
* Task ids are validated before they become file names: ``/``, NUL, ``.``/``..`` and over-long ids raise
  ``ferrolock.InvalidName`` (a ``ValueError``) instead of creating directories or escaping
  ``.todo2/locks/``.
* A ``task_lock``/``state_file_lock`` timeout raises ``TaskLockTimeout``, which is a ``RuntimeError``
  with the legacy message and also a ``TimeoutError``, as the legacy documentation promised.
* The project root is looked up once per call and cached per working directory (see
  ``project_root``).
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Literal

from ..._ferrolock import (
    LOCK_SUFFIX,
    TODO2_DIR,
    TODO2_LOCKS_DIR,
    TODO2_STATE_LOCK_FILE,
    TODO2_TASK_LOCK_PREFIX,
    _check_timeout,
    validate_name,
)
from ..._ferrolock import FileLock as _NativeLock
from ..._fleet import fleet_lock, left
from ...exceptions import Timeout

__all__ = [
    "HAS_WINDOWS_LOCK",
    "FileLock",
    "TaskLockTimeout",
    "state_file_lock",
    "task_lock",
    "try_lock_task",
]

logger = logging.getLogger(__name__)

#: The legacy module's Windows switch. Like the legacy module (whose top-level ``import fcntl`` fails on
#: Windows), this one runs on POSIX only, so it is always ``False``.
HAS_WINDOWS_LOCK = False

# rw for everyone, minus the umask: what open() gives a data file.
_LOCK_FILE_MODE = 0o666
# `lock_fd` while held: not a descriptor anyone may use (see the module docstring).
_HELD_MARKER = -1


class TaskLockTimeout(RuntimeError, TimeoutError):
    """``task_lock``/``state_file_lock`` could not take the lock in time. A ``RuntimeError`` with the
    legacy message (``Failed to acquire lock for task <id>``), and a ``TimeoutError`` too."""


class FileLock:
    """A cross-process lock on ``lock_file`` with the legacy ``acquire() -> bool`` interface.

    Attributes:
        lock_file: The lock file's path.
        timeout: Seconds ``acquire()`` waits before giving up (settable; ``<= 0`` means one attempt).
        poll_interval: Kept for compatibility; ferrolock waits in the kernel and never polls.
        is_windows: Always ``False``.
    """

    def __init__(self, lock_file: Path | str, timeout: float = 10.0, poll_interval: float = 0.1) -> None:
        self.lock_file = Path(lock_file)
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.is_windows = platform.system() == "Windows"
        self._native = _native_lock(self.lock_file, None)

    @property
    def lock_fd(self) -> int | None:
        """``None`` when this object holds nothing; ``-1`` (an unusable descriptor) while held."""
        return _HELD_MARKER if self._native.is_locked else None

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock: ``True`` once held, ``False`` if someone else holds it (at once when not
        ``blocking``, otherwise after ``timeout`` seconds).

        Raises:
            OSError: the lock file cannot be opened or locked for a reason other than contention.
        """
        native = self._native
        if native.lock_counter:
            return True  # this thread holds it already
        timeout = _check_timeout(self.timeout)  # NaN is a ValueError, as in every ferrolock API
        wait = timeout if blocking and timeout > 0 else 0.0
        # On a fleet (FERROLOCK_URL), the coordinator lock standing for the file comes first.
        gate = fleet_lock(self.lock_file, "todo2")
        started = time.monotonic()
        try:
            if gate is not None:
                gate.acquire(timeout=wait)
            try:
                native.acquire(timeout=wait if gate is None else left(wait, started))
            except BaseException:
                if gate is not None:
                    gate.release()
                raise
        except Timeout:
            if blocking:
                logger.warning(f"Lock timeout after {self.timeout}s: {self.lock_file}")
            return False
        logger.debug(f"Lock acquired: {self.lock_file}")
        return True

    def release(self) -> None:
        """Release the lock if this thread holds it. Errors are logged, never raised (as before)."""
        native = self._native
        if not native.lock_counter:
            return
        try:
            native.release(force=True)
            logger.debug(f"Lock released: {self.lock_file}")
        except Exception as e:
            logger.error(f"Error releasing lock {self.lock_file}: {e}")
        finally:
            gate = fleet_lock(self.lock_file)
            if gate is not None:
                gate.release()

    def __enter__(self) -> FileLock:
        if not self.acquire():
            raise RuntimeError(f"Failed to acquire lock: {self.lock_file}")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc_val: BaseException | None, exc_tb: TracebackType | None
    ) -> Literal[False]:
        self.release()
        return False

    def __repr__(self) -> str:
        return f"FileLock({str(self.lock_file)!r}, locked={self.lock_fd is not None})"

    @classmethod
    def _for(cls, lock_file: Path, timeout: float, purpose: str) -> FileLock:
        """A lock whose holder record names ``purpose`` (``ferrolock status`` shows it)."""
        lock = cls(lock_file, timeout=timeout)
        lock._native = _native_lock(lock.lock_file, purpose)
        return lock


def _native_lock(path: Path, purpose: str | None) -> _NativeLock:
    """The core lock behind a legacy ``FileLock``. Constructing it touches nothing on disk."""
    # Deadlock detection stays off: the legacy contract is "wait `timeout`, then return False", even
    # when this thread holds the file through another FileLock object.
    return _NativeLock(path, mode=_LOCK_FILE_MODE, purpose=purpose, detect_deadlock=False)


def task_lock_file(root: Path, task_id: object) -> Path:
    """``<root>/.todo2/locks/task_<task_id>.lock``, after checking the id cannot escape that directory.

    Raises:
        ferrolock.InvalidName: the id is empty, ``.``/``..``, or contains ``/`` or NUL.
    """
    name = validate_name("task id", str(task_id))
    return locks_dir(root) / f"{TODO2_TASK_LOCK_PREFIX}{name}{LOCK_SUFFIX}"


def state_path(root: Path) -> Path:
    """``<root>/.todo2/state.todo2.json``: the tasks (its lock is the same name plus ``.lock``)."""
    return root / TODO2_DIR / TODO2_STATE_LOCK_FILE.removesuffix(LOCK_SUFFIX)


def state_lock_file(root: Path) -> Path:
    """``<root>/.todo2/state.todo2.json.lock``: the lock of the whole state file."""
    return root / TODO2_DIR / TODO2_STATE_LOCK_FILE


def locks_dir(root: Path) -> Path:
    """``<root>/.todo2/locks``: the task lock files."""
    return root / TODO2_DIR / TODO2_LOCKS_DIR


def lock_for(root: Path, task_id: object, timeout: float) -> FileLock:
    """The legacy lock object for ``task_id`` (falsy: the state-file lock) under ``root``."""
    if task_id:
        return FileLock._for(task_lock_file(root, task_id), timeout, f"todo2 task {task_id}")
    return FileLock._for(state_lock_file(root), timeout, "todo2 state file")


@contextmanager
def task_lock(task_id: str | None = None, timeout: float = 10.0) -> Iterator[FileLock]:
    """Hold the lock of one task (or, with no ``task_id``, of the whole state file); yields the lock.

    Raises:
        TaskLockTimeout: ``Failed to acquire lock for task <task_id or 'state file'>`` after ``timeout``.
        ferrolock.InvalidName: ``task_id`` would escape ``.todo2/locks/``.
        OSError: the lock file cannot be opened or locked (not contention).
    """
    from . import project_root

    lock = lock_for(project_root.find_project_root(), task_id, timeout)
    try:
        if not lock.acquire(blocking=True):
            raise TaskLockTimeout(f"Failed to acquire lock for task {task_id or 'state file'}")
        yield lock
    finally:
        lock.release()


@contextmanager
def state_file_lock(timeout: float = 10.0) -> Iterator[None]:
    """Hold the lock of the whole state file; yields ``None``."""
    with task_lock(task_id=None, timeout=timeout):
        yield


def try_lock_task(task_id: str, timeout: float = 0.0) -> FileLock | None:
    """Take a task's lock (waiting up to ``timeout`` if it is positive); the caller releases it.

    Returns:
        The held lock, or ``None`` if someone else holds it.
    """
    from . import project_root

    lock = FileLock._for(task_lock_file(project_root.find_project_root(), task_id), timeout, f"todo2 task {task_id}")
    if lock.acquire(blocking=(timeout > 0)):
        return lock
    return None
