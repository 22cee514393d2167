"""Type stubs and API reference for ``ferrolock._ferrolock``, the native (Rust) half of ferrolock.

Import the public names from ``ferrolock``; this module is private.
"""

from types import TracebackType
from typing import Any, Literal, final

from typing_extensions import Self, disjoint_base

__all__ = [
    "AcquireReturnProxy",
    "CancelToken",
    "FileLock",
    "ScopeDir",
    "ScopeEntry",
    "__version__",
    "_set_failpoint",
    "atomic_write",
    "probe",
    "process_ancestry",
    "remove_if_unheld",
    "validate_name",
]

__version__: str

@disjoint_base
class FileLock:
    """A cross-process lock on one file (``flock(2)``), compatible with py-filelock's ``FileLock``.

    Two ``FileLock`` objects on one path exclude each other, in one process or in many, and so do two
    threads using one object; re-entry (acquiring again while holding) only counts, per thread. A
    ``fcntl.flock`` user or shell ``flock(1)`` on the same path is excluded too.

    Waiting happens in the kernel with the GIL released: the waiter wakes microseconds after the
    holder releases or dies, uses no CPU while it waits, and a Ctrl-C on the main thread interrupts
    it. After ``fork()`` the child holds nothing: releasing in the child never releases the parent's
    lock.

    Args:
        lock_file: Path of the lock file. Created (with missing parent directories) on first use,
            never truncated, never followed if it is a symbolic link.
        timeout: Default timeout in seconds for ``acquire`` and ``with``: negative waits forever,
            ``0`` is a single attempt.
        mode: Permission bits for a newly created lock file (the umask still applies).
        blocking: Default for ``acquire(blocking=...)``; ``False`` makes every acquire one attempt.
        shared: Take a shared lock (``LOCK_SH``): any number of shared holders, no exclusive one.
        purpose: Written into the holder record, shown by ``holder()``, ``Timeout`` messages and
            ``ferrolock status``.
        create_dirs: Create missing parent directories.
        holder_record: Write a holder record after winning an exclusive lock.
        detect_deadlock: Raise ``WouldDeadlock`` instead of waiting forever when the calling thread
            already holds the same file through another lock object.

    Raises:
        InvalidName: the path is empty or contains a NUL byte.
        TypeError: the path is not a ``str`` or ``os.PathLike``.
    """

    def __new__(
        cls,
        lock_file: str | Any,
        timeout: float = -1.0,
        mode: int = 0o644,
        *,
        blocking: bool = True,
        shared: bool = False,
        purpose: str | None = None,
        create_dirs: bool = True,
        holder_record: bool = True,
        detect_deadlock: bool = True,
    ) -> Self: ...
    def acquire(
        self,
        timeout: float | None = None,
        poll_interval: float | None = None,
        *,
        blocking: bool | None = None,
        cancel: CancelToken | None = None,
    ) -> AcquireReturnProxy:
        """Acquire the lock for the calling thread, waiting in the kernel.

        Args:
            timeout: Seconds to wait; ``None`` uses the lock's ``timeout``, negative waits forever,
                ``0`` is one attempt.
            poll_interval: Accepted for py-filelock compatibility and ignored: ferrolock does not poll.
            blocking: ``False`` makes this one attempt whatever the timeout.
            cancel: A token another thread can use to abandon the wait.

        Returns:
            A context manager that releases on exit (``with lock.acquire(timeout=5): ...``).

        Raises:
            Timeout: the lock was not free in time (its message and ``holder`` name the holder).
            WouldDeadlock: this thread holds the file through another ``FileLock``.
            Cancelled: ``cancel`` was cancelled.
            KeyboardInterrupt: Ctrl-C during the wait; nothing is held.
            OSError: the lock file cannot be opened (a directory, a symlink, no permission, ...).
        """

    def release(self, force: bool = False) -> None:
        """Release one level of the calling thread's hold (all levels with ``force``).

        A thread that does not hold the lock releases nothing; it can never release another
        thread's (or process's) lock.
        """

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
        cancel: CancelToken | None = None,
    ) -> bool:
        """Acquire for an explicit owner id (used by the asyncio layer). True if newly taken."""

    def _release_as(self, owner: int, force: bool = False) -> bool:
        """Release for an explicit owner id. False if that owner held nothing."""

    def _lock_count_as(self, owner: int) -> int:
        """The re-entry depth of an explicit owner id."""

    @property
    def is_locked(self) -> bool:
        """True while some thread of this process holds the lock through this object."""

    @property
    def lock_counter(self) -> int:
        """How many times the calling thread has acquired without releasing."""

    @property
    def lock_file(self) -> str:
        """The lock file's path."""

    @property
    def timeout(self) -> float:
        """The default timeout in seconds (settable)."""

    @timeout.setter
    def timeout(self, value: float) -> None: ...
    @property
    def blocking(self) -> bool:
        """The default blocking mode."""

    @property
    def mode(self) -> int:
        """Permission bits used when creating the lock file."""

    @property
    def shared(self) -> bool:
        """True for a shared (``LOCK_SH``) lock."""

    @property
    def purpose(self) -> str | None:
        """The purpose written into holder records."""

    def holder(self) -> dict[str, Any] | None:
        """The live holder record of the lock file, or ``None`` if nobody holds it exclusively.

        The record is a dict with ``pid``, ``host``, ``since`` (RFC 3339, UTC), ``purpose`` and
        ``version``. It is read without disturbing the lock.
        """

