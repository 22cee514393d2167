"""Type stubs and API reference for ``ferrolock._ferrolock``, the native (Rust) half of ferrolock.

Import the public names from ``ferrolock``; this module is private.
"""

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, TypeAlias, final

from typing_extensions import Self, disjoint_base

from ferrolock._types import HolderRecord, LockProbe, RemovalName

# A path argument: str or os.PathLike[str] (a str from os.fsdecode round-trips undecodable bytes).
_StrPath: TypeAlias = str | os.PathLike[str]

__all__ = [
    "BLACKBOX5_STATE_LOCK_FILE",
    "JOBS_INDEX_LOCK_FILE",
    "JOB_LOCK_FILE",
    "LOCK_SUFFIX",
    "SCOPE_RUNNING_DIR",
    "SCOPE_SENTINEL_FILE",
    "TODO2_DIR",
    "TODO2_LOCKS_DIR",
    "TODO2_STATE_LOCK_FILE",
    "TODO2_TASK_LOCK_PREFIX",
    "WORKSPACE_DIR",
    "WORKSPACE_SETUP_LOCK_FILE",
    "AcquireReturnProxy",
    "CancelToken",
    "ClaimResult",
    "CoordAcquired",
    "CoordCancel",
    "CoordClaim",
    "CoordClaimAcquired",
    "CoordLock",
    "CoordTaskQueue",
    "Coordinator",
    "FileLock",
    "JobLock",
    "ParsedStateMd",
    "RenderedStateMd",
    "ScopeDir",
    "ScopeEntry",
    "StateDraft",
    "StateEdit",
    "StateFile",
    "StateLock",
    "TaskQueue",
    "_RawAdvisory",
    "__version__",
    "_check_timeout",
    "_claims_find_conflict",
    "_claims_live",
    "_claims_wait_for_scope",
    "_clean_locks",
    "_coord_schema_sql",
    "_coord_state_lock_name",
    "_failpoints",
    "_filelock_debug_enabled",
    "_logging_changed",
    "_logging_unwatched",
    "_parse_state_md",
    "_render_state_md",
    "_render_task",
    "_render_update",
    "_reset_logging_cache",
    "_scan_locks",
    "_set_failpoint",
    "_state_md_add_note",
    "_state_md_corruption",
    "_state_md_decode",
    "_state_md_validate",
    "_thread_owner",
    "atomic_write",
    "cleanup_stale_job_locks",
    "job_lock_path",
    "jobs_index_lock_path",
    "probe",
    "process_ancestry",
    "remove_if_unheld",
    "run_once",
    "validate_name",
]

__version__: str

@disjoint_base
class FileLock:
    """A cross-process lock on one file (``flock(2)``), compatible with py-filelock's ``FileLock``.

    Two ``FileLock`` objects on one path exclude each other, in one process or in many, and so do two
    threads using one object; re-entry (acquiring again while holding) only counts, per thread (or per
    object with ``thread_local=False``). A ``fcntl.flock`` user or shell ``flock(1)`` on the same path is
    excluded too.

    Waiting happens in the kernel with the GIL released: the waiter wakes microseconds after the
    holder releases or dies, uses no CPU while it waits, and a Ctrl-C on the main thread interrupts
    it. After ``fork()`` the child holds nothing: releasing in the child never releases the parent's
    lock, and a child that never touches the lock does not keep it alive after the parent died.

    The object is configured by ``__init__`` (``__new__`` takes and ignores any arguments), so a Python
    subclass may define an ``__init__`` of its own and call ``super().__init__(...)``. ``ferrolock.FileLock``
    adds py-filelock's construction rules on top (``is_singleton``, ``lifetime``, a narrowed subclass
    signature); this native class is its base. ``ferrolock.AsyncFileLock`` (``ferrolock._async_lock``, typed
    inline) is py-filelock's asyncio lock on the same base: ``await lock.acquire()``, ``async with``,
    re-entrant per object, tasks queueing, waits in a helper thread so the event loop never blocks.

    Args:
        lock_file: Path of the lock file. Created (with missing parent directories) on first use,
            never followed if it is a symbolic link. A path the OS refuses (``""``, a NUL byte, a
            directory) is reported by ``acquire``, never here.
        timeout: Default timeout in seconds for ``acquire`` and ``with``: negative or ``math.inf``
            waits forever, ``0`` is a single attempt.
        mode: Permission bits (at most ``0o777``). Given, the winner sets the file to exactly this mode
            after locking it (whatever the umask did; only a file of this user). Not given (``-1`` or
            ``None``), a new file is created ``0o666`` and the umask and default ACLs decide.
        thread_local: ``True``: each thread is an owner (threads exclude each other; re-entry per
            thread) and a setting (``timeout``, ``blocking``, ``poll_interval``) changed in one thread is
            seen by that thread only. ``False``: the object is the owner (any thread re-enters) and
            settings are shared.
        blocking: Default for ``acquire(blocking=...)``; ``False`` makes every acquire one attempt.
        poll_interval: Default for ``acquire(poll_interval=...)``: how often ``cancel_check`` is called
            while waiting (nothing else polls).
        shared: Take a shared lock (``LOCK_SH``): any number of shared holders, no exclusive one.
        purpose: Written into the holder record, shown by ``holder()``, ``Timeout`` messages and
            ``ferrolock status``.
        create_dirs: Create missing parent directories.
        holder_record: Write a holder record after winning an exclusive lock.
        detect_deadlock: Raise ``WouldDeadlock`` instead of waiting forever when the calling thread
            already holds the same file through another lock object (a wait with a timeout waits and
            ends in ``Timeout``).
        on_acquired: Called with the lock's descriptor after each fresh acquisition, before ``acquire``
            returns (not on re-entry). The file has been truncated and gets no holder record: its
            content is the hook's. If it raises, the lock is released and the error propagates.
        context_error_policy: ``"chain"`` (default): a failed release on ``__exit__`` raises with the
            body's exception as its context. ``"group"``: both in a ``BaseExceptionGroup``.

    Raises:
        ValueError: ``timeout`` or ``poll_interval`` is NaN, ``mode`` has bits beyond ``0o777``, or
            ``context_error_policy`` is unknown.
        TypeError: an argument has the wrong type; the message says what was expected
            (``path must be str or os.PathLike[str], not bytes``).
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Self: ...
    def __init__(
        self,
        lock_file: _StrPath,
        timeout: float = -1,
        mode: int | None = -1,
        thread_local: bool = True,
        *,
        blocking: bool = True,
        poll_interval: float = 0.05,
        shared: bool = False,
        purpose: str | None = None,
        create_dirs: bool = True,
        holder_record: bool = True,
        detect_deadlock: bool = True,
        on_acquired: Callable[[int], object] | None = None,
        context_error_policy: Literal["chain", "group"] | None = None,
    ) -> None: ...
    def acquire(
        self,
        timeout: float | None = None,
        poll_interval: float | None = None,
        *,
        poll_intervall: float | None = None,
        blocking: bool | None = None,
        cancel: CancelToken | None = None,
        cancel_check: Callable[[], bool] | None = None,
    ) -> AcquireReturnProxy:
        """Acquire the lock for the calling thread (or this object), waiting in the kernel.

        Args:
            timeout: Seconds to wait; ``None`` uses the lock's ``timeout``, negative or ``math.inf``
                waits forever, ``0`` is one attempt, NaN is a ``ValueError``.
            poll_interval: How often ``cancel_check`` is called while waiting (default: the lock's
                ``poll_interval``; at most every millisecond). Without ``cancel_check`` nothing polls.
            poll_intervall: py-filelock's old spelling; a ``DeprecationWarning``.
            blocking: ``False`` makes this one attempt whatever the timeout.
            cancel: A token another thread can use to abandon the wait at once (``Cancelled``).
            cancel_check: Called (with the GIL) every ``poll_interval`` while waiting, never when the lock
                is free at once; returning true ends the wait with ``Timeout``, as py-filelock does.

        Returns:
            A context manager that releases on exit (``with lock.acquire(timeout=5): ...``).

        Raises:
            Timeout: the lock was not free in time (its message and ``holder`` name the holder).
            WouldDeadlock: a wait without end for a file this thread holds through another ``FileLock``.
            Cancelled: ``cancel`` was cancelled.
            KeyboardInterrupt: Ctrl-C during the wait; nothing is held.
            OSError: the lock file cannot be opened: ``FileNotFoundError`` for ``""``,
                ``IsADirectoryError`` for a directory, ``PermissionError``, a symbolic link (``ELOOP``), ...
            InvalidName: the path contains a NUL byte.
        """

    def release(self, force: bool = False) -> None:
        """Release one level of the calling thread's hold (all levels with ``force``).

        A thread that does not hold the lock releases nothing; it can never release another
        thread's (or process's) lock.
        """

    def __enter__(self) -> Self:
        """Acquire with the lock's default timeout and blocking mode."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> bool:
        """Release one level (see ``context_error_policy``)."""

    def _acquire_as(
        self,
        owner: int,
        timeout: float | None = None,
        *,
        blocking: bool | None = None,
        cancel: CancelToken | None = None,
    ) -> bool:
        """Acquire for an explicit owner id (used by the asyncio layers); runs ``on_acquired`` after a
        fresh acquisition; writes no DEBUG record. True if newly taken."""

    def _release_as(self, owner: int, force: bool = False) -> bool:
        """Release for an explicit owner id. False if that owner held nothing."""

    def _lock_count_as(self, owner: int) -> int:
        """The re-entry depth of an explicit owner id."""

    @property
    def _owner(self) -> int | None:
        """The owner id of a lock that owns its holds (``thread_local=False``), else ``None``."""

    @staticmethod
    def _new_owner() -> int:
        """A fresh owner id, never given out before or again in this process."""

    @staticmethod
    def _thread_owner() -> int:
        """The calling thread's owner id."""

    @property
    def is_locked(self) -> bool:
        """True while some owner (any thread) of this process holds the lock through this object."""

    @property
    def lock_counter(self) -> int:
        """How many times the calling thread (or this object) has acquired without releasing."""

    @property
    def lock_file(self) -> str:
        """The lock file's path."""

    @property
    def timeout(self) -> float:
        """The default timeout in seconds (settable; setting NaN raises ``ValueError``)."""

    @timeout.setter
    def timeout(self, value: float) -> None: ...
    @property
    def blocking(self) -> bool:
        """The default blocking mode (settable)."""

    @blocking.setter
    def blocking(self, value: bool) -> None: ...
    @property
    def poll_interval(self) -> float:
        """The default ``poll_interval`` (settable)."""

    @poll_interval.setter
    def poll_interval(self, value: float) -> None: ...
    @property
    def mode(self) -> int:
        """The permission bits asked for, or ``0o644`` (py-filelock's answer) when none were."""

    @property
    def has_explicit_mode(self) -> bool:
        """Whether a ``mode`` was given."""

    def is_thread_local(self) -> bool:
        """Whether each thread is an owner (``thread_local=True``)."""

    @property
    def shared(self) -> bool:
        """True for a shared (``LOCK_SH``) lock."""

    @property
    def purpose(self) -> str | None:
        """The purpose written into holder records."""

    @property
    def on_acquired(self) -> Callable[[int], object] | None:
        """The ``on_acquired`` hook, or ``None``."""

    @property
    def context_error_policy(self) -> Literal["chain", "group"]:
        """What ``__exit__`` raises when the body and the release both failed."""

    def holder(self) -> HolderRecord | None:
        """The live holder record of the lock file, or ``None`` if nobody holds it exclusively.

        The record is a dict with ``pid``, ``host``, ``since`` (RFC 3339, UTC), ``purpose`` and
        ``version`` (``ferrolock.HolderRecord``). It is read without disturbing the lock.
        """

