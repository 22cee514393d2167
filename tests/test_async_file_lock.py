"""``AsyncFileLock``: py-filelock's asyncio API; waits never block the loop, tasks queue, and a cancelled task
never leaves a lock held."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

import ferrolock
import pytest
from process_helpers import SPAWN, START_DEADLINE, cleanup_processes, hold_lock, try_lock


def _free_for_another_process(path: Path) -> bool:
    result: Synchronized[int] = SPAWN.Value("i", -1)
    p = SPAWN.Process(target=try_lock, args=(str(path), result))
    with cleanup_processes(p):
        p.start()
        p.join(START_DEADLINE)
    assert result.value in (0, 1), "the probing process did not report"
    return result.value == 1


@pytest.mark.timeout(30)
def test_await_acquire_async_with_and_reentry_on_one_object(lock_path: Path) -> None:
    lock = ferrolock.AsyncFileLock(lock_path)

    async def main() -> list[int]:
        counts = []
        async with lock:
            counts.append(lock.lock_counter)
            async with await lock.acquire() as same:
                assert same is lock
                counts.append(lock.lock_counter)
            counts.append(lock.lock_counter)
        counts.append(lock.lock_counter)
        return counts

    assert asyncio.run(main()) == [1, 2, 1, 0]
    assert not lock.is_locked


@pytest.mark.timeout(30)
def test_sync_use_is_refused_with_filelocks_message(lock_path: Path) -> None:
    lock = ferrolock.AsyncFileLock(lock_path)
    with pytest.raises(NotImplementedError, match="async with"), lock:
        pass
    assert not lock.is_locked


@pytest.mark.timeout(60)
@pytest.mark.parametrize("thread_local", [False, True])
def test_tasks_of_one_loop_on_separate_objects_queue_instead_of_failing(lock_path: Path, thread_local: bool) -> None:
    order: list[str] = []

    async def worker(name: str, entered: asyncio.Event | None) -> None:
        lock = ferrolock.AsyncFileLock(lock_path, thread_local=thread_local, run_in_executor=False)
        async with lock:
            order.append(f"{name} in")
            if entered is not None:
                entered.set()
            await asyncio.sleep(0.05)
            order.append(f"{name} out")

    async def main() -> None:
        entered = asyncio.Event()
        first = asyncio.create_task(worker("a", entered))
        await entered.wait()
        await asyncio.wait_for(asyncio.gather(first, worker("b", None), worker("c", None)), START_DEADLINE)

    asyncio.run(main())
    assert order[:2] == ["a in", "a out"]
    assert sorted(order[2:]) == ["b in", "b out", "c in", "c out"]
    assert order[2][0] == order[3][0], order  # one at a time


@pytest.mark.timeout(60)
def test_tasks_sharing_one_object_take_turns_first_come_first_served(lock_path: Path) -> None:
    lock = ferrolock.AsyncFileLock(lock_path, thread_local=False)
    order: list[str] = []
    held, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold_lock, args=(str(lock_path), held, release))

    async def worker(name: str) -> None:
        # With the lock object-owned, a second acquire by another task while the first holds would be
        # re-entry; queueing through the admission gate is what makes them take turns here.
        await lock.acquire()
        order.append(name)
        await lock.release()

    async def main() -> None:
        tasks = [asyncio.create_task(worker(str(i))) for i in range(4)]
        await asyncio.sleep(0)
        release.set()  # all four are queued behind the other process's hold
        await asyncio.wait_for(asyncio.gather(*tasks), START_DEADLINE)

    with cleanup_processes(holder):
        holder.start()
        assert held.wait(START_DEADLINE)
        asyncio.run(main())
    assert order == ["0", "1", "2", "3"]


@pytest.mark.timeout(60)
def test_a_wait_keeps_the_loop_running_and_ends_the_moment_the_holder_releases(lock_path: Path) -> None:
    held, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold_lock, args=(str(lock_path), held, release))
    lock = ferrolock.AsyncFileLock(lock_path, loop=None, executor=concurrent.futures.ThreadPoolExecutor(1))

    async def main() -> tuple[int, float]:
        waiting = asyncio.create_task(lock.acquire())
        ticks = 0
        while ticks < 20:
            await asyncio.sleep(0.005)
            ticks += 1
        assert not waiting.done()
        released = time.monotonic()
        release.set()
        await asyncio.wait_for(waiting, START_DEADLINE)
        got_it_after = time.monotonic() - released
        await lock.release()
        return ticks, got_it_after

    with cleanup_processes(holder):
        holder.start()
        assert held.wait(START_DEADLINE)
        ticks, after = asyncio.run(main())
    assert ticks == 20
    assert after < START_DEADLINE


@pytest.mark.timeout(60)
def test_a_cancelled_waiter_leaves_nothing_held_even_when_cancelled_at_the_grant(lock_path: Path) -> None:
    """Cancel at many points around the moment the holder releases: whatever the race, afterwards the lock
    is free for another process and the object counts nothing."""
    holder_lock = ferrolock.AsyncFileLock(lock_path, thread_local=False)
    lock = ferrolock.AsyncFileLock(lock_path, thread_local=False)

    async def one_round(delay: float) -> None:
        await holder_lock.acquire()
        waiting = asyncio.create_task(lock.acquire())
        await asyncio.sleep(0.002)
        await holder_lock.release()
        await asyncio.sleep(delay)
        waiting.cancel()
        try:
            await waiting
        except asyncio.CancelledError:
            pass
        else:
            await lock.release()  # the grant won the race: ours to give back
        assert lock.lock_counter == 0

    async def main() -> None:
        for i in range(40):
            await one_round(i * 0.0002)

    asyncio.run(main())
    assert not lock.is_locked
    assert not holder_lock.is_locked
    assert _free_for_another_process(lock_path)


@pytest.mark.timeout(60)
def test_a_second_object_in_the_same_task_deadlocks_only_without_a_timeout(lock_path: Path) -> None:
    async def main() -> None:
        first = ferrolock.AsyncFileLock(lock_path)
        second = ferrolock.AsyncFileLock(lock_path)
        async with first:
            with pytest.raises(ferrolock.WouldDeadlock, match=r"^Deadlock: "):
                await second.acquire()
            start = time.monotonic()
            with pytest.raises(ferrolock.Timeout):
                await second.acquire(timeout=0.2)
            assert time.monotonic() - start >= 0.2
            with pytest.raises(ferrolock.Timeout):
                await second.acquire(blocking=False)
        assert not second.is_locked

    asyncio.run(main())


@pytest.mark.timeout(60)
def test_cancel_check_ends_an_async_wait_with_timeout(lock_path: Path) -> None:
    async def main() -> int:
        holder = ferrolock.AsyncFileLock(lock_path)
        waiter = ferrolock.AsyncFileLock(lock_path)
        calls = 0

        def cancel() -> bool:
            nonlocal calls
            calls += 1
            return calls >= 3

        async with holder:
            task = asyncio.create_task(waiter.acquire(timeout=30, poll_interval=0.01, cancel_check=cancel))
            with pytest.raises(ferrolock.Timeout):
                await asyncio.wait_for(task, START_DEADLINE)
        assert not waiter.is_locked
        return calls

    assert asyncio.run(main()) >= 3
