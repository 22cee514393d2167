"""ferrolock: cross-process locks for Python tools, with a Rust core that waits in the kernel.

``FileLock`` is a drop-in for py-filelock's ``FileLock`` (same constructor, ``acquire``, ``release``,
``is_locked``, ``lock_counter``, context manager and decorator use) that also offers shared locks, a
holder record naming who holds a lock, ``async with``, and hand-offs in microseconds instead of at the
next poll.
"""

from ._coord import Coordinator, CoordLock, connect
from ._ferrolock import (
    CancelToken,
    ClaimResult,
    JobLock,
    StateFile,
    TaskQueue,
    __version__,
    atomic_write,
    probe,
    remove_if_unheld,
    run_once,
)
from ._job import JobLockManager
from ._lock import FileLock
from ._scope import LockManager, ScopeLock
from ._state_manager import StateLocked, StateManager
from ._state_md import TaskState, WorkflowState
from ._types import HolderRecord, LockProbe
from .exceptions import (
    Cancelled,
    CoordinatorError,
    CorruptFileError,
    InvalidName,
    LockError,
    LockLost,
    StaleToken,
    Timeout,
    UntrustedPathError,
    WouldDeadlock,
)

__all__ = (
    "CancelToken",
    "Cancelled",
    "ClaimResult",
    "CoordLock",
    "Coordinator",
    "CoordinatorError",
    "CorruptFileError",
    "FileLock",
    "HolderRecord",
    "InvalidName",
    "JobLock",
    "JobLockManager",
    "LockError",
    "LockLost",
    "LockManager",
    "LockProbe",
    "ScopeLock",
    "StaleToken",
    "StateFile",
    "StateLocked",
    "StateManager",
    "TaskQueue",
    "TaskState",
    "Timeout",
    "UntrustedPathError",
    "WorkflowState",
    "WouldDeadlock",
    "__version__",
    "atomic_write",
    "connect",
    "probe",
    "remove_if_unheld",
    "run_once",
)