@final
class AcquireReturnProxy:
    """Returned by ``FileLock.acquire()``; entering gives the lock, exiting releases it."""

    @property
    def lock(self) -> FileLock:
        """The lock acquired."""

    def __enter__(self) -> FileLock: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool: ...

@final
class CancelToken:
    """Lets one thread abandon another thread's wait: pass it to ``acquire(cancel=...)`` and call
    ``cancel()``. The waiter wakes at once and raises ``Cancelled``; cancelling is permanent."""

    def __new__(cls) -> Self: ...
    def cancel(self) -> None:
        """Cancel every present and future wait that uses this token."""

    @property
    def cancelled(self) -> bool:
        """Whether ``cancel()`` was called."""

def probe(path: _StrPath) -> LockProbe:
    """Whether a lock file is held exclusively, and the holder record if so, without disturbing it.

    Returns:
        A ``LockProbe(state, holder)`` named tuple: ``("missing", None)``, ``("free", None)``
        (nobody, or only shared holders) or ``("held", record_or_None)``. The record is ``None``
        when the holder wrote none (a legacy ``fcntl.flock`` tool) or when it names a process of
        this host that no longer exists (a leftover of a holder that died before or while replacing
        it).

    Raises:
        OSError: the path is a symbolic link, not a regular file, or cannot be opened.
    """

def remove_if_unheld(path: _StrPath) -> RemovalName:
    """Remove a lock file if, and only if, nobody holds it.

    Takes the lock without waiting, checks the path still names the locked file, unlinks it while
    holding it, then releases. Processes that were waiting on the old file notice and move to the new
    one, so this is safe while the fleet runs.
    """

def atomic_write(
    path: _StrPath,
    data: bytes | bytearray | str,
    *,
    mode: int | None = None,
    backup: _StrPath | None = None,
    durable: bool = True,
    temp_path: _StrPath | None = None,
) -> None:
    """Replace a file atomically and durably.

    Writes ``data`` (``str`` is encoded as UTF-8) to a new file in the same directory, gives it the
    old file's permission bits (or ``mode``), fsyncs it, optionally hard-links the old file to
    ``backup``, renames the new file over ``path`` and fsyncs the directory. Readers see the old file
    or the new one, never a mix; after a crash at any point ``path`` is complete (old or new) and
    ``backup`` is complete. The GIL is released meanwhile.

    This does not lock: wrap a read-modify-write in a ``FileLock``.

    Args:
        path: The file to replace. A symlink is followed and the file it names is replaced.
        data: The new content.
        mode: Permission bits (at most ``0o777``) for the new file; default: keep the old file's (or
            ``0o666`` minus the umask for a new file).
        backup: Keep the previous version here (a hard link, so no copy and never a partial backup).
        durable: ``False`` skips both fsyncs (for scratch data only).
        temp_path: Use this fixed temporary path instead of a unique hidden one (legacy layouts; only
            safe under a lock every writer takes).

    Raises:
        OSError: a step failed (its message names the step); ``path`` is unchanged and no temporary
            file remains.
        ValueError: ``mode`` has bits beyond ``0o777``; nothing was touched.
        TypeError: ``data`` is not bytes or str, or a path is not str or ``os.PathLike[str]``.
    """

def validate_name(
    what: Literal["job id", "task id", "loop name", "instance id"], name: str, *, nested: bool = False
) -> str:
    """Return ``name`` unchanged if it is safe as a path component, else raise ``InvalidName``.

    Rejects empty names, ``.``, ``..``, ``/`` (unless ``nested``, which allows ``a/b`` but still
    rejects absolute paths and ``..`` components), NUL bytes and names over 255 bytes.

    Args:
        what: The kind of id, as the error message names it.
        name: The id.
        nested: Allow ``/`` between valid components.

    Raises:
        InvalidName: ``name`` breaks one of the rules; the message says ``invalid <what> ...``.
        ValueError: ``what`` is not one of the four kinds.
    """

def _set_failpoint(point: str | None, action: Literal["error", "crash", "stop"] = "error") -> None:
    """Test builds only (the cargo feature ``failpoints``; a release build has no such function).

    Make the write step ``point`` fail with EIO (``"error"``), SIGKILL the process (``"crash"``) or
    SIGSTOP it until it is continued (``"stop"``); ``None`` disarms. ``_failpoints()`` lists the points;
    any other name raises ``ValueError``."""

def _failpoints() -> list[str]:
    """Test builds only: the name of every fault point (``atomic_write:rename``, ...), in the order of
    the write paths."""

def _check_timeout(timeout: float) -> float:
    """``timeout`` as a float, checked as every native API checks a timeout (for Python code that does
    arithmetic on one before calling in).

    Raises:
        TypeError: not a number (``timeout must be a number of seconds, not str``).
        ValueError: NaN, which is no number of seconds.
    """

def _logging_changed() -> None:
    """Recompute whether the ``filelock`` logger can emit DEBUG records (``FileLock`` skips building them
    while it cannot) and clear the cache of ``ferrolock.*`` logger levels. ``ferrolock._log`` calls it
    whenever ``logging`` levels change."""

def _filelock_debug_enabled() -> bool:
    """Whether ``FileLock`` currently builds DEBUG records for the ``filelock`` logger."""

def _logging_unwatched() -> None:
    """Let ``FileLock`` build its DEBUG records always (for a ``logging`` whose changes cannot be watched)."""

def _thread_owner() -> int:
    """The calling thread's owner id in the core: unique for the life of the process, unlike
    ``threading.get_ident()``, which a later thread may reuse."""

