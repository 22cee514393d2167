"""``async with FileLock``: never blocks the event loop; acquisitions belong to tasks; cancellation
leaves nothing held."""

from __future__ import annotations

import asyncio
from pathlib import Path

import ferrolock
import pytest
from process_helpers import SPAWN, START_DEADLINE, cleanup_processes, hold_lock


@pytest.mark.timeout(30)
def test_async_with_acquires_and_releases(lock_path: Path) -> None:
    lock = ferrolock.FileLock(lock_path)

    async def main() -> tuple[bool, bool]:
        async with lock:
            inside = lock.is_locked
        return inside, lock.is_locked

    assert asyncio.run(main()) == (True, False)


@pytest.mark.timeout(30)
def test_two_tasks_sharing_one_object_exclude_each_other(lock_path: Path) -> None:
    lock = ferrolock.FileLock(lock_path)
    log: list[str] = []

    async def worker(name: str, entered: asyncio.Event | None = None) -> None:
        async with lock:
            log.append(f"{name} in")
            if entered is not None:
                entered.set()
            await asyncio.sleep(0.05)  # hold across an await: the other task must not get in
            log.append(f"{name} out")

    async def main() -> None:
        entered = asyncio.Event()
        first = asyncio.create_task(worker("a", entered))
        await entered.wait()
        await asyncio.wait_for(asyncio.gather(first, worker("b")), START_DEADLINE)

    asyncio.run(main())
    assert log == ["a in", "a out", "b in", "b out"]


@pytest.mark.timeout(60)
def test_waiting_does_not_block_the_event_loop_and_cancel_leaves_nothing_held(lock_path: Path) -> None:
    held, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold_lock, args=(str(lock_path), held, release))
    lock = ferrolock.FileLock(lock_path)

    async def main() -> int:
        ticks = 0
        waiting = asyncio.create_task(lock.acquire_async())
        for _ in range(20):  # the loop keeps running while the task waits for the other process
            await asyncio.sleep(0.005)
            ticks += 1
        assert not waiting.done()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        return ticks

    with cleanup_processes(holder):
        holder.start()
        assert held.wait(START_DEADLINE)
        assert asyncio.run(main()) == 20
        assert not lock.is_locked
        release.set()
        holder.join(START_DEADLINE)
    # Nothing was left held by the cancelled wait: another object can take the lock at once.
    with ferrolock.FileLock(lock_path).acquire(timeout=0):
        pass


@pytest.mark.timeout(60)
def test_an_async_waiter_gets_the_lock_when_the_holder_releases(lock_path: Path) -> None:
    held, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold_lock, args=(str(lock_path), held, release))
    lock = ferrolock.FileLock(lock_path)

    async def main() -> bool:
        task = asyncio.create_task(lock.acquire_async(timeout=START_DEADLINE))
        await asyncio.sleep(0)
        release.set()
        await asyncio.wait_for(task, START_DEADLINE)
        try:
            return lock.is_locked
        finally:
            await lock.__aexit__(None, None, None)

    with cleanup_processes(holder):
        holder.start()
        assert held.wait(START_DEADLINE)
        assert asyncio.run(main()) is True
        holder.join(START_DEADLINE)
    assert not lock.is_locked


@pytest.mark.timeout(30)
def test_async_timeout_raises_timeout(lock_path: Path) -> None:
    holder = ferrolock.FileLock(lock_path)
    holder.acquire()

    async def main() -> None:
        await ferrolock.FileLock(lock_path, detect_deadlock=False).acquire_async(timeout=0.05)

    with pytest.raises(ferrolock.Timeout):
        asyncio.run(main())
    holder.release()


@pytest.mark.timeout(30)
def test_acquiring_in_a_helper_task_and_releasing_in_another_works(lock_path: Path) -> None:
    """asyncio.wait_for runs the coroutine in a task of its own; the acquisition still belongs to the
    loop, so the caller's task can release it."""
    lock = ferrolock.FileLock(lock_path)

    async def main() -> tuple[bool, bool]:
        await asyncio.wait_for(lock.acquire_async(), START_DEADLINE)
        held = lock.is_locked
        await lock.release_async()
        return held, lock.is_locked

    assert asyncio.run(main()) == (True, False)


@pytest.mark.timeout(60)
def test_a_new_event_loop_at_a_dead_loops_address_neither_reenters_nor_releases_its_hold(tmp_path: Path) -> None:
    """A loop that closes while holding leaves its hold to nobody, like a thread that ends holding: a later
    loop that gets the same ``id()`` (CPython reuses the memory at once) must not inherit it."""

    async def as_the_next_loop(lock: ferrolock.FileLock) -> tuple[bool, bool]:
        try:
            await lock.acquire_async(timeout=0)
            reentered = True
        except ferrolock.Timeout:
            reentered = False
        await lock.release_async()  # a non-holder's release does nothing
        return reentered, lock.is_locked

    for attempt in range(20):
        lock = ferrolock.FileLock(tmp_path / f"{attempt}.lock")
        dead = asyncio.new_event_loop()
        dead.run_until_complete(lock.acquire_async())  # ... and the loop goes away without releasing
        dead_id = id(dead)
        dead.close()
        del dead
        loop = asyncio.new_event_loop()
        try:
            if id(loop) == dead_id:
                outcome = loop.run_until_complete(as_the_next_loop(lock))
                break
        finally:
            loop.close()
            del loop
    else:
        pytest.skip("no new event loop reused the dead loop's address; nothing to check")
    assert outcome == (False, True), "a new event loop inherited a closed loop's hold"
