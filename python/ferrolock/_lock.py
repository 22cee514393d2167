"""``FileLock``: the native lock plus the two Python protocols that are easier to write in Python:
decorator use (``contextlib.ContextDecorator``) and ``async with``."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from contextlib import ContextDecorator

from ._ferrolock import CancelToken, _check_timeout
from ._ferrolock import FileLock as _NativeFileLock
from .exceptions import Timeout

__all__ = ["FileLock"]


class FileLock(_NativeFileLock, ContextDecorator):
    """A cross-process lock on one file. See ``ferrolock._ferrolock.FileLock`` for the full API.

    Also usable as a decorator (``@FileLock("x.lock")``) and with ``async with``.

    Async acquisitions belong to the event loop, not to a thread or a task: tasks of one loop that
    share a lock object take turns through an ``asyncio.Lock`` (first come, first served), then the
    winner takes the file lock without blocking the loop. So ``await lock.acquire_async()`` may run in
    a helper task (``asyncio.wait_for``) and ``release_async()`` in another. Async use is not
    re-entrant, and a thread should not mix ``with lock`` and ``async with lock`` on one object.
    """

    async def __aenter__(self) -> FileLock:
        await self.acquire_async()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release_async()

    async def acquire_async(self, timeout: float | None = None, *, blocking: bool | None = None) -> None:
        """Acquire for the running event loop without blocking it.

        The lock is tried at once; if another process (or another lock object) holds it, a helper
        thread waits for it in the kernel while the loop keeps running. Cancelling the awaiting task
        cancels that wait and leaves nothing held, even if the lock was granted at the same moment.

        Raises:
            Timeout: the lock was not free within ``timeout`` seconds (default: the lock's timeout).
        """
        timeout = self.timeout if timeout is None else _check_timeout(timeout)
        blocking = self.blocking if blocking is None else blocking
        started = time.monotonic()
        gate = self._async_gate()
        if not blocking or timeout == 0:
            if gate.locked():
                raise Timeout(self.lock_file)
            await gate.acquire()
        elif timeout < 0:
            await gate.acquire()
        else:
            try:
                await asyncio.wait_for(gate.acquire(), timeout)
            except asyncio.TimeoutError:
                raise Timeout(self.lock_file) from None
        try:
            await self._acquire_file_async(timeout, blocking, started)
        except BaseException:
            gate.release()
            raise

    async def release_async(self) -> None:
        """Release an acquisition made with ``acquire_async`` (or ``async with``) on this loop."""
        if self._release_as(_loop_owner()):
            self._async_gate().release()

    async def _acquire_file_async(self, timeout: float, blocking: bool, started: float) -> None:
        owner = _loop_owner()
        try:
            self._acquire_as(owner, 0.0)
            return
        except Timeout:
            if not blocking or timeout == 0:
                raise
        remaining = -1.0 if timeout < 0 else max(timeout - (time.monotonic() - started), 0.0)
        await _wait_in_thread(self, owner, remaining)

    def _async_gate(self) -> asyncio.Lock:
        """The ``asyncio.Lock`` that orders this object's users on the running loop."""
        loop = asyncio.get_running_loop()
        gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
        gates = self.__dict__.setdefault("_ferrolock_async_gates", weakref.WeakKeyDictionary())
        gate = gates.get(loop)
        if gate is None:
            gate = gates[loop] = asyncio.Lock()
        return gate


def _loop_owner() -> int:
    """The owner id of the running event loop: its id (an address, so below 2**63), which can never
    equal a thread's owner id (those have the top bit set), so loop and thread owners never collide."""
    return id(asyncio.get_running_loop()) | 1


async def _wait_in_thread(lock: FileLock, owner: int, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    token = CancelToken()
    handoff = threading.Lock()
    state = {"abandoned": False}

    def deliver(result: BaseException | None) -> None:
        if done.done():
            return
        if result is None:
            done.set_result(None)
        else:
            done.set_exception(result)

    def hand_over(result: BaseException | None) -> None:
        # RuntimeError: the event loop closed, so the awaiting task is gone (and was cancelled).
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(deliver, result)

    def wait() -> None:
        try:
            lock._acquire_as(owner, timeout, cancel=token)
        except BaseException as exc:  # handed to the awaiting task
            if not token.cancelled:
                hand_over(exc)
            return
        with handoff:
            if state["abandoned"]:
                # The task was cancelled while the lock was being granted: give it back.
                lock._release_as(owner)
                return
        hand_over(None)

    threading.Thread(target=wait, name=f"ferrolock-wait-{lock.lock_file}", daemon=True).start()
    try:
        await done
    except asyncio.CancelledError:
        with handoff:
            state["abandoned"] = True
            if lock._lock_count_as(owner):
                lock._release_as(owner)
        token.cancel()
        raise