def _reset_logging_cache() -> None:
    """Forget the cached levels of Python loggers, after changing ``logging`` configuration at run
    time (Rust log records are filtered by a cache of the ``ferrolock.*`` loggers' levels)."""

# --- Job-directory locks and run-once setup (logist's API) ---

@disjoint_base
class JobLock:
    """An exclusive lock on one file, held by this object rather than by a thread (logist's ``FileLock``).

    ``acquire()`` while this object holds the lock returns ``True`` at once (no counting: one
    ``release()`` frees it), and any thread may release it. Everything else is ferrolock's: waits happen
    in the kernel with the GIL released and exact timeouts, a second lock object taking the same file in
    the same thread fails at once instead of waiting for itself, ``is_locked()`` asks the kernel, and a
    forked child holds nothing (its ``release()`` never releases the parent's lock). The lock file is
    created with mode ``0o666`` minus the umask (as ``Path.touch()`` creates it), never truncated, and
    holds a one-line holder record while held. Garbage collection releases the lock.

    Args:
        lock_file_path: Path of the lock file; missing parent directories are created.
        timeout: Seconds a blocking ``acquire`` waits: ``0`` or less (even ``-math.inf``) is one
            attempt, ``None`` or ``math.inf`` waits forever, NaN is a ``ValueError``.
        purpose: Written into the holder record.

    Raises:
        InvalidName: the path is empty or contains a NUL byte.
    """

    def __new__(cls, lock_file_path: _StrPath, timeout: float | None = 30.0, *, purpose: str | None = None) -> Self: ...
    def acquire(self, blocking: bool = True) -> bool:
        """Acquire the lock for this object.

        Args:
            blocking: ``False`` makes this one attempt that returns ``False`` if the lock is busy.

        Returns:
            ``True`` once held (at once if this object already holds it and the kernel confirms it).

        Raises:
            Timeout: a blocking acquire did not get the lock within ``timeout``.
            WouldDeadlock: the calling thread holds the same file through another lock object.
            KeyboardInterrupt: Ctrl-C during the wait; nothing is held.
            OSError: the lock file cannot be opened (a directory, a symlink, no permission, ...).
        """

    def release(self) -> None:
        """Release the lock if this object holds it (from any thread); otherwise do nothing."""

    def is_locked(self) -> bool:
        """True if this object holds the lock and the kernel confirms the lock still protects the file
        (it is False once the file was deleted or replaced, or the lock was dropped through a descriptor
        shared with a forked child)."""

    def holder(self) -> HolderRecord | None:
        """The live holder record of the lock file (ours or anybody's), or ``None``; see ``FileLock.holder``."""

    def _held_by_current_thread(self) -> bool:
        """True if this object holds the lock and the calling thread took it."""

    def _acquire_within(self, blocking: bool, timeout: float | None) -> bool:
        """``acquire`` with this call's ``timeout`` instead of the object's (``None``: the object's)."""

    @property
    def _locked(self) -> bool:
        """Whether this object holds the lock in this process (bookkeeping only; False in a forked child)."""

    @property
    def _lock_fd(self) -> int | None:
        """The descriptor the lock is held through, or ``None``; owned by the lock, never close it."""

    @property
    def lock_file_path(self) -> Path:
        """The lock file."""

    @property
    def timeout(self) -> float | None:
        """Seconds a blocking ``acquire`` waits (settable)."""

    @timeout.setter
    def timeout(self, value: float | None) -> None: ...
    def __enter__(self) -> Self:
        """``acquire(True)`` (through the subclass's ``acquire`` if overridden)."""

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        """``release()``."""

def job_lock_path(base: _StrPath, job_id: str) -> Path:
    """``<base>/<job_id>/.lock``, the lock of one job directory.

    Raises:
        InvalidName: ``job_id`` is empty, ``.``, ``..``, longer than 255 bytes, or contains ``/`` or NUL.
    """

def jobs_index_lock_path(base: _StrPath) -> Path:
    """``<base>/.jobs_index.lock``, the lock of the jobs index."""

def cleanup_stale_job_locks(base: _StrPath, max_age_seconds: float) -> list[str]:
    """Remove the job lock files nobody holds that were last modified more than ``max_age_seconds`` ago.

    Looks at ``<base>/<job>/.lock`` for every directory whose name does not start with ``.``, and at
    ``<base>/.jobs_index.lock``. A lock file somebody holds is kept however old it is; removal happens
    while holding the file, and waiters re-verify, so this is safe while the fleet runs. Symlinks and
    non-regular files are left alone; errors on single files are logged and skipped. The GIL is
    released meanwhile.

    Returns:
        The sorted names of the jobs whose lock file was removed (the index is never listed).

    Raises:
        OSError: ``base`` exists but cannot be listed.
    """

def run_once(
    marker: _StrPath,
    lock_path: _StrPath,
    setup: Callable[[], object],
    *,
    timeout: float | None = None,
    marker_text: str | bytes | Callable[[], str | bytes] | None = None,
    also_lock: Sequence[_StrPath] = ...,
    cleanup: bool = True,
) -> bool:
    """Run ``setup()`` once across processes, using a marker file and a lock.

    If ``marker`` exists, returns at once. Otherwise takes ``lock_path`` (waiting in the kernel, with
    the GIL released), checks the marker again, takes each of ``also_lock``, creates the marker's folder
    if missing, calls ``setup()``, writes the marker atomically and releases. Callers that arrive
    meanwhile wait for the setup however long it takes, then find the marker and return without running
    it. If ``setup`` raises, the exception reaches this caller unchanged, no marker is left, and the next
    caller runs the setup again. If the process dies during setup, the kernel releases the lock and the
    next caller runs it.

    ``lock_path`` is the mutex: it must not be inside anything ``setup`` deletes or replaces (a newcomer
    would create a fresh lock file there and run a second setup beside the first). A legacy tool's lock
    file inside such a folder can go in ``also_lock``, so old processes are excluded as well.

    Args:
        marker: The file whose existence means the setup is done.
        lock_path: The lock file every caller takes before running the setup.
        setup: Called with no arguments, while the locks are held.
        timeout: Seconds to wait for the locks in total; ``None``, negative or ``math.inf`` waits
            forever; NaN is a ``ValueError``.
        marker_text: The marker's contents, or a callable returning them (called after ``setup``);
            default: ``completed <RFC 3339 time> by pid <pid>``. Anything else is a ``TypeError``
            before the setup runs.
        also_lock: Further lock files held while ``setup`` runs, taken after ``lock_path``.
        cleanup: Once the marker exists, remove the lock files that nobody holds.

    Returns:
        ``True`` if this call ran the setup, ``False`` if it was already done (or done meanwhile).

    Raises:
        Timeout: ``timeout`` passed while another caller held a lock.
        WouldDeadlock: the calling thread already holds ``lock_path`` (``setup`` called ``run_once``
            on the same lock).
        KeyboardInterrupt: Ctrl-C during the wait; nothing is held and the setup did not run.
        OSError: a lock file cannot be opened, the marker cannot be written, or ``marker`` is a
            dangling symlink.
    """

# --- Durable state files ----------------------------------------------------------------------------

