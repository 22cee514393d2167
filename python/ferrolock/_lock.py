"""``FileLock``: the native lock plus the two Python protocols that are easier to write in Python:
decorator use (``contextlib.ContextDecorator``) and ``async with``."""

from __future__ import annotations

import asyncio
import threading
import time
from contextlib import ContextDecorator

from ._ferrolock import CancelToken
from ._ferrolock import FileLock as _NativeFileLock
from .exceptions import Timeout

__all__ = ["FileLock"]


def _task_owner() -> int:
    """The owner id of the running asyncio task: its id with the low bit set, which can never equal a
    thread id (``pthread_self()`` values are aligned), so task and thread owners never collide."""
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("async lock operations must run inside an asyncio task")
    return id(task) | 1


class FileLock(_NativeFileLock, ContextDecorator):
    """A cross-process lock on one file. See ``ferrolock._ferrolock.FileLock`` for the full API.

    Also usable as a decorator (``@FileLock("x.lock")``) and with ``async with``. An ``async with``
    acquisition belongs to the asyncio task, so two tasks on one event loop exclude each other.
    """

    async def __aenter__(self) -> FileLock:
        await self.acquire_async()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release_as(_task_owner())

    async def acquire_async(self, timeout: float | None = None, *, blocking: bool | None = None) -> None:
        """Acquire for the running task without blocking the event loop.

        The lock is tried at once; if it is busy, a helper thread waits for it in the kernel while
        the event loop keeps running. Cancelling the task cancels that wait, and leaves nothing held
        even if the lock was granted at the same moment.

        Raises:
            Timeout: the lock was not free within ``timeout`` seconds (default: the lock's timeout).
        """
        owner = _task_owner()
        timeout = self.timeout if timeout is None else timeout
        blocking = self.blocking if blocking is None else blocking
        if self._lock_count_as(owner) or not blocking or timeout == 0:
            self._acquire_as(owner, timeout, blocking=blocking)
            return
        started = time.monotonic()
        try:
            self._acquire_as(owner, 0.0)
            return
        except Timeout:
            pass
        remaining = -1.0 if timeout < 0 else max(timeout - (time.monotonic() - started), 0.0)
        await _wait_in_thread(self, owner, remaining)


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

    def wait() -> None:
        try:
            lock._acquire_as(owner, timeout, cancel=token)
        except BaseException as exc:  # handed to the awaiting task
            loop.call_soon_threadsafe(deliver, exc)
            return
        with handoff:
            if state["abandoned"]:
                # The task was cancelled while the lock was being granted: give it back.
                lock._release_as(owner)
                return
        loop.call_soon_threadsafe(deliver, None)

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
