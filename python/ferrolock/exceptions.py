"""The exceptions ferrolock raises.

They live in Python (and are raised from Rust by name) so that they can use multiple inheritance:
``Timeout`` is both a ``LockError`` and a builtin ``TimeoutError``, so ``except TimeoutError`` keeps
working for code written against py-filelock, and every class pickles across processes.

System call failures are not wrapped: they are the builtin ``OSError`` subclasses
(``PermissionError``, ``IsADirectoryError``, ...) with ``errno``, ``strerror`` and ``filename`` set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._types import HolderRecord

__all__ = [
    "Cancelled",
    "CoordinatorError",
    "CorruptFileError",
    "InvalidName",
    "LockError",
    "LockLost",
    "StaleToken",
    "Timeout",
    "UntrustedPathError",
    "WouldDeadlock",
]


class LockError(Exception):
    """Base class of every error ferrolock raises itself."""


class Timeout(LockError, TimeoutError):
    """The lock could not be acquired in time (or at all, for a non-blocking attempt).

    ``str()`` is py-filelock's message, ``"The file lock '<path>' could not be acquired."``, with who held
    the lock when that is known: ``"... could not be acquired: held by pid 4121 on build-3 since
    2026-11-22T04:30:00Z (nightly build)."``. ``repr()`` and pickling are py-filelock's too.

    Attributes:
        lock_file: Path of the lock file.
        holder: The holder record of whoever held the lock when the wait ended (a dict with
            ``pid``, ``host``, ``since``, ``purpose``, ``version``: ``ferrolock.HolderRecord``), or
            ``None`` if unknown.
    """

    def __init__(self, lock_file: str, holder: HolderRecord | None = None, message: str | None = None) -> None:
        self.lock_file = lock_file
        self.holder = holder
        self._custom_message = message is not None
        self.message = message if message is not None else _timeout_message(lock_file, holder)
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        name = type(self).__name__
        if self._custom_message:
            return f"{name}({self.lock_file!r}, holder={self.holder!r}, message={self.message!r})"
        if self.holder is not None:
            return f"{name}({self.lock_file!r}, holder={self.holder!r})"
        return f"{name}({self.lock_file!r})"

    def __reduce__(self) -> tuple[type[Timeout], tuple[str] | tuple[str, HolderRecord | None, str | None]]:
        if self.holder is None and not self._custom_message:
            return (type(self), (self.lock_file,))
        return (type(self), (self.lock_file, self.holder, self.message if self._custom_message else None))


def _timeout_message(lock_file: str, holder: HolderRecord | None) -> str:
    if holder is None:
        return f"The file lock '{lock_file}' could not be acquired."
    held_by = f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
    if holder.get("purpose"):
        held_by += f" ({holder['purpose']})"
    return f"The file lock '{lock_file}' could not be acquired: held by {held_by}."


class WouldDeadlock(LockError, RuntimeError):
    """The caller already holds this lock file through another lock object, so waiting for it without end
    would wait for itself forever. Reuse the first object (it is re-entrant), or construct both with
    ``is_singleton=True``. The message starts with ``"Deadlock: "``, as py-filelock's does. A wait with a
    timeout waits and ends in ``Timeout`` instead (another thread may drop the other object meanwhile)."""


class Cancelled(LockError):
    """A wait was cancelled through its ``CancelToken``. Nothing is held."""


class InvalidName(LockError, ValueError):
    """An identifier that becomes part of a path (a job id, loop name or task id) would escape its
    directory (``..``, ``/``, an absolute path) or contains a NUL byte."""


class UntrustedPathError(LockError, PermissionError):
    """A path leads through something another user controls, so ferrolock refuses to use it.

    In a directory that users other than its owner may write (world-writable, or sticky and
    group-writable, like ``/tmp``), ferrolock follows a symbolic link only if it belongs to you or to
    the directory's owner, and uses a lock, state or marker file only if it belongs to you or to the
    directory's owner (its owner could delete or replace it at any moment). The message names the link
    or file, its owner and the directory; ``errno`` is ``EACCES`` and ``filename`` the path asked for.
    See the README's *Security* section.
    """


class CorruptFileError(LockError, ValueError):
    """A file that must hold a known format does not parse. Nothing was overwritten.

    Attributes:
        path: The file.
        reason: What is wrong with it.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path} is corrupt: {reason}")

    def __reduce__(self) -> tuple[type[CorruptFileError], tuple[str, str]]:
        return (type(self), (self.path, self.reason))


class LockLost(LockError):
    """A coordinator lock is no longer held: its lease ran out (the holder was paused or cut off), its
    session ended (server restart, network failure), or the caller never held it. Whatever the lock
    protected may already belong to someone else: stop, do not write.

    Attributes:
        name: The lock's name.
        reason: What ended it.
    """

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"the lock {name!r} is lost: {reason}")

    def __reduce__(self) -> tuple[type[LockLost], tuple[str, str]]:
        return (type(self), (self.name, self.reason))


class StaleToken(LockLost):
    """A write fenced by a lock's token was refused because the lock has since been granted to a newer
    holder (whose token is larger). The write did not happen.

    Attributes:
        name: The lock's name.
        token: The refused token.
        current: The newest token granted for the lock.
    """

    def __init__(self, name: str, token: int, current: int) -> None:
        self.token = token
        self.current = current
        super().__init__(name, f"stale fencing token {token}: the lock has since been granted with token {current}")

    def __reduce__(self) -> tuple[type[StaleToken], tuple[str, int, int]]:  # type: ignore[override]
        return (type(self), (self.name, self.token, self.current))


class CoordinatorError(LockError):
    """The coordinator's backend failed or refused: a bad URL, a connection or server error, a missing
    schema the role may not create (the message names the command an administrator runs), or a
    connection pooler in transaction mode, which would break session locks."""