@disjoint_base
class StateFile:
    """A file that any number of processes update by a locked read-modify-write.

    Every change happens under an exclusive lock on a separate lock file (the state file is replaced
    by ``rename`` on each write, so it cannot carry the lock itself), and every write is an
    ``atomic_write``: readers that take no lock see the old content or the new, never a mix, and a
    crash at any point leaves the file complete (old or new) and the backup complete. Temporary files
    and backup staging links left by a crashed writer are removed by the next writer, under the lock.

    Example::

        counter = StateFile("jobs/counter.txt", backup_path="jobs/counter.txt.bak")
        with counter.edit() as draft:
            draft.text = str(int(draft.text or "0") + 1)

    Args:
        path: The state file. Its directory must exist before the first write (the lock file's
            directory is created on demand).
        lock_path: The lock file every writer takes; default ``path + ".lock"``. Processes that share
            the state file must use the same lock file.
        backup_path: Keep the previous version here on every write (a hard link, never a partial
            copy); ``None`` keeps no backup.
        temp_path: A fixed temporary path (legacy layouts such as ``STATE.tmp``); ``None`` uses a
            unique hidden name beside the file.
        timeout: Default timeout in seconds for ``edit``, ``write``, ``remove``, ``set_aside`` and
            ``locked``: negative or ``math.inf`` waits forever, ``0`` is a single attempt, NaN is a
            ``ValueError``.
        purpose: Written into the lock's holder record (shown by ``holder()`` and ``Timeout``).
        mode: Permission bits of the file (at most ``0o777``); default: keep the old file's (``0o666``
            minus the umask for a new one).

    Raises:
        InvalidName: ``path`` is empty or has no file name, or the lock, backup or temporary path is
            the state file itself.
    """

    def __new__(
        cls,
        path: _StrPath,
        *,
        lock_path: _StrPath | None = None,
        backup_path: _StrPath | None = None,
        temp_path: _StrPath | None = None,
        timeout: float = -1.0,
        purpose: str | None = None,
        mode: int | None = None,
    ) -> Self: ...
    @property
    def path(self) -> str:
        """The state file's path."""

    @property
    def lock_path(self) -> str:
        """The lock file's path."""

    @property
    def backup_path(self) -> str | None:
        """Where the previous version is kept, if anywhere."""

    @property
    def temp_path(self) -> str | None:
        """The fixed temporary path, or ``None`` for a unique one per write."""

    @property
    def timeout(self) -> float:
        """The default timeout in seconds (settable)."""

    @timeout.setter
    def timeout(self, value: float) -> None: ...
    @property
    def is_locked(self) -> bool:
        """True while a thread of this process holds the lock through this object."""

    def read(self) -> bytes | None:
        """The current content, or ``None`` if there is no file. Takes no lock (every write is an
        atomic rename, so this always sees a complete version).

        Raises:
            OSError: the file cannot be read (a directory, no permission, ...).
        """

    def read_backup(self) -> bytes | None:
        """The backup's content, or ``None`` if there is none (or no backup is configured)."""

    def edit(self, timeout: float | None = None) -> StateEdit:
        """A context manager for a locked read-modify-write.

        Entering takes the lock (waiting in the kernel with the GIL released; Ctrl-C works) and reads
        the file into a ``StateDraft``. On a normal exit, if the draft's ``data`` or ``text`` was set,
        the new content is written atomically (keeping the backup), or the file is removed if it was
        set to ``None``. If the block raises, nothing is written. The lock is released in every case.

        Args:
            timeout: Seconds to wait for the lock; ``None`` uses the object's ``timeout``.

        Raises:
            Timeout: the lock was not free in time (the message names the holder).
            RuntimeError: this thread is already inside an ``edit()`` of this object (the outer
                edit's write would silently undo the inner one's).
        """

    def write(self, data: bytes | bytearray | str, timeout: float | None = None) -> None:
        """Replace the content under the lock (a blind write; ``str`` is written as UTF-8).

        Raises:
            Timeout: the lock was not free in time.
            OSError: a step of the write failed; the file and the backup are unchanged.
        """

    def remove(self, timeout: float | None = None) -> bool:
        """Remove the file under the lock. With a backup path, the removed content becomes the
        backup, so a removal is as recoverable as a write. Returns ``False`` if there was no file."""

    def set_aside(self, dest: _StrPath, timeout: float | None = None) -> bool:
        """Move the file to ``dest`` under the lock, without touching the backup (for a corrupt file
        that must not replace a good backup). The next write starts a fresh file. Returns ``False``
        if there was no file."""

    def locked(self, timeout: float | None = None) -> StateLock:
        """A context manager that only holds the lock, for callers that compose ``read()`` and
        ``write()`` themselves (both re-enter the lock at once inside the block)."""

    def holder(self) -> HolderRecord | None:
        """The live holder record of the lock file, or ``None`` if nobody holds it."""

@final
class StateEdit:
    """Returned by ``StateFile.edit()``; see there."""

    def __enter__(self) -> StateDraft: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc_value: BaseException | None, traceback: TracebackType | None
    ) -> bool: ...

@final
class StateDraft:
    """The content of a state file inside ``StateFile.edit()``. Setting ``data`` or ``text``
    replaces the content when the block exits normally; setting either to ``None`` removes the file."""

    @property
    def data(self) -> bytes | None:
        """The content as bytes; ``None`` if the file does not exist (or was set to ``None``)."""

    @data.setter
    def data(self, value: bytes | bytearray | None) -> None: ...
    @property
    def text(self) -> str | None:
        """The content decoded as UTF-8 (strict: invalid bytes raise ``UnicodeDecodeError``)."""

    @text.setter
    def text(self, value: str | None) -> None: ...
    @property
    def exists(self) -> bool:
        """Whether the file existed when the edit began."""

    @property
    def changed(self) -> bool:
        """Whether ``data`` or ``text`` was set in this edit."""

@final
class StateLock:
    """Returned by ``StateFile.locked()``: holds the lock while the block runs; entering returns the
    ``StateFile``."""

    def __enter__(self) -> StateFile: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool: ...

# BlackBox5's STATE.md format (private: used by ferrolock._state_md and ferrolock._state_manager).
# Content is text or the file's bytes (UTF-8; other bytes raise ValueError naming the bad byte).

@final
class ParsedStateMd:
    """``STATE.md`` content as ``_parse_state_md`` found it."""

    @property
    def workflow_id(self) -> str:
        """The backticked ``Workflow ID`` (``"unknown"`` if there is none)."""

    @property
    def workflow_name(self) -> str:
        """The name after ``# Workflow:`` (else after the first ``# ``; ``"Unknown"`` if neither)."""

    @property
    def current_wave(self) -> int:
        """From ``Wave N/M`` (``0`` if there is none)."""

    @property
    def total_waves(self) -> int:
        """From ``Wave N/M`` (``0`` if there is none)."""

    @property
    def started(self) -> str | None:
        """The ``Started:`` time as ``YYYY-MM-DD HH:MM:SS``, or ``None`` if there is no valid one."""

    @property
    def updated(self) -> str | None:
        """The ``Updated:`` time, likewise."""

    @property
    def task_count(self) -> int:
        """How many tasks the file lists (``0`` if tasks were not parsed)."""

    @property
    def tasks(self) -> dict[str, Any]:
        """Task id -> an instance of the ``task_class`` given to ``_parse_state_md`` (empty without one)."""

    @property
    def notes(self) -> list[str]:
        """The ``- `` lines of ``## Notes``."""

    @property
    def metadata(self) -> dict[str, str]:
        """The ``- **key:** value`` lines of ``## Metadata``."""

@final
class RenderedStateMd:
    """A rendered ``STATE.md``, ready to write."""

    @property
    def data(self) -> bytes:
        """The file's content (UTF-8)."""

    @property
    def task_count(self) -> int:
        """How many tasks it lists (after repeated ids replaced earlier tasks)."""

    @property
    def duplicates(self) -> list[str]:
        """Ids that appeared more than once (the later task replaced the earlier), as written."""

    @property
    def warnings(self) -> list[str]:
        """What the legacy ``validate_markdown`` says about it (the legacy writer logged these)."""

def _parse_state_md(content: str | bytes, *, tasks: bool = True, task_class: type[Any] | None = None) -> ParsedStateMd:
    """Parse ``STATE.md`` content (its task lines only if ``tasks``). With ``task_class`` (a dataclass
    with the legacy ``TaskState`` fields, or any class taking them as keyword arguments), the tasks are
    built as its instances, each field given by name."""

def _render_state_md(state: Any, started: str, updated: str) -> str:
    """Render a ``WorkflowState`` (timestamps already formatted) to ``STATE.md`` text; every field is
    shown as ``format(value)``, as the legacy f-strings did.

    Raises:
        TypeError: ``files_modified`` holds a non-``str`` among its first three entries, or wave numbers
            cannot be compared or divided (as in the legacy code).
        ValueError: the progress bar would be longer than a million cells.
    """

def _render_task(task: Any) -> str:
    """Render one ``TaskState``'s lines (``TaskState.to_markdown``)."""

def _render_update(
    *,
    workflow_id: object,
    workflow_name: object,
    current_wave: object,
    total_waves: object,
    completed: Iterable[Any],
    current: Iterable[Any],
    pending: Iterable[Iterable[Any]],
    first_pending_wave: int,
    commit_hash: object,
    started: str,
    updated: str,
    notes: Iterable[Any],
    metadata: Any,
) -> RenderedStateMd:
    """Render what ``StateManager.update`` (or ``initialize``) writes, straight from its task dicts by
    BlackBox5's conventions (id from ``task_id``/``agent_id``, description from ``description``/``task``/
    ``prompt[:100]``, a current task's status from its ``result``, the wave's commit for completed tasks
    without one), without building ``TaskState`` objects. Pending waves are numbered from
    ``first_pending_wave``."""

def _state_md_add_note(content: str | bytes, note: object, updated: str, now: str) -> RenderedStateMd:
    """Parse, append ``note`` (as ``format(note)``), set the updated time (and ``now`` as the start time if
    none is recorded) and render."""

