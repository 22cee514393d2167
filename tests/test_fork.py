"""A forked child lets go of every lock descriptor it inherited, at once, even if it never touches ferrolock.

flock locks belong to open file descriptions, and ``fork()`` gives the child a copy of every descriptor: a
description stays alive (locked) while any process has it open. So a child that just sleeps would keep its
parent's lock, scope claim or reused idle descriptor locked after the parent died, and "crash = release"
would only hold once every forked child (a worker pool, a daemonized helper) had exited too. These tests
SIGKILL a parent whose children live on, and take the lock (or the scope) while the children are alive.
"""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path

import ferrolock
import pytest
from process_helpers import SPAWN, START_DEADLINE, cleanup_processes

#: How long a forked child lives if nobody kills it: far beyond every wait below, so a lock that is only
#: freed when the child exits shows up as a failed wait, never as a pass.
CHILD_LIFETIME = START_DEADLINE * 4


def _fork_sleeper() -> int:
    """Fork a child that touches nothing of ferrolock's and sleeps, then leaves without cleanup."""
    pid = os.fork()
    if pid == 0:
        time.sleep(CHILD_LIFETIME)
        os._exit(0)
    return pid


def _idle(_: int) -> None:
    time.sleep(CHILD_LIFETIME)


def hold_fork_and_wait(path: str, scenario: str, children: Synchronized[int], ready: Event) -> None:
    """Spawned parent: take a lock in one of several ways, fork children that ignore it, report, sleep.

    ``held``: hold the lock, then fork. ``idle``: acquire and release (the descriptor stays open for reuse),
    fork, then acquire again through the same object, so the child's copy refers to the description that
    is locked later. ``pool``: hold the lock, then start a fork-context ``multiprocessing.Pool``. ``claim``:
    hold a scope claim (little-loops' API), then fork.
    """
    lock = ferrolock.FileLock(path)
    pool = None
    if scenario == "held":
        lock.acquire()
        children.value = _fork_sleeper()
    elif scenario == "idle":
        lock.acquire()
        lock.release()
        children.value = _fork_sleeper()
        lock.acquire()
    elif scenario == "pool":
        lock.acquire()
        pool = multiprocessing.get_context("fork").Pool(2)
        pool.map_async(_idle, range(2))  # the workers sleep with their copies of every descriptor
        children.value = len(multiprocessing.active_children())
    elif scenario == "claim":
        manager = ferrolock.LockManager(Path(path))
        assert manager.acquire("holder", ["src/"])
        children.value = _fork_sleeper()
    ready.set()
    time.sleep(CHILD_LIFETIME)
    del pool


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def _parent_killed_with_children_alive(path: Path, scenario: str) -> Iterator[int]:
    """Run ``hold_fork_and_wait`` in a spawned parent, SIGKILL it, yield the pid of a child still alive."""
    children = SPAWN.Value("i", 0)
    ready = SPAWN.Event()
    parent = SPAWN.Process(target=hold_fork_and_wait, args=(str(path), scenario, children, ready))
    with cleanup_processes(parent):
        parent.start()
        assert ready.wait(START_DEADLINE), "the parent never got its lock"
        orphans = _children_of(parent.pid) if scenario == "pool" else [children.value]  # type: ignore[arg-type]
        assert orphans, "the parent forked no child"
        _kill_and_wait(parent.pid)  # type: ignore[arg-type]
        try:
            assert all(_alive(pid) for pid in orphans)
            yield orphans[0]
            assert all(_alive(pid) for pid in orphans), "a child exited before the check: it proves nothing"
        finally:
            for pid in orphans:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)


def _kill_and_wait(pid: int) -> None:
    """SIGKILL ``pid`` and wait (bounded) until it is dead. Not ``Process.join``: the forked children hold
    copies of the pipe ``join`` waits on, so it would wait for them instead."""
    pidfd = os.pidfd_open(pid)
    try:
        os.kill(pid, signal.SIGKILL)
        readable, _, _ = select.select([pidfd], [], [], START_DEADLINE)
        assert readable, f"process {pid} survived SIGKILL"
    finally:
        os.close(pidfd)


def _children_of(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (from ``/proc``)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


@pytest.mark.timeout(START_DEADLINE * 4)
@pytest.mark.parametrize("scenario", ["held", "idle", "pool"])
def test_a_dead_parents_lock_is_free_while_its_forked_children_live(lock_path: Path, scenario: str) -> None:
    # The lock is free at once: waiting up to START_DEADLINE only absorbs a loaded machine. Before the fix
    # this wait ended in Timeout, because the children kept the parent's description locked.
    with (
        _parent_killed_with_children_alive(lock_path, scenario),
        ferrolock.FileLock(lock_path).acquire(timeout=START_DEADLINE) as lock,
    ):
        assert lock.is_locked


@pytest.mark.timeout(START_DEADLINE * 4)
def test_a_dead_parents_scope_claim_is_free_while_its_forked_child_lives(tmp_path: Path) -> None:
    loops = tmp_path / "loops"
    with _parent_killed_with_children_alive(loops, "claim"):
        manager = ferrolock.LockManager(loops)
        assert manager.find_conflict(["src/"]) is None
        assert manager.acquire("successor", ["src/"])
        manager.release("successor")


_POOL_LOCK: ferrolock.FileLock | None = None


def _pool_worker_tries(timeout: float) -> str:
    assert _POOL_LOCK is not None
    try:
        with _POOL_LOCK.acquire(timeout=timeout):
            return "got"
    except ferrolock.Timeout:
        return "busy"


@pytest.mark.timeout(START_DEADLINE * 4)
def test_fork_pool_workers_using_an_inherited_lock_object_get_locks_of_their_own(lock_path: Path) -> None:
    """py-filelock refuses (RuntimeError) an inherited object in a forked child; ferrolock gives the child a lock
    of its own, so a module-level lock shared with a fork-started pool excludes parent and workers alike."""
    global _POOL_LOCK
    _POOL_LOCK = ferrolock.FileLock(lock_path)
    _POOL_LOCK.acquire()
    try:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            while_held = pool.map(_pool_worker_tries, [0] * 4, chunksize=1)
            _POOL_LOCK.release()
            # Workers now contend with each other: each waits its turn (a one-shot try could meet a sibling).
            after_release = pool.map(_pool_worker_tries, [START_DEADLINE] * 4, chunksize=1)
    finally:
        _POOL_LOCK.release(force=True)
        _POOL_LOCK = None
    assert while_held == ["busy"] * 4
    assert after_release == ["got"] * 4
