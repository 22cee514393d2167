"""The asyncio machinery shared by ``FileLock``'s ``async with`` and ``AsyncFileLock``.

* ``AdmissionGate``: first come, first served admission of one acquisition at a time on one lock object,
  across tasks, event loops and threads; a waiter honours its own timeout, ``blocking=False`` and
  ``cancel_check``, and a cancelled waiter leaves the queue without stalling it.
* ``wait_in_thread``: the kernel wait for a lock someone else holds, in a helper thread, while the loop
  runs on. Cancelling the awaiting task cancels the wait and leaves nothing held, even if the lock was
  granted at that moment.
* ``loop_owner``: the owner id of an event loop. Ids are never reused (``FileLock._new_owner``), so a loop
  that closes while holding leaves its hold to nobody, even if a new loop gets its address (``id()``).
* ``LoopAcquisitions``: ``FileLock.acquire_async``/``release_async``: an acquisition belongs to the event
  loop that made it (any task of that loop may release it), and async users of one object take turns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Final, Protocol

from ._ferrolock import CancelToken, _check_timeout
from ._ferrolock import FileLock as _NativeFileLock
from .exceptions import Timeout

__all__ = ["AdmissionGate", "LoopAcquisitions", "loop_owner", "wait_in_thread"]

_LOGGER: Final = logging.getLogger("filelock")


class _Lock(Protocol):
    """What these helpers use of a native lock."""

    @property
    def lock_file(self) -> str: ...
    @property
    def timeout(self) -> float: ...
    @property
    def blocking(self) -> bool: ...

    def _acquire_as(self, owner: int, timeout: float | None = ..., *, cancel: CancelToken | None = ...) -> bool: ...
    def _release_as(self, owner: int, force: bool = ...) -> bool: ...
    def _lock_count_as(self, owner: int) -> int: ...


# --- owners ----------------------------------------------------------------------------------------------

_LOOP_OWNERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()
_UNWEAKREFABLE_LOOP_OWNERS: dict[int, tuple[asyncio.AbstractEventLoop, int]] = {}
_OWNERS_LOCK = threading.Lock()


def loop_owner(loop: asyncio.AbstractEventLoop) -> int:
    """The owner id of ``loop``: made the first time it is asked for, never given to anything else."""
    with _OWNERS_LOCK:
        try:
            owner = _LOOP_OWNERS.get(loop)
            if owner is None:
                owner = _LOOP_OWNERS[loop] = _NativeFileLock._new_owner()
        except TypeError:  # a loop class without weak references: keep it (and so its address) alive
            kept = _UNWEAKREFABLE_LOOP_OWNERS.get(id(loop))
            if kept is None or kept[0] is not loop:
                kept = _UNWEAKREFABLE_LOOP_OWNERS[id(loop)] = (loop, _NativeFileLock._new_owner())
            owner = kept[1]
        return owner


# --- admission -------------------------------------------------------------------------------------------


class AdmissionGate:
    """Admits one entrant at a time, first come, first served, whatever task, loop or thread it runs in.

    Each entrant queues behind the ticket of the one before it (``concurrent.futures.Future``s, which any
    loop can await), and completes its own ticket when it leaves. An entrant that gives up (timeout,
    ``blocking=False``, ``cancel_check``, cancellation) leaves its place to its successor once its own
    predecessor has left, so the queue never stalls and never reorders.
    """

    def __init__(self) -> None:
        self._tail_lock = threading.Lock()
        self._tail: concurrent.futures.Future[None] | None = None

    def busy(self) -> bool:
        with self._tail_lock:
            return self._tail is not None and not self._tail.done()

    async def enter(
        self,
        deadline: float | None,
        *,
        blocking: bool = True,
        cancel_check: Callable[[], bool] | None = None,
        poll_interval: float = 0.05,
    ) -> concurrent.futures.Future[None]:
        """Queue and wait for admission; the ticket returned is given back to ``leave``.

        Raises:
            Timeout: not admitted before ``deadline`` (``time.monotonic()``), at once with ``blocking=False``,
                or ``cancel_check()`` returned true. ``lock_file`` is filled in by the caller.
        """
        ticket: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._tail_lock:
            predecessor, self._tail = self._tail, ticket
        if predecessor is None or predecessor.done():
            return ticket
        try:
            await self._wait_for(predecessor, deadline, blocking, cancel_check, poll_interval)
        except BaseException:
            predecessor.add_done_callback(lambda _: self.leave(ticket))
            raise
        return ticket

    @staticmethod
    async def _wait_for(
        predecessor: concurrent.futures.Future[None],
        deadline: float | None,
        blocking: bool,
        cancel_check: Callable[[], bool] | None,
        poll_interval: float,
    ) -> None:
        if not blocking:
            raise Timeout("")
        waiter = asyncio.wrap_future(predecessor)
        while not predecessor.done():
            if cancel_check is not None and cancel_check():
                raise Timeout("")
            step: float | None = max(poll_interval, 0.001) if cancel_check is not None else None
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Timeout("")
                step = left if step is None else min(step, left)
            await asyncio.wait((waiter,), timeout=step)

    def leave(self, ticket: concurrent.futures.Future[None]) -> None:
        with self._tail_lock:
            if self._tail is ticket:
                self._tail = None
        if not ticket.done():
            ticket.set_result(None)


# --- the kernel wait -------------------------------------------------------------------------------------


async def wait_in_thread(
    lock: _Lock,
    owner: int,
    timeout: float,
    *,
    cancel_check: Callable[[], bool] | None = None,
    poll_interval: float = 0.05,
) -> bool:
    """Wait in a helper thread (in the kernel) until ``owner`` has the lock or ``timeout`` passes; ``True``
    if the acquisition was fresh. ``cancel_check`` is called on the loop every ``poll_interval`` seconds:
    a true result ends the wait with ``Timeout``. Cancelling the awaiting task leaves nothing held."""
    token = CancelToken()
    outcome: concurrent.futures.Future[bool] = concurrent.futures.Future()

    def wait() -> None:
        try:
            outcome.set_result(lock._acquire_as(owner, timeout, cancel=token))
        except BaseException as exc:  # handed to the awaiting task
            outcome.set_exception(exc)

    threading.Thread(target=wait, name=f"ferrolock-wait-{lock.lock_file}", daemon=True).start()
    done = asyncio.wrap_future(outcome)
    try:
        while True:
            step = None if cancel_check is None else max(poll_interval, 0.001)
            finished, _ = await asyncio.wait((done,), timeout=step)
            if finished:
                return done.result()
            if cancel_check is not None and cancel_check():
                await _give_up(lock, owner, token, done)
                _LOGGER.debug("Cancellation requested for lock %s on %s", id(lock), lock.lock_file)
                raise Timeout(lock.lock_file)
    except asyncio.CancelledError:
        await _give_up(lock, owner, token, done)
        raise


async def _give_up(lock: _Lock, owner: int, token: CancelToken, done: asyncio.Future[bool]) -> None:
    """End the helper's wait and give back what it got, if anything; return only once the helper is done.

    Waiting for the helper (the cancel token wakes it at once) is what makes "nothing held" true the moment
    the caller sees its cancellation: a grant given back later by the helper would, meanwhile, count as a
    hold of ``owner``, which another task of an object-owned lock would take for re-entry."""
    token.cancel()
    while not done.done():
        with contextlib.suppress(asyncio.CancelledError):  # a second cancel: still finish the give-back
            await asyncio.wait((done,))
    if not done.cancelled() and done.exception() is None:
        lock._release_as(owner)


# --- FileLock's async with -------------------------------------------------------------------------------


class LoopAcquisitions:
    """``FileLock``'s async acquisitions: each belongs to the event loop that made it, and the async users
    of one lock object are admitted one at a time, first come, first served (so tasks of one loop, which
    share an owner, still exclude each other). Not re-entrant."""

    def __init__(self, lock: Any) -> None:
        self._lock: _Lock = lock
        self._gate = AdmissionGate()
        self._held: dict[int, concurrent.futures.Future[None]] = {}

    async def acquire(self, timeout: float | None, blocking: bool | None) -> None:
        lock = self._lock
        timeout = lock.timeout if timeout is None else _check_timeout(timeout)
        blocking = lock.blocking if blocking is None else blocking
        owner = loop_owner(asyncio.get_running_loop())
        started = time.monotonic()
        immediate = not blocking or timeout == 0
        deadline = None if timeout < 0 else started + timeout
        try:
            ticket = await self._gate.enter(deadline, blocking=not immediate)
        except Timeout:
            raise Timeout(lock.lock_file) from None
        try:
            try:
                lock._acquire_as(owner, 0.0)
            except Timeout:
                if immediate:
                    raise
                left = -1.0 if deadline is None else max(deadline - time.monotonic(), 0.0)
                await wait_in_thread(lock, owner, left)
        except BaseException:
            self._gate.leave(ticket)
            raise
        self._held[owner] = ticket

    async def release(self) -> None:
        owner = loop_owner(asyncio.get_running_loop())
        if self._lock._release_as(owner):
            ticket = self._held.pop(owner, None)
            if ticket is not None:
                self._gate.leave(ticket)