def _state_md_validate(content: str | bytes) -> list[str]:
    """The legacy ``validate_markdown`` warnings, in the legacy order and wording (``[]``: valid)."""

def _state_md_decode(content: str | bytes) -> tuple[str | None, str | None]:
    """``(text, None)`` if ``content`` can be a ``STATE.md``; ``(None, reason)`` if not (not UTF-8, worded
    as Python's decoder words it; empty; neither a title nor a status line)."""

def _state_md_corruption(content: str | bytes) -> str | None:
    """Why ``content`` cannot be a ``STATE.md`` at all, or ``None``."""

# ---------------------------------------------------------------------------------------------------
# Task claims: ``ferrolock.TaskQueue``.
# ---------------------------------------------------------------------------------------------------

@final
class TaskQueue:
    """A queue of tasks, each held by at most one claimant at a time, shared by every process on this
    machine that opens the same file.

    Every change is a locked read-modify-write of the queue file (atomic, durable, the previous
    version kept as the backup), so claims are never lost or doubled, and readers that take no lock
    never see a torn file. Claiming or releasing a task also holds the task's own lock file (in
    ``locks_dir``), so a worker that holds a task's lock while it works on it is never disturbed.
    Nothing waits while holding the queue's lock (a task's lock is waited for first), so no mix of
    operations can deadlock; lock files of tasks that can no longer be claimed are removed as the
    queue is used.

    A claim is a record in the file: it stays until released, whatever happens to its claimant
    (``release(force=True)`` returns a dead claimant's task to the queue). Every wait releases the
    GIL and can be interrupted with Ctrl-C.

    Example::

        queue = TaskQueue("work/tasks.json")
        queue.add("build", "test", "docs")
        task = queue.claim_next(by="agent-7", timeout=60)   # waits for a task to appear
        if task is not None:
            ...                                              # do the work
            queue.remove(task)                               # done (or queue.release(task, by=...))

    Args:
        path: The queue file (ferrolock's JSON: ``{"tasks": [{"id": ..., "claim": {...}}, ...]}``).
            Missing directories are created on the first change.
        locks_dir: The directory of the per-task lock files ``task_<id>.lock``; default
            ``<path>.locks`` beside the file.
        lock_path: The queue's lock file; default ``<path>.lock``.
        backup_path: Where the previous version is kept; default ``<path>.bak``.
        format: A format object for a file of another shape (``ferrolock.compat.todo2`` uses one for
            todo2's ``state.todo2.json``). It has the methods ``decode(data: bytes) -> doc``,
            ``encode(doc) -> bytes``, ``lookup(doc, task_id) -> (kind, claim)`` with kind
            ``"missing"``, ``"free"`` or ``"claimed"``, ``unclaimed(doc) -> list[str] | None`` (ids in
            queue order; ``None`` if it cannot tell), ``claim(doc, task_id, claimant)`` (changes
            ``doc`` in place), ``release(doc, task_id, claimant, force) -> (kind, claim)`` with kind
            ``"released"``, ``"not_claimed"``, ``"claimed_by_other"`` or ``"missing"`` (changes ``doc``
            in place), and ``tasks(doc) -> list[(task_id, claim | None)]``. With a format, claimants
            and claims are whatever it uses, and ``add``/``remove`` are not available.
        timeout: Default timeout in seconds for every operation: negative waits forever, ``0`` is a
            single attempt.
        purpose: Names the locks in their holder records (``"<purpose> task <id>"``, ``"<purpose>
            state file"``), as ``ferrolock status`` shows them.
        task_lock_mode: Permission bits of new task lock files (the umask applies).
        detect_deadlock: Fail at once with ``WouldDeadlock`` (instead of waiting) when this thread
            already holds a task's lock through another lock object.

    Raises:
        InvalidName: ``path`` has no file name, or a lock or backup path is the queue file itself.
    """

    def __new__(
        cls,
        path: str | os.PathLike[str],
        *,
        locks_dir: str | os.PathLike[str] | None = None,
        lock_path: str | os.PathLike[str] | None = None,
        backup_path: str | os.PathLike[str] | None = None,
        format: Any | None = None,
        timeout: float = -1.0,
        purpose: str | None = None,
        task_lock_mode: int = 0o644,
        detect_deadlock: bool = True,
    ) -> Self: ...
    @property
    def path(self) -> str:
        """The queue file."""

    @property
    def lock_path(self) -> str:
        """The queue's lock file."""

    @property
    def backup_path(self) -> str | None:
        """Where the previous version of the queue file is kept."""

    @property
    def locks_dir(self) -> str:
        """The directory of the per-task lock files."""

    @property
    def timeout(self) -> float:
        """The default timeout in seconds (settable)."""

    @timeout.setter
    def timeout(self, value: float) -> None: ...
    def task_lock_path(self, task_id: str) -> str:
        """The lock file of ``task_id`` (hold it with ``FileLock`` while working on the task to keep
        ``claim_many`` and ``claim_next`` away from it).

        Raises:
            InvalidName: ``task_id`` cannot be part of a file name (``/``, NUL, ``.``, ``..``).
        """

    def add(self, *task_ids: str, timeout: float | None = None) -> int:
        """Append the tasks not yet in the queue (creating the file if needed). Waiters in
        ``claim_next`` wake up. Returns how many were added.

        Raises:
            Timeout: the queue's lock stayed busy.
            CorruptFileError: the queue file is not a queue (it is left as it is).
            TypeError: the queue has a ``format`` (which adds tasks its own way).
        """

    def remove(self, *task_ids: str, timeout: float | None = None) -> int:
        """Remove the tasks (claimed or not): for work that is done. Returns how many were removed."""

    def claim(self, task_id: str, *, by: Any, timeout: float | None = None) -> ClaimResult:
        """Claim ``task_id`` for ``by`` (a name, for ferrolock's own format). Waits for the task's
        lock, then for the queue's lock.

        Returns:
            The outcome: ``claimed``; ``taken`` (``owner`` says by whom); ``missing``; ``no_queue``
            (there is no queue file).

        Raises:
            Timeout: the task's lock or the queue's lock stayed busy (``lock_file`` names which).
            InvalidName: ``task_id`` cannot be part of a file name.
            CorruptFileError: the queue file is not a queue (nothing is written).
            KeyboardInterrupt: Ctrl-C during a wait; nothing was claimed.
        """

    def claim_many(self, task_ids: Sequence[str], *, by: Any, timeout: float | None = None) -> list[ClaimResult]:
        """Claim every free task of ``task_ids`` in one change of the file. Not all-or-nothing: the
        free ones are claimed. Waits only for the queue's lock; a task whose lock is held elsewhere
        is ``busy``, one whose lock file cannot be used is ``failed`` (``reason`` says why).

        Returns:
            One result per id, in order.

        Raises:
            Timeout: the queue's lock stayed busy (nothing was claimed).
            CorruptFileError: the queue file is not a queue.
        """

    def claim_next(self, *, by: Any, block: bool = True, timeout: float | None = None) -> str | None:
        """Claim the first free task (in queue order) whose lock nobody holds, and return its id.

        If there is none and ``block`` is true, sleep until the queue file changes (a task added or
        released wakes the waiter at once) and look again, until ``timeout``.

        Returns:
            The claimed task's id, or ``None`` if none could be claimed in time.

        Raises:
            Timeout: the queue's lock stayed busy until ``timeout``.
            KeyboardInterrupt: Ctrl-C during the wait; nothing was claimed.
        """

    def release(
        self, task_id: str, *, by: Any, force: bool = False, timeout: float | None = None
    ) -> Literal["released", "not_claimed", "claimed_by_other", "missing", "no_queue"]:
        """Remove ``by``'s claim on ``task_id`` (anyone's with ``force``: for a claimant that died).
        Waits for the task's lock, then the queue's lock. Waiters in ``claim_next`` wake up.

        Raises:
            Timeout: a lock stayed busy.
        """

    def owner(self, task_id: str) -> Any | None:
        """The claim on ``task_id`` (for ferrolock's own format a dict with ``by``, ``host``, ``pid``
        and ``since``), or ``None`` if it is free or not in the queue. Reads without a lock."""

    def tasks(self) -> list[tuple[str, Any | None]]:
        """Every task in queue order with its claim (``None`` if free). Reads without a lock."""

