"""``AsyncFileLock``: py-filelock's asyncio lock, waiting in the kernel instead of polling the loop.

py-filelock's ``AsyncFileLock`` retries a non-blocking ``flock`` every ``poll_interval`` seconds with
``asyncio.sleep`` in between. This one makes the same non-blocking attempt (in the executor, or on the
loop with ``run_in_executor=False``: it never blocks), and if someone else holds the lock, a helper
thread waits for it in the kernel while the loop runs on: the task resumes the moment the holder
releases or dies, not at the next poll.

Semantics, as py-filelock's:

* With ``thread_local=False`` (the default) the object owns its acquisitions: any task (or thread)
  re-enters it, ``lock_counter`` counts them, and any task may release. With ``thread_local=True``
  (only with ``run_in_executor=False``) each thread does, so the tasks of one loop share them.
* One acquisition at a time goes through an object's admission queue, first come, first served, across
  tasks and loops; a queued acquire keeps its own ``timeout``, ``blocking=False`` and ``cancel_check``.
* A task that waits forever for a path it holds through another ``AsyncFileLock`` (in the same task) gets
  ``WouldDeadlock`` at once; another task queues behind the holder, and a finite timeout or
  ``blocking=False`` ends in ``Timeout``.
* Cancelling a task while its acquisition is queued, attempted in the executor, or waiting in the kernel
  leaves nothing held: an attempt already running is awaited and what it took is given back.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import contextlib
import logging
import os
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, Literal, NoReturn

from ._async_wait import AdmissionGate, wait_in_thread
from ._ferrolock import _check_timeout
from ._lock import FileLock
from ._lock_options import canonical
from .exceptions import Timeout, WouldDeadlock

__all__ = ["AsyncAcquireReturnProxy", "AsyncFileLock"]

_LOGGER: Final = logging.getLogger("filelock")
#: (task, canonical path) -> id() of the AsyncFileLock through which that task holds that path.
_TASK_HOLDS: dict[tuple[asyncio.Task[Any] | None, str], int] = {}
_SYNC_USE: Final = "Use `async with`: acquire/release are coroutines and cannot be awaited in a sync context manager."


class AsyncFileLock(FileLock):
    """A cross-process lock on one file for asyncio code, with py-filelock's ``AsyncFileLock`` API.

    ``await lock.acquire()`` (usable as ``async with await lock.acquire():``), ``async with lock``,
    ``await lock.release(force=False)``; the options of ``FileLock``, plus ``loop`` (accepted, not
    needed: a dropped lock is released by its destructor), ``run_in_executor`` and ``executor`` (where
    the non-blocking attempt runs; waits always happen in a helper thread of their own).
    """

    def __init__(
        self,
        lock_file: str | os.PathLike[str],
        timeout: float = -1,
        mode: int = -1,
        thread_local: bool = False,  # py-filelock's positional parameter
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
        loop: asyncio.AbstractEventLoop | None = None,
        run_in_executor: bool = True,
        executor: concurrent.futures.Executor | None = None,
        shared: bool = False,
        purpose: str | None = None,
        create_dirs: bool = True,
        holder_record: bool = True,
    ) -> None:
        AsyncFileLock._check_family_options({"thread_local": thread_local, "run_in_executor": run_in_executor})
        super().__init__(
            lock_file,
            timeout,
            mode,
            thread_local,
            blocking=blocking,
            is_singleton=is_singleton,
            poll_interval=poll_interval,
            lifetime=lifetime,
            context_error_policy=context_error_policy,
            close_error_policy=close_error_policy,
            fallback_to_soft=fallback_to_soft,
            preserve_lock_file=preserve_lock_file,
            on_acquired=on_acquired,
            shared=shared,
            purpose=purpose,
            create_dirs=create_dirs,
            holder_record=holder_record,
            # Deadlocks are a matter of tasks here, not threads: see _raise_if_deadlock.
            detect_deadlock=False,
        )
        self._loop = loop
        self._run_in_executor = run_in_executor
        self._executor = executor
        self._gate = AdmissionGate()
        self._task_key: tuple[asyncio.Task[Any] | None, str] | None = None

    @staticmethod
    def _check_family_options(options: dict[str, Any]) -> None:
        if options.get("thread_local") and options.get("run_in_executor"):
            msg = "run_in_executor is not supported when thread_local is True"
            raise ValueError(msg)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The ``loop`` given at construction (ferrolock needs none)."""
        return self._loop

    @property
    def run_in_executor(self) -> bool:
        """Whether the non-blocking attempt (and ``on_acquired``) runs in the executor."""
        return self._run_in_executor

    @property
    def executor(self) -> concurrent.futures.Executor | None:
        """The executor for the attempt (``None``: the loop's default)."""
        return self._executor

    @executor.setter
    def executor(self, value: concurrent.futures.Executor | None) -> None:
        self._executor = value

    def __enter__(self) -> NoReturn:
        raise NotImplementedError(_SYNC_USE)

    def __exit__(self, *exc: object) -> NoReturn:
        raise NotImplementedError(_SYNC_USE)

    async def __aenter__(self) -> AsyncFileLock:
        await self.acquire()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._release_in_context(exc)

    async def acquire_async(self, timeout: float | None = None, *, blocking: bool | None = None) -> None:
        """The same as ``acquire`` (kept for code written against ``FileLock``)."""
        await self.acquire(timeout, blocking=blocking)

    async def release_async(self) -> None:
        """The same as ``release``."""
        await self.release()

    async def acquire(  # type: ignore[override]
        self,
        timeout: float | None = None,
        poll_interval: float | None = None,
        *,
        blocking: bool | None = None,
        cancel_check: Callable[[], bool] | None = None,
    ) -> AsyncAcquireReturnProxy:
        """Acquire without blocking the event loop.

        Raises:
            Timeout: not acquired within ``timeout`` seconds (default: the lock's), at once with
                ``blocking=False`` or ``timeout=0``, or when ``cancel_check()`` returned true.
            WouldDeadlock: this task holds the path through another ``AsyncFileLock`` and would wait forever.
        """
        timeout = self.timeout if timeout is None else _check_timeout(timeout)
        blocking = self.blocking if blocking is None else blocking
        poll = self.poll_interval if poll_interval is None else poll_interval
        immediate = not blocking or timeout == 0
        deadline = None if timeout < 0 else time.monotonic() + timeout
        owner = self._owner_now()
        try:
            ticket = await self._gate.enter(
                deadline, blocking=not immediate, cancel_check=cancel_check, poll_interval=poll
            )
        except Timeout:
            raise Timeout(self.lock_file) from None
        try:
            if self._lock_count_as(owner) == 0:
                if not immediate and deadline is None:
                    self._raise_if_deadlock()
                await self._acquire_fresh(owner, immediate, deadline, cancel_check, poll)
            else:
                self._acquire_as(owner, 0.0)  # re-entry: only counts
            _LOGGER.debug("Lock %s acquired on %s", id(self), self.lock_file)
        finally:
            self._gate.leave(ticket)
        return AsyncAcquireReturnProxy(self)

    async def _acquire_fresh(
        self,
        owner: int,
        immediate: bool,
        deadline: float | None,
        cancel_check: Callable[[], bool] | None,
        poll: float,
    ) -> None:
        _LOGGER.debug("Attempting to acquire lock %s on %s", id(self), self.lock_file)
        if not await self._attempt(owner):
            if immediate:
                _LOGGER.debug("Failed to immediately acquire lock %s on %s", id(self), self.lock_file)
                raise Timeout(self.lock_file)
            left = -1.0 if deadline is None else max(deadline - time.monotonic(), 0.0)
            if deadline is None:
                _LOGGER.debug("Lock %s not acquired on %s, waiting until it is free ...", id(self), self.lock_file)
            else:
                _LOGGER.debug("Lock %s not acquired on %s, waiting %s seconds ...", id(self), self.lock_file, left)
            try:
                await wait_in_thread(self, owner, left, cancel_check=cancel_check, poll_interval=poll)
            except Timeout:
                _LOGGER.debug("Timeout on acquiring lock %s on %s", id(self), self.lock_file)
                raise
        self._task_key = (_current_task(), canonical(self.lock_file))
        _TASK_HOLDS[self._task_key] = id(self)

    async def _attempt(self, owner: int) -> bool:
        """One non-blocking attempt: in the executor (where ``on_acquired`` then runs too) or on the loop.
        If the task is cancelled meanwhile, the attempt is awaited and what it took is given back."""
        if not self._run_in_executor:
            return self._try(owner)
        attempt = asyncio.get_running_loop().run_in_executor(self._executor, self._try, owner)
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError as cancellation:
            while not attempt.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait((attempt,))
            error = None if attempt.cancelled() else attempt.exception()
            if error is None and not attempt.cancelled() and attempt.result():
                self._release_as(owner)
            if error is not None:  # the attempt failed too (its hook raised): report both
                self._raise_both(cancellation, error)
            raise

    def _raise_both(self, cancellation: asyncio.CancelledError, error: BaseException) -> NoReturn:
        """Raise a cancellation and an error that ended the same acquisition, by ``context_error_policy``:
        ``"chain"`` raises the error with the cancellation as its context (the cancellation taking the
        error's old context), ``"group"`` raises both in a ``BaseExceptionGroup``."""
        if self.context_error_policy == "group":
            members: list[BaseException] = [cancellation, error]
            _detach_repeated_contexts(members)
            raise _exception_group("lock acquisition cancellation and backend attempt both failed", members) from None
        if error.__context__ is not cancellation:
            cancellation.__context__ = error.__context__
        error.__context__ = cancellation
        raise error

    def _try(self, owner: int) -> bool:
        try:
            self._acquire_as(owner, 0.0)
        except Timeout:
            return False
        return True

    def _raise_if_deadlock(self) -> None:
        holder = _TASK_HOLDS.get((_current_task(), canonical(self.lock_file)))
        if holder is not None and holder != id(self):
            msg = (
                f"Deadlock: lock '{self.lock_file}' is already held by a different AsyncFileLock instance in this "
                "task. Use is_singleton=True to enable reentrant locking across instances."
            )
            raise WouldDeadlock(msg)

    def _owner_now(self) -> int:
        owner = self._owner
        return owner if owner is not None else FileLock._thread_owner()

    async def release(self, force: bool = False) -> None:  # type: ignore[override]
        """Release one acquisition (every one with ``force``); the lock is free when none is left.
        Releasing a lock this owner does not hold does nothing."""
        owner = self._owner_now()
        count = self._lock_count_as(owner)
        if count == 0:
            return
        frees = force or count == 1
        if frees:
            _LOGGER.debug("Attempting to release lock %s on %s", id(self), self.lock_file)
        self._release_as(owner, force)
        if frees:
            if self._task_key is not None and _TASK_HOLDS.get(self._task_key) == id(self):
                del _TASK_HOLDS[self._task_key]
            self._task_key = None
            _LOGGER.debug("Lock %s released on %s", id(self), self.lock_file)

    async def _release_in_context(self, body_error: BaseException | None) -> None:
        try:
            await self.release()
        except BaseException as release_error:
            if body_error is None or self.context_error_policy == "chain":
                raise
            raise _exception_group("lock body and release both failed", [body_error, release_error]) from None