@final
class AcquireReturnProxy:
    """Returned by ``FileLock.acquire()``; entering gives the lock, exiting releases it."""

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

def probe(path: str | Any) -> tuple[Literal["missing", "free", "held"], dict[str, Any] | None]:
    """Whether a lock file is held exclusively, and the holder record if so, without disturbing it.

    Returns:
        ``("missing", None)``, ``("free", None)`` (nobody, or only shared holders) or
        ``("held", record_or_None)``.

    Raises:
        OSError: the path is a symbolic link, not a regular file, or cannot be opened.
    """

def remove_if_unheld(path: str | Any) -> Literal["removed", "held", "missing"]:
    """Remove a lock file if, and only if, nobody holds it.

    Takes the lock without waiting, checks the path still names the locked file, unlinks it while
    holding it, then releases. Processes that were waiting on the old file notice and move to the new
    one, so this is safe while the fleet runs.
    """

def atomic_write(
    path: str | Any,
    data: bytes | str,
    *,
    mode: int | None = None,
    backup: str | Any | None = None,
    durable: bool = True,
    temp_path: str | Any | None = None,
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
        mode: Permission bits for the new file; default: keep the old file's (or ``0o666`` minus the
            umask for a new file).
        backup: Keep the previous version here (a hard link, so no copy and never a partial backup).
        durable: ``False`` skips both fsyncs (for scratch data only).
        temp_path: Use this fixed temporary path instead of a unique hidden one (legacy layouts; only
            safe under a lock every writer takes).

    Raises:
        OSError: a step failed (its message names the step); ``path`` is unchanged and no temporary
            file remains.
    """

def validate_name(what: str, name: str, *, nested: bool = False) -> str:
    """Return ``name`` unchanged if it is safe as a path component, else raise ``InvalidName``.

    Rejects empty names, ``.``, ``..``, ``/`` (unless ``nested``, which allows ``a/b`` but still
    rejects absolute paths and ``..`` components), NUL bytes and names over 255 bytes.
    """

def _set_failpoint(point: str | None, action: str = "error") -> None:
    """Test-only: make the write step ``point`` fail with EIO (``"error"``) or SIGKILL the process
    (``"crash"``); ``None`` disarms."""

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

    def __new__(cls, running_dir: str | Any) -> Self: ...
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
        (``False``; ``None`` or negative waits forever, ``0`` checks once).

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