@final
class ClaimResult:
    """What one claim found."""

    @property
    def task_id(self) -> str:
        """The task."""

    @property
    def outcome(self) -> Literal["claimed", "taken", "missing", "busy", "failed", "no_queue"]:
        """``claimed``: the claimant now holds it; ``taken``: someone else does (see ``owner``);
        ``missing``: no such task; ``busy``: its lock was held elsewhere (``claim_many`` only);
        ``failed``: its lock file could not be used (see ``reason``); ``no_queue``: no queue file."""

    @property
    def owner(self) -> Any | None:
        """For ``taken``, the claim that holds the task."""

    @property
    def reason(self) -> str | None:
        """For ``failed``, why."""

    @property
    def claimed(self) -> bool:
        """Whether the claimant now holds the task (also the result's truth value)."""

    def __bool__(self) -> bool: ...

# ---------------------------------------------------------------------------------------------------
# Scope claims (little-loops): the native half of ``ferrolock.LockManager``.
# ---------------------------------------------------------------------------------------------------

@final
class ScopeDir:
    """The scope claims kept in one running directory (little-loops' ``.loops/.running``).

    A claim is ``<running_dir>/<name>.lock``, a JSON record in little-loops' format plus a trailing
    ``"ferrolock": 1`` marker, held with ``flock(LOCK_EX)`` by the claiming process until it releases
    it or exits. It is written to a hidden temporary file, locked, then renamed into place, so readers
    never see a partial or unheld claim. Check-and-claim runs under ``flock`` on
    ``<running_dir>/.acquire.lock``, the sentinel legacy little-loops processes take too.

    Liveness: a held record is live; an unheld record with the marker is dead (its claimant crashed,
    whatever its pid says now); an unheld record without it was written by a legacy process and is
    judged by its pid through ``judge._process_alive``. Stale records are removed only under the
    sentinel, and only if still unheld and unchanged.

    Every method that takes ``judge`` asks that object (a ``LockManager``) at call time:
    ``_process_alive(pid)`` for legacy records, ``_get_ancestry()`` (at most once per call) when a
    conflicting claim might belong to an ancestor, ``_normalize_path(path)`` for record scope entries
    that are not already absolute and clean, and ``_scopes_overlap(a, b)`` when ``custom_overlap``.
    Without a judge the native defaults decide (``kill(pid, 0)``, ``/proc``, lexical overlap).
    Exceptions raised by the hooks propagate. The GIL is released meanwhile.

    Args:
        running_dir: The directory; created by the first ``acquire``.
    """

    def __new__(cls, running_dir: _StrPath) -> Self: ...
    @property
    def running_dir(self) -> str:
        """The directory, as given."""

    def acquire(
        self,
        name: str,
        loop_name: str,
        scope: list[str],
        *,
        pid: int | None = None,
        started_at: str | None = None,
        singleton: bool = False,
        judge: Any | None = None,
        custom_overlap: bool = False,
    ) -> bool:
        """Claim ``scope`` (already normalised) under the record name ``name``.

        Args:
            name: The record name (``instance_id or loop_name``); ``group/loop`` nests.
            loop_name: Recorded, and compared by the singleton rule.
            scope: Normalised paths.
            pid: The pid to record (default: this process).
            started_at: The start time to record (default: now, ``isoformat()`` style).
            singleton: Conflict with every other singleton claim of ``loop_name``.
            judge: The hooks' owner (see the class docs).
            custom_overlap: Ask ``judge._scopes_overlap`` instead of the native rule.

        Returns:
            ``True`` if claimed; ``False`` if a live claim conflicts or already has this name.

        Raises:
            InvalidName: ``name`` is empty, absolute, or has an empty, ``.`` or ``..`` component.
            OSError: a symlink or a non-file sits at the record path, or the directory is unusable.
        """

    def release(self, name: str) -> bool:
        """Give back the claim ``name`` if this process holds it (``True``); otherwise touch
        nothing (``False``)."""

    def holds(self, name: str) -> bool:
        """Whether this process holds the claim ``name``."""

    def find_conflict(
        self,
        scope: list[str],
        *,
        caller_loop_name: str | None = None,
        caller_singleton: bool = False,
        judge: Any | None = None,
        custom_overlap: bool = False,
    ) -> ScopeEntry | None:
        """The first live claim, in directory order, whose scope overlaps ``scope`` (or that is a
        singleton claim of ``caller_loop_name`` when ``caller_singleton``), ancestors' claims
        excepted. Stale records met on the way are removed."""

    def live_claims(self, *, judge: Any | None = None, custom_overlap: bool = False) -> list[ScopeEntry]:
        """Every live claim (nested names included). Stale records are removed."""

    def wait_for_scope(
        self,
        scope: list[str],
        timeout: float | None = None,
        *,
        caller_loop_name: str | None = None,
        caller_singleton: bool = False,
        judge: Any | None = None,
        custom_overlap: bool = False,
    ) -> bool:
        """Wait until ``find_conflict`` finds nothing (``True``) or ``timeout`` seconds pass
        (``False``; ``None``, negative or ``math.inf`` waits forever, ``0`` checks once, NaN is a
        ``ValueError``).

        The waiter sleeps in the kernel on the conflicting claim: a shared ``flock`` on a ferrolock
        record, or a ``pidfd`` plus an inotify watch for a legacy one, and re-checks only when it
        changes. Ctrl-C on the main thread interrupts it.
        """

@final
class ScopeEntry:
    """A live claim as a scan found it."""

    @property
    def name(self) -> str:
        """The record name (``instance_id or loop_name``)."""

    @property
    def path(self) -> str:
        """The record file."""

    @property
    def loop_name(self) -> str:
        """The claiming loop."""

    @property
    def scope(self) -> list[str]:
        """The claimed paths."""

    @property
    def pid(self) -> int:
        """The claimant's pid, as recorded."""

    @property
    def started_at(self) -> str:
        """When the claim was made, as recorded."""

    @property
    def singleton(self) -> bool:
        """Whether it is a singleton claim."""

    @property
    def held(self) -> bool:
        """``True`` for a kernel-held (ferrolock) claim, ``False`` for a legacy record judged alive by
        its pid."""

def process_ancestry(pid: int) -> list[int]:
    """The ancestors of ``pid``, parent first, up to but excluding pid 1, read from ``/proc``."""

# --- `ferrolock status` / `ferrolock clean` ---

def _scan_locks(roots: Sequence[_StrPath], progress: Callable[[int], object] | None = None) -> dict[str, Any]:
    """Every lock under ``roots``: ``{"locks": [...], "skipped": [{"path", "reason"}]}`` (the lock dicts
    of ``ferrolock status --json``; see ``ferrolock._status``). The walk is descriptor-relative and
    follows no symlink below a root; what could not be looked at is in ``skipped``. ``progress`` is
    called with the number of files looked at so far, every 256 files and once when the scan is done.
    Paths are ``os.fsdecode``-d (``os.fsencode`` gives the bytes on disk back)."""

def _clean_locks(
    roots: Sequence[_StrPath], dry_run: bool = False, progress: Callable[[int], object] | None = None
) -> dict[str, Any]:
    """Remove lock files nobody holds or has open and stale claim records under ``roots``:
    ``{"removed": [{"path", "kind", "reason"}], "skipped": [{"path", "reason"}]}`` (with ``dry_run``,
    what would be removed). ``progress`` as for ``_scan_locks``; its last call comes after the scan
    and before the first removal."""

# --- the coordinator (file:// and postgresql://) ---

@disjoint_base
class Coordinator:
    """A connection to a coordination service, chosen by URL.

    * ``file://DIR``: flock lock files under ``DIR`` (one machine), the core ``FileLock`` protocol.
    * ``postgresql://user@host/db?lease=15s``: PostgreSQL session advisory locks (any number of
      machines), waiting in the server, with leases and durable fencing tokens.

    Args:
        url: The coordinator URL (see the README section "Across machines" for the options).

    Raises:
        CoordinatorError: a bad URL, an unreachable server, a connection pooler that would break
            session locks, or a schema the role may not create (the message names the command an
            administrator runs).
    """

    def __new__(cls, url: str) -> Self: ...
    @property
    def url(self) -> str:
        """The URL, with any password replaced by ``***``."""

    @property
    def backend(self) -> Literal["file", "postgresql"]:
        """Which backend the URL chose."""

    def status(self) -> list[dict[str, Any]]:
        """Every lock held or waited for right now: dicts with ``name``, ``holders`` (each a dict with
        ``mode``, ``"exclusive"`` or ``"shared"``, and ``holder``, a holder record or ``None``) and
        ``waiting`` (sessions waiting; always 0 on ``file://``, which cannot see waiters, nor shared
        holders)."""

    def fenced_write(self, name: str, token: int, value: bytes | str) -> None:
        """Store ``value`` under ``name`` with an explicit ``token`` (one a holder handed to this process).

        Raises:
            StaleToken: ``token`` is not the newest drawn for ``name``; nothing was written.
        """

    def fenced_read(self, name: str) -> tuple[int, bytes] | None:
        """The last value stored with ``CoordLock.fenced_write`` under ``name`` and its token."""

    def _state_read(self, name: str, backup: bool = False) -> bytes | None:
        """The value of coordinator state ``name`` (with ``backup``, the version it replaced), or
        ``None``. Takes no lock. Used by ``ferrolock.CoordState``."""

    def run_once(
        self,
        name: str,
        setup: Callable[[], object],
        *,
        timeout: float | None = None,
        marker_text: str | bytes | None = None,
    ) -> Literal["already-done", "done-by-other", "ran"]:
        """Run ``setup`` once across every process using this coordinator.

        Callers that arrive while it runs wait for the lock ``name``, then find the setup done. A
        failed setup raises its own exception, leaves no marker, and the next caller tries again. The
        marker is written fenced by the lock's token, so a caller whose lease ran out mid-setup gets
        ``LockLost`` or ``StaleToken`` instead of marking it done.

        Raises:
            Timeout: the lock was not free within ``timeout`` seconds.
            LockLost: the lock was lost while the setup ran.
        """

