"""The coordinator: ``ferrolock.connect(url)`` gives the same lock API on one machine (``file://DIR``) and
across machines (``postgresql://...``). The native half does the work; this adds ``connect`` (with
``FERROLOCK_URL``), decorator use and ``async with`` for ``CoordLock``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import ContextDecorator
from typing import cast

from ._async_wait import loop_owner
from ._coord_claims import ClaimSpace
from ._coord_state import CoordState
from ._ferrolock import CoordCancel, CoordTaskQueue, _thread_owner
from ._ferrolock import Coordinator as _NativeCoordinator
from ._ferrolock import CoordLock as _NativeCoordLock
from ._types import HolderRecord
from .exceptions import CoordinatorError, Timeout

__all__ = ["CoordLock", "CoordState", "CoordTaskQueue", "Coordinator", "connect"]

URL_VARIABLE = "FERROLOCK_URL"


def connect(url: str | None = None) -> Coordinator:
    """Open the coordinator at ``url`` (default: the ``FERROLOCK_URL`` environment variable).

    ``file:///var/lib/myapp/locks`` uses flock lock files under that directory (one machine);
    ``postgresql://user@host/db?lease=15s`` uses PostgreSQL session advisory locks (any number of
    machines). See the README section "Across machines" for the URL options.

    Raises:
        CoordinatorError: no URL, a bad URL, an unreachable server, or a schema that cannot be created.
    """
    url = url if url is not None else os.environ.get(URL_VARIABLE)
    if not url:
        raise CoordinatorError(f"no coordinator URL: pass one to ferrolock.connect() or set {URL_VARIABLE}")
    return Coordinator(url)


def print_status(url: str, as_json: bool) -> int:
    """``ferrolock status --url URL``: every lock held or waited for, by whom, since when."""
    try:
        coord = connect(url)
        locks = coord.status()
    except CoordinatorError as exc:
        print(f"ferrolock: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps({"version": 1, "url": coord.url, "locks": locks}, indent=2))
        return 0
    if not locks:
        print(f"no locks held or waited for at {coord.url}")
    for lock in locks:
        for entry in lock["holders"]:
            holder = entry["holder"]
            who = (
                f"pid {holder['pid']} on {holder['host']} since {holder['since']}"
                + (f" ({holder['purpose']})" if holder["purpose"] else "")
                if holder
                else "unknown holder"
            )
            print(f"{lock['name']}\theld {entry['mode']} by {who}")
        if not lock["holders"]:
            print(f"{lock['name']}\tfree")
        if lock["waiting"]:
            print(f"{lock['name']}\t{lock['waiting']} waiting")
    return 0


class Coordinator(_NativeCoordinator):
    """A connection to a coordination service. See ``ferrolock._ferrolock.Coordinator``."""

    def lock(
        self,
        name: str,
        timeout: float = -1.0,
        *,
        shared: bool = False,
        purpose: str | None = None,
        blocking: bool = True,
        on_lost: Callable[[], object] | None = None,
    ) -> CoordLock:
        """A lock object for ``name`` with ``FileLock``'s surface plus ``token``, ``ensure_held()`` and
        ``fenced_write()``. Nothing is contacted until it is acquired."""
        return CoordLock(self, name, timeout, shared=shared, purpose=purpose, blocking=blocking, on_lost=on_lost)

    def state(self, name: str, timeout: float = -1.0, *, purpose: str | None = None) -> CoordState:
        """The named value ``name``, changed by a locked read-modify-write (``StateFile``'s semantics on
        every backend). See ``ferrolock.CoordState``."""
        return CoordState(self, name, timeout, purpose=purpose)

    def tasks(self, queue: str, *, timeout: float = -1.0) -> CoordTaskQueue:
        """The task queue ``queue``: ``TaskQueue``'s claim API on this coordinator. Its claims live as
        long as the returned handle (and this process or session); see ``CoordTaskQueue``."""
        return CoordTaskQueue(self, queue, timeout=timeout)

    def claims(self, project: str = "default", root: str | os.PathLike[str] | None = None) -> ClaimSpace:
        """The scope claims of ``project`` (``LockManager`` semantics on every backend); ``root`` is
        where this host keeps the project, for absolute paths. See ``ferrolock._coord_claims``."""
        return ClaimSpace(self, project, root)


class CoordLock(_NativeCoordLock, ContextDecorator):
    """A named lock from a coordinator. See ``ferrolock._ferrolock.CoordLock`` for the full API.

    Also usable as a decorator and with ``async with``. As with ``FileLock``, async acquisitions belong to
    the event loop: tasks of one loop take turns through an ``asyncio.Lock``, and the winner waits for
    the lock in a helper thread while the loop runs. Cancelling the awaiting task cancels the wait (on
    the server, for PostgreSQL) and leaves nothing held, even if the grant raced the cancel.
    """

    def __init__(
        self,
        coordinator: _NativeCoordinator,
        name: str,
        timeout: float = -1.0,
        *,
        shared: bool = False,
        purpose: str | None = None,
        blocking: bool = True,
        on_lost: Callable[[], object] | None = None,
    ) -> None:
        self._coordinator = coordinator

    def holder(self) -> HolderRecord | None:
        """The record of whoever holds the lock exclusively right now (``pid``, ``host``, ``since``,
        ``purpose``, ``version``), or ``None``: as ``FileLock.holder()``, from ``status()``."""
        for entry in self._coordinator.status():
            if entry["name"] == self.name:
                for held in entry["holders"]:
                    if held["mode"] == "exclusive":
                        return cast("HolderRecord | None", held["holder"])
        return None

    @property
    def token(self) -> int:
        """The fencing token of the caller's hold (the thread's, else the running loop's)."""
        return self._token_as(self._owner())

    @property
    def lost(self) -> bool:
        """Whether the backend already knows the caller's hold is lost (no round trip)."""
        return self._lost_as(self._owner())

    def ensure_held(self) -> None:
        """Check with the backend that the caller still holds the lock.

        Raises:
            LockLost: the lease ran out, the session ended, or the caller does not hold the lock.
        """
        self._ensure_held_as(self._owner())

    def fenced_write(self, value: bytes | str) -> None:
        """Store ``value`` under the lock's name, fenced by the caller's token and written from the
        holder's own session, so it lands only while the lock is still held.

        Raises:
            LockLost: the caller does not hold the lock, or lost it (its lease ran out).
            StaleToken: a newer token was drawn (shared holders); nothing was written.
        """
        self._fenced_write_as(self._owner(), value)

    def _owner(self) -> int:
        me = _thread_owner()
        if self._lock_count_as(me):
            return me
        with contextlib.suppress(RuntimeError):
            for_loop = _loop_owner()
            if self._lock_count_as(for_loop):
                return for_loop
        return me

    async def __aenter__(self) -> CoordLock:
        await self.acquire_async()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release_async()

    async def acquire_async(self, timeout: float | None = None, *, blocking: bool | None = None) -> None:
        """Acquire for the running event loop without blocking it.

        Raises:
            Timeout: the lock was not free within ``timeout`` seconds (default: the lock's timeout).
        """
        timeout = self.timeout if timeout is None else timeout
        blocking = self.blocking if blocking is None else blocking
        started = time.monotonic()
        gate = self._async_gate()
        if not blocking or timeout == 0:
            if gate.locked():
                raise Timeout(self.name)
            await gate.acquire()
        elif timeout < 0:
            await gate.acquire()
        else:
            try:
                await asyncio.wait_for(gate.acquire(), timeout)
            except asyncio.TimeoutError:
                raise Timeout(self.name) from None
        try:
            remaining = timeout if timeout <= 0 else max(timeout - (time.monotonic() - started), 0.001)
            await _wait_in_thread(self, _loop_owner(), remaining if blocking else 0.0)
        except BaseException:
            gate.release()
            raise

    async def release_async(self) -> None:
        """Release an acquisition made with ``acquire_async`` (or ``async with``) on this loop."""
        owner = _loop_owner()
        if await asyncio.to_thread(self._release_as, owner):
            self._async_gate().release()

    def _async_gate(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
        gates = self.__dict__.setdefault("_ferrolock_async_gates", weakref.WeakKeyDictionary())
        gate = gates.get(loop)
        if gate is None:
            gate = gates[loop] = asyncio.Lock()
        return gate


def _loop_owner() -> int:
    """The running loop's owner id, as ``FileLock`` gives it: never reused, so a loop that closes while
    holding leaves its hold to nobody, even if a new loop gets its address."""
    return loop_owner(asyncio.get_running_loop())


async def _wait_in_thread(lock: CoordLock, owner: int, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    cancel = CoordCancel()
    handoff = threading.Lock()
    state = {"abandoned": False}

    def deliver(error: BaseException | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def hand_over(error: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: the task is gone
            loop.call_soon_threadsafe(deliver, error)

    finished: asyncio.Future[None] = loop.create_future()

    def mark_finished() -> None:
        if not finished.done():
            finished.set_result(None)

    def wait() -> None:
        try:
            try:
                lock._acquire_as(owner, timeout, cancel=cancel)
            except BaseException as exc:
                if not cancel.cancelled:
                    hand_over(exc)
                return
            with handoff:
                if state["abandoned"]:
                    # The task was cancelled while the lock was being granted: give it back.
                    lock._release_as(owner)
                    return
            hand_over(None)
        finally:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(mark_finished)

    threading.Thread(target=wait, name=f"ferrolock-coord-wait-{lock.name}", daemon=True).start()
    try:
        await done
    except asyncio.CancelledError:
        with handoff:
            state["abandoned"] = True
        cancel.cancel()
        # The wait is cancelled on the server, which takes a round trip: the cancellation completes only
        # once the helper has given back whatever it was granted, so nothing is held when it does.
        await asyncio.shield(finished)
        if lock._lock_count_as(owner):
            await asyncio.to_thread(lock._release_as, owner)
        raise