AsyncFileLock._options_from = AsyncFileLock


class AsyncAcquireReturnProxy:
    """Returned by ``AsyncFileLock.acquire()``: ``async with await lock.acquire():`` releases on exit."""

    def __init__(self, lock: AsyncFileLock) -> None:
        self.lock = lock

    async def __aenter__(self) -> AsyncFileLock:
        return self.lock

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.lock._release_in_context(exc)


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop
        return None


def _detach_repeated_contexts(members: list[BaseException]) -> None:
    """Before grouping ``members``: drop a member's ``__context__`` that would show an error twice (another
    member, one nested in a member, or a copy of the member itself: a group with its message and leaves)."""
    for member in members:
        context = member.__context__
        if context is not None and (
            any(context is other or _nested_in(other, context) for other in members) or _same_group(member, context)
        ):
            member.__context__ = None


def _nested_in(group: BaseException, target: BaseException) -> bool:
    pending = list(getattr(group, "exceptions", ()))
    while pending:
        error = pending.pop()
        if error is target:
            return True
        pending.extend(getattr(error, "exceptions", ()))
    return False


def _same_group(first: BaseException, second: BaseException) -> bool:
    if first is second:
        return True
    if type(first) is not type(second) or not hasattr(first, "exceptions"):
        return False
    a: Any = first
    b: Any = second
    if a.message != b.message or len(a.exceptions) != len(b.exceptions):
        return False
    return all(_same_group(x, y) for x, y in zip(a.exceptions, b.exceptions, strict=True))


def _exception_group(message: str, errors: list[BaseException]) -> BaseException:
    """``BaseExceptionGroup(message, errors)``; on Python 3.10 the ``exceptiongroup`` backport's, and without
    it the second error with the first as its context."""
    group: Any = getattr(builtins, "BaseExceptionGroup", None)
    if group is None:  # pragma: no cover - Python 3.10
        try:
            import exceptiongroup  # type: ignore[import-not-found]
        except ImportError:
            errors[1].__context__ = errors[0]
            return errors[1]
        group = exceptiongroup.BaseExceptionGroup
    return group(message, errors)  # type: ignore[no-any-return]