@disjoint_base
class CoordLock:
    """A named lock from a ``Coordinator``, with ``FileLock``'s surface on every backend.

    Re-entrant per thread; two lock objects exclude each other even in one process; a thread that
    holds the name through another lock object gets ``WouldDeadlock`` instead of waiting for itself.
    Waiting releases the GIL and honours Ctrl-C; on PostgreSQL the wait happens in the server
    (``lock_timeout``), and a cancel or Ctrl-C cancels it there, undoing a grant that raced it.

    Args:
        coordinator: Where the lock lives.
        name: The lock's name: 1 to 200 bytes, no control characters; ``/`` is an ordinary
            character (``"jobs/build-42"``).
        timeout: Default timeout in seconds (negative waits forever, ``0`` is one attempt).
        shared: Take a shared lock: any number of shared holders, no exclusive one.
        purpose: Shown in ``status()`` and in other waiters' ``Timeout`` errors.
        blocking: Default for ``acquire(blocking=...)``.
        on_lost: Called (on a background thread) when the backend finds the held lock lost: its lease
            ran out or its session ended. Never called on ``file://``, where a held lock cannot expire.

    Raises:
        InvalidName: the name is empty, too long or has control characters.
    """

    def __new__(
        cls,
        coordinator: Coordinator,
        name: str,
        timeout: float = -1.0,
        *,
        shared: bool = False,
        purpose: str | None = None,
        blocking: bool = True,
        on_lost: Callable[[], object] | None = None,
    ) -> Self: ...
    def acquire(
        self,
        timeout: float | None = None,
        poll_interval: float | None = None,
        *,
        blocking: bool | None = None,
        cancel: CoordCancel | None = None,
    ) -> CoordAcquired:
        """Acquire the lock for the calling thread.

        Args:
            timeout: Seconds to wait; ``None`` uses the lock's ``timeout``, negative waits forever,
                ``0`` is one attempt.
            poll_interval: Accepted for ``FileLock`` compatibility and ignored: nothing polls.
            blocking: ``False`` makes this one attempt whatever the timeout.
            cancel: A ``CoordCancel`` another thread can use to abandon the wait.

        Returns:
            A context manager that releases on exit.

        Raises:
            Timeout: the lock was not free in time (``holder`` names the holder).
            WouldDeadlock: this thread holds the name through another lock object.
            Cancelled: ``cancel`` was cancelled; nothing is held.
            KeyboardInterrupt: Ctrl-C during the wait; nothing is held.
            CoordinatorError: the backend failed.
        """

    def release(self, force: bool = False) -> None:
        """Release one level of the calling thread's hold (all levels with ``force``). Releasing a lost
        lock is not an error; releasing a lock the thread does not hold does nothing."""

    def __enter__(self) -> Self:
        """Acquire with the lock's default timeout and blocking mode."""

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        """Release one level."""

    def _acquire_as(
        self,
        owner: int,
        timeout: float | None = None,
        *,
        blocking: bool | None = None,
        cancel: CoordCancel | None = None,
    ) -> bool:
        """Acquire for an explicit owner id (used by the asyncio layer). True if newly taken."""

    def _release_as(self, owner: int, force: bool = False) -> bool:
        """Release for an explicit owner id. False if that owner held nothing."""

    def _lock_count_as(self, owner: int) -> int:
        """The re-entry depth of an explicit owner id."""

    def _token_as(self, owner: int) -> int:
        """The owner's fencing token, drawn durably (in the holder's session) on first use.

        Raises:
            LockLost: the owner does not hold the lock, or it is lost.
        """

    def _ensure_held_as(self, owner: int) -> None:
        """Check with the backend that the owner still holds the lock.

        Raises:
            LockLost: it does not.
        """

    def _state_write_as(
        self, owner: int, state: str, value: bytes | bytearray | str | None, fence: tuple[str, int] | None = None
    ) -> bool:
        """Replace coordinator state ``state`` (``None`` removes it), keeping the replaced version as
        its backup, through the owner's hold of this lock (the state's lock): from the holder's own
        session, so only while the lock is held, and only if ``fence`` (``(lock_name, token)``) is
        still the newest token drawn for that lock. Returns whether there was a value before.

        Raises:
            LockLost: the owner does not hold this lock, or lost it.
            StaleToken: the fence no longer holds; nothing was written.
        """

    def _fenced_write_as(self, owner: int, value: bytes | str) -> None:
        """Store ``value`` under the lock's name, fenced by the owner's token, from the holder's own
        session: it lands only while the lock is held and the token is the newest drawn.

        Raises:
            LockLost: the owner does not hold the lock, or it is lost.
            StaleToken: a newer token was drawn (possible for shared holders); nothing was written.
        """

    def _lost_as(self, owner: int) -> bool:
        """Whether the backend already knows the owner's hold is lost (no round trip)."""

    @property
    def is_locked(self) -> bool:
        """True while some owner in this process holds the lock through this object."""

    @property
    def lock_counter(self) -> int:
        """How many times the calling thread has acquired without releasing."""

    @property
    def name(self) -> str:
        """The lock's name."""

    @property
    def lock_file(self) -> str:
        """The lock's name (``FileLock`` spells it ``lock_file``; ``Timeout.lock_file`` holds it too)."""

    @property
    def timeout(self) -> float:
        """The default timeout in seconds (settable)."""

    @timeout.setter
    def timeout(self, value: float) -> None: ...
    @property
    def blocking(self) -> bool:
        """The default blocking mode."""

    @property
    def shared(self) -> bool:
        """True for a shared lock."""

    @property
    def purpose(self) -> str | None:
        """The purpose shown to others."""

@final
class CoordAcquired:
    """Returned by ``CoordLock.acquire()``; entering gives the lock, exiting releases it."""

    def __enter__(self) -> CoordLock: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool: ...

@final
class CoordCancel:
    """Cancels coordinator waits from another thread (sticky: every later wait using it ends too)."""

    def __new__(cls) -> Self: ...
    def cancel(self) -> None:
        """Cancel every present and future wait that uses this."""

    @property
    def cancelled(self) -> bool:
        """Whether ``cancel()`` was called."""

def _coord_state_lock_name(name: str) -> str:
    """The name of the lock that guards coordinator state ``name`` (``state:<name>``).

    Raises:
        InvalidName: ``name`` is empty, has a control character, or is too long once prefixed.
    """

