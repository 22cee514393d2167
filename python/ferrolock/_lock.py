"""``FileLock``: the native lock with py-filelock's construction rules and options, decorator use
(``contextlib.ContextDecorator``) and ``async with``."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ContextDecorator
from types import TracebackType
from typing import Any, Literal

from ._async_wait import LoopAcquisitions
from ._ferrolock import FileLock as _NativeFileLock
from ._lock_options import CLOSE_ERROR_POLICIES, LockMeta, check_lifetime
from ._log import watch_logging_levels

__all__ = ["FileLock"]

watch_logging_levels()


class FileLock(_NativeFileLock, ContextDecorator, metaclass=LockMeta):
    """A cross-process lock on one file. See ``ferrolock._ferrolock.FileLock`` for the locking API.

    Constructed as py-filelock's ``FileLock`` is (``ferrolock._lock_options``): a subclass may narrow
    ``__init__``'s signature, ``is_singleton=True`` shares one instance per path, and ``lifetime`` is
    validated and ignored. Also usable as a decorator (``@FileLock("x.lock")``) and with ``async with``
    (see ``acquire_async``).
    """

    _options_from: type

    def __init__(
        self,
        lock_file: str | os.PathLike[str],
        timeout: float = -1,
        mode: int = -1,
        thread_local: bool = True,  # py-filelock's positional parameter
        *,
        blocking: bool = True,
        is_singleton: bool = False,
        poll_interval: float = 0.05,
        lifetime: float | None = None,
        context_error_policy: Literal["chain", "group"] = "chain",
        close_error_policy: Literal["default", "raise", "suppress"] = "default",
        fallback_to_soft: bool = True,
        preserve_lock_file: bool = False,
        on_acquired: Callable[[int], None] | None = None,
        shared: bool = False,
        purpose: str | None = None,
        create_dirs: bool = True,
        holder_record: bool = True,
        detect_deadlock: bool = True,
    ) -> None:
        if close_error_policy not in CLOSE_ERROR_POLICIES:
            msg = f"close_error_policy must be 'default', 'raise', or 'suppress', got {close_error_policy!r}"
            raise ValueError(msg)
        check_lifetime(lifetime, type(self), stacklevel=2)
        super().__init__(
            lock_file,
            timeout,
            mode,
            thread_local,
            blocking=blocking,
            poll_interval=poll_interval,
            shared=shared,
            purpose=purpose,
            create_dirs=create_dirs,
            holder_record=holder_record,
            detect_deadlock=detect_deadlock,
            on_acquired=on_acquired,
            context_error_policy=context_error_policy,
        )
        self._is_singleton = is_singleton
        self._close_error_policy = close_error_policy
        self._fallback_to_soft = fallback_to_soft
        self._preserve_lock_file = preserve_lock_file

    @property
    def is_singleton(self) -> bool:
        """Whether this is the one instance of its class for its path (``is_singleton=True``)."""
        return self._is_singleton

    @property
    def lifetime(self) -> None:
        """Always ``None``: a kernel lock is never broken by age (see ``lifetime`` in the README)."""
        return None

    @lifetime.setter
    def lifetime(self, value: float | None) -> None:
        check_lifetime(value, type(self), stacklevel=2)

    @property
    def close_error_policy(self) -> Literal["default", "raise", "suppress"]:
        """Accepted for py-filelock compatibility. ferrolock keeps a released descriptor open for the next
        acquisition and closes it later, so a failing ``close(2)`` never reaches ``release()``."""
        return self._close_error_policy

    @property
    def fallback_to_soft(self) -> bool:
        """Accepted for py-filelock compatibility; ferrolock never falls back to an existence-marker lock
        (it would not exclude ``flock`` users of the same path): it raises the OS error instead."""
        return self._fallback_to_soft

    @property
    def preserve_lock_file(self) -> bool:
        """Accepted for py-filelock compatibility; ferrolock never removes a lock file on release."""
        return self._preserve_lock_file

    # ``async with``: acquisitions belong to the running event loop (see ``_async_wait``).

    async def __aenter__(self) -> FileLock:
        await self.acquire_async()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release_async()

    async def acquire_async(self, timeout: float | None = None, *, blocking: bool | None = None) -> None:
        """Acquire for the running event loop without blocking it.

        The lock is tried at once; if another process (or another lock object) holds it, a helper thread
        waits for it in the kernel while the loop keeps running. Tasks of one loop that share this object
        take turns (first come, first served). Cancelling the awaiting task cancels the wait and leaves
        nothing held, even if the lock was granted at the same moment.

        Raises:
            Timeout: the lock was not free within ``timeout`` seconds (default: the lock's timeout).
        """
        await _acquisitions(self).acquire(timeout, blocking)

    async def release_async(self) -> None:
        """Release an acquisition made with ``acquire_async`` (or ``async with``) on the running loop."""
        await _acquisitions(self).release()


FileLock._options_from = FileLock


def _acquisitions(lock: FileLock) -> LoopAcquisitions:
    found: Any = lock.__dict__.get("_ferrolock_loops")
    if found is None:
        found = lock.__dict__.setdefault("_ferrolock_loops", LoopAcquisitions(lock))
    return found  # type: ignore[no-any-return]
