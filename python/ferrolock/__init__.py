"""ferrolock: cross-process locks for Python tools, with a Rust core that waits in the kernel.

``FileLock`` and ``AsyncFileLock`` are drop-ins for py-filelock's (same constructors and options,
``acquire``, ``release``, ``is_locked``, ``lock_counter``, context manager and decorator use, ``Timeout``)
that also offer shared locks, a holder record naming who holds a lock, and hand-offs in microseconds
instead of at the next poll.
"""

from ._async_lock import AsyncAcquireReturnProxy, AsyncFileLock
from ._coord import Coordinator, CoordLock, CoordTaskQueue, connect
from ._coord_claims import ClaimRecord, ClaimSpace, CoordClaim
from ._coord_state import CoordDraft, CoordState
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
    "AsyncAcquireReturnProxy",
    "AsyncFileLock",
    "CancelToken",
    "Cancelled",
    "ClaimRecord",
    "ClaimResult",
    "ClaimSpace",
    "CoordClaim",
    "CoordDraft",
    "CoordLock",
    "CoordState",
    "CoordTaskQueue",
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