@disjoint_base
class CoordTaskQueue:
    """A task queue from a ``Coordinator`` (``coord.tasks(queue)``): the ``TaskQueue`` API on
    ``file://DIR`` and ``postgresql://``, where no task is ever held by two claimants and the claims
    of a dead claimant return to the queue at once.

    A claim belongs to this handle and lives as long as its claimant does: the process on
    ``file://`` (the handle keeps a lock file per claim ``flock``ed), the handle's session on
    PostgreSQL (kept alive by a heartbeat; a killed process's session ends at once, a paused one's
    after the lease). ``close()`` (or leaving ``with``, or garbage collection) ends this handle's
    claims as a death would. A claim whose claimant is gone counts as no claim: the task is free for
    ``claim`` and ``claim_next`` and listed without owner. Waiters in ``claim_next`` are woken by an
    ``add`` or a ``release`` (PostgreSQL: ``LISTEN``/``NOTIFY``; files: the queue file's change); a
    task freed by a death is found by the next look.

    Task ids: not empty, no ``/``, NUL or control character, not ``.`` or ``..``, at most 200 bytes.

    Args:
        coordinator: The coordinator.
        queue: The queue's name (the rules of lock names).
        timeout: Default timeout in seconds for every operation: negative waits forever, ``0`` is a
            single attempt.
    """

    def __new__(cls, coordinator: Coordinator, queue: str, *, timeout: float = -1.0) -> Self: ...
    @property
    def name(self) -> str:
        """The queue's name."""

    @property
    def timeout(self) -> float:
        """The default timeout in seconds (settable)."""

    @timeout.setter
    def timeout(self, value: float) -> None: ...
    def add(self, *task_ids: str, timeout: float | None = None) -> int:
        """Append the tasks not yet in the queue (creating it); waiters wake. Returns how many were added.

        Raises:
            InvalidName: a task id breaks the rules above (nothing is added).
        """

    def remove(self, *task_ids: str, timeout: float | None = None) -> int:
        """Remove the tasks (claimed or not): for work that is done. Returns how many were removed."""

    def claim(self, task_id: str, *, by: str, timeout: float | None = None) -> ClaimResult:
        """Claim ``task_id`` for ``by``: ``claimed``, ``taken`` (``owner`` names the live claim),
        ``missing`` or ``no_queue``. A task whose claimant died is claimed."""

    def claim_next(
        self, *, by: str, block: bool = True, timeout: float | None = None, cancel: CoordCancel | None = None
    ) -> str | None:
        """Claim the first free task in queue order and return its id; if there is none and ``block``,
        sleep until one is added or released, until ``timeout``. ``None`` if none was claimed.

        Raises:
            Cancelled: ``cancel`` was cancelled; nothing was claimed (a claim that raced it is
                given back).
            KeyboardInterrupt: Ctrl-C during the wait; nothing was claimed.
        """

    def release(
        self, task_id: str, *, by: str, force: bool = False, timeout: float | None = None
    ) -> Literal["released", "not_claimed", "claimed_by_other", "missing", "no_queue", "lost"]:
        """Release ``task_id``. For a task this handle claimed: ``released``, or ``lost`` (nothing
        changed) if the claim ended meanwhile (this process or session was taken for dead: another
        claimant may hold the task now). For any other task, as ``TaskQueue.release``: ``by`` must match
        the live claim (``claimed_by_other`` otherwise) unless ``force``; a dead claim is
        ``not_claimed``. Waiters in ``claim_next`` wake."""

    def owner(self, task_id: str) -> dict[str, Any] | None:
        """The live claim on ``task_id`` (``by``, ``host``, ``pid``, ``since``), or ``None``."""

    def tasks(self) -> list[tuple[str, dict[str, Any] | None]]:
        """Every task in queue order with its live claim (``None`` if free)."""

    def close(self) -> None:
        """End this handle's claims (their tasks return to the queue)."""

    def __enter__(self) -> Self: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool: ...

@disjoint_base
class CoordClaim:
    """A scope claim from a ``Coordinator``: a set of paths of a project, held exclusively or shared
    (``LockManager`` semantics on every backend; see ``ferrolock._coord_claims`` for path names).

    A claim on ``a/b`` covers ``a/b`` and everything below it (not ``a/bc``); two claims conflict when
    some path of one is equal to or below some path of the other, unless both are shared. The set is
    claimed all or none. Re-entrant per thread; two claim objects exclude each other even in one
    process; a thread that holds a conflicting claim through another object gets ``WouldDeadlock``
    instead of waiting for itself. On PostgreSQL a claim lives in its owner's session: a crash frees it
    at once, a pause past the lease frees it and ``ensure_held()`` then raises ``LockLost``.

    Args:
        coordinator: Where the claim lives.
        paths: The paths (relative names in the project, ``"."`` for all of it, or absolute under
            ``root``).
        project: The project key.
        root: Where this host keeps the project (absolute), for absolute paths.
        shared: Shared claims do not conflict with each other.
        purpose: Shown in ``live_claims()`` and in others' ``Timeout`` errors.
        timeout: Default timeout in seconds (negative waits forever, ``0`` is one attempt).
        blocking: Default for ``acquire(blocking=...)``.
        on_lost: Called (on a background thread) when the backend finds the held claim lost.

    Raises:
        InvalidName: a path is empty, has ``..`` or a control character, is absolute without a root
            or outside it; the set is empty; or the project key is bad.
    """

    def __new__(
        cls,
        coordinator: Coordinator,
        paths: list[str],
        *,
        project: str = "default",
        root: str | None = None,
        shared: bool = False,
        purpose: str | None = None,
        timeout: float = -1.0,
        blocking: bool = True,
        on_lost: Callable[[], object] | None = None,
    ) -> Self: ...
    def acquire(
        self, timeout: float | None = None, *, blocking: bool | None = None, cancel: CoordCancel | None = None
    ) -> CoordClaimAcquired:
        """Claim for the calling thread, waiting while a live claim conflicts (on PostgreSQL in the
        server, woken by that claim's release or its owner's death).

        Raises:
            Timeout: a conflicting claim did not end in time; the error names its holder.
            WouldDeadlock: this thread holds a conflicting claim through another object.
            Cancelled: ``cancel`` was cancelled; nothing is claimed.
        """

    def release(self, force: bool = False) -> None:
        """Release one level of the calling thread's claim (all levels with ``force``)."""

    def __enter__(self) -> Self: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool: ...
    def ensure_held(self) -> None:
        """Check with the backend that the calling thread still holds the claim.

        Raises:
            LockLost: the lease ran out, the session ended, or the thread does not hold the claim.
        """

    @property
    def is_held(self) -> bool:
        """Whether the calling thread holds the claim (no round trip)."""

    @property
    def lost(self) -> bool:
        """Whether the backend already knows the calling thread's claim is lost (no round trip)."""

    @property
    def project(self) -> str:
        """The project key."""

    @property
    def paths(self) -> list[str]:
        """The claimed paths, normalised: relative, sorted, covered ones dropped (``"."`` is all)."""

    @property
    def shared(self) -> bool:
        """Whether the claim is shared."""

    @property
    def purpose(self) -> str | None:
        """The purpose shown to others."""

    @property
    def timeout(self) -> float:
        """The default timeout in seconds."""

@final
class CoordClaimAcquired:
    """Returned by ``CoordClaim.acquire()``; entering gives the claim, exiting releases it."""

    def __enter__(self) -> CoordClaim: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool: ...

def _claims_find_conflict(
    coordinator: Coordinator, project: str, paths: list[str], root: str | None = None, shared: bool = False
) -> dict[str, Any] | None:
    """The first live claim of ``project`` that conflicts with claiming ``paths``, or ``None``."""

def _claims_wait_for_scope(
    coordinator: Coordinator,
    project: str,
    paths: list[str],
    timeout: float,
    root: str | None = None,
    shared: bool = False,
    cancel: CoordCancel | None = None,
) -> bool:
    """Wait until nothing conflicts with claiming ``paths`` (``True``) or ``timeout`` passes (``False``)."""

def _claims_live(coordinator: Coordinator, project: str) -> list[dict[str, Any]]:
    """Every live claim of ``project``."""

def _coord_schema_sql(schema: str = "ferrolock") -> str:
    """The SQL that creates the coordinator's PostgreSQL schema (``ferrolock schema --sql``)."""

@final
class _RawAdvisory:
    """A bare ``pg_advisory_lock`` session through the same client library: the benchmark's floor."""

    def __new__(cls, url: str) -> Self: ...
    def lock(self, key: int) -> None:
        """``pg_advisory_lock(key)``, waiting in the server."""

    def try_lock(self, key: int) -> bool:
        """``pg_try_advisory_lock(key)``: one attempt."""

    def unlock(self, key: int) -> None:
        """``pg_advisory_unlock(key)``."""

# The legacy layouts' file names (from the core modules that own each layout).
LOCK_SUFFIX: Final = ".lock"
JOB_LOCK_FILE: Final = ".lock"
JOBS_INDEX_LOCK_FILE: Final = ".jobs_index.lock"
WORKSPACE_DIR: Final = "workspace"
WORKSPACE_SETUP_LOCK_FILE: Final = ".workspace_setup.lock"
SCOPE_RUNNING_DIR: Final = ".running"
SCOPE_SENTINEL_FILE: Final = ".acquire.lock"
BLACKBOX5_STATE_LOCK_FILE: Final = "STATE.lock"
TODO2_DIR: Final = ".todo2"
TODO2_LOCKS_DIR: Final = "locks"
TODO2_STATE_LOCK_FILE: Final = "state.todo2.json.lock"
TODO2_TASK_LOCK_PREFIX: Final = "task_"
