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
    "StateDraft",
    "StateEdit",
    "StateFile",
    "StateLock",
    "__version__",
    "_reset_logging_cache",
    "_set_failpoint",
    "atomic_write",
    "probe",
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

def _reset_logging_cache() -> None:
    """Forget the cached levels of Python loggers, after changing ``logging`` configuration at run
    time (Rust log records are filtered by a cache of the ``ferrolock.*`` loggers' levels)."""

# --- Durable state files (issue 5) -----------------------------------------------------------------

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
            ``locked``: negative waits forever, ``0`` is a single attempt.
        purpose: Written into the lock's holder record (shown by ``holder()`` and ``Timeout``).
        mode: Permission bits of the file; default: keep the old file's (``0o666`` minus the umask
            for a new one).

    Raises:
        InvalidName: ``path`` is empty or has no file name, or the lock, backup or temporary path is
            the state file itself.
    """

    def __new__(
        cls,
        path: str | Any,
        *,
        lock_path: str | Any | None = None,
        backup_path: str | Any | None = None,
        temp_path: str | Any | None = None,
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

    def write(self, data: bytes | str, timeout: float | None = None) -> None:
        """Replace the content under the lock (a blind write; ``str`` is written as UTF-8).

        Raises:
            Timeout: the lock was not free in time.
            OSError: a step of the write failed; the file and the backup are unchanged.
        """

    def remove(self, timeout: float | None = None) -> bool:
        """Remove the file under the lock. With a backup path, the removed content becomes the
        backup, so a removal is as recoverable as a write. Returns ``False`` if there was no file."""

    def set_aside(self, dest: str | Any, timeout: float | None = None) -> bool:
        """Move the file to ``dest`` under the lock, without touching the backup (for a corrupt file
        that must not replace a good backup). The next write starts a fresh file. Returns ``False``
        if there was no file."""

    def locked(self, timeout: float | None = None) -> StateLock:
        """A context manager that only holds the lock, for callers that compose ``read()`` and
        ``write()`` themselves (both re-enter the lock at once inside the block)."""

    def holder(self) -> dict[str, Any] | None:
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
