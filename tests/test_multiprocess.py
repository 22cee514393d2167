"""FileLock across real processes: mutual exclusion, crashes, fork, Ctrl-C, interop with fcntl.flock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import ferrolock
import pytest
from process_helpers import (
    SPAWN,
    START_DEADLINE,
    cleanup_processes,
    fcntl_try_lock,
    fork_child_releases,
    hold_lock,
    hold_with_fcntl,
    increment_counter,
    try_lock,
    wait_then_report,
    wait_until_blocked,
)


def _can_lock_elsewhere(path: Path, shared: bool = False) -> bool:
    result = SPAWN.Value("i", -1)
    p = SPAWN.Process(target=try_lock, args=(str(path), result, shared))
    with cleanup_processes(p):
        p.start()
        p.join(START_DEADLINE)
        assert p.exitcode == 0
    assert result.value in (0, 1)
    return bool(result.value)


@pytest.mark.timeout(120)
def test_four_processes_2000_increments_each_lose_nothing(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    start = SPAWN.Event()
    procs = [
        SPAWN.Process(target=increment_counter, args=(str(tmp_path / "c.lock"), str(counter), 2000, start))
        for _ in range(4)
    ]
    with cleanup_processes(*procs):
        for p in procs:
            p.start()
        start.set()
        for p in procs:
            p.join(90)
            assert p.exitcode == 0
    assert counter.read_text() == "8000"


@pytest.mark.timeout(60)
def test_exclusive_excludes_other_processes_and_shared_coexists(lock_path: Path) -> None:
    held, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold_lock, args=(str(lock_path), held, release, True))
    with cleanup_processes(holder):
        holder.start()
        assert held.wait(START_DEADLINE)
        assert _can_lock_elsewhere(lock_path, shared=True), "shared holders coexist"
        assert not _can_lock_elsewhere(lock_path, shared=False), "a shared holder excludes exclusive"
        release.set()
        holder.join(START_DEADLINE)
    assert _can_lock_elsewhere(lock_path)


@pytest.mark.timeout(60)
def test_a_sigkilled_holder_frees_the_lock_for_a_waiter(lock_path: Path) -> None:
    held, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold_lock, args=(str(lock_path), held, release))
    waiting, acquired = SPAWN.Event(), SPAWN.Event()
    waiter = SPAWN.Process(target=wait_then_report, args=(str(lock_path), waiting, acquired, 30.0))
    with cleanup_processes(holder, waiter):
        holder.start()
        assert held.wait(START_DEADLINE)
        waiter.start()
        assert waiting.wait(START_DEADLINE)
        wait_until_blocked(waiter.pid)  # type: ignore[arg-type]
        assert not acquired.is_set()
        os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
        assert acquired.wait(10), "the waiter never got the lock of a dead holder"
        waiter.join(START_DEADLINE)
        assert waiter.exitcode == 0


@pytest.mark.timeout(60)
def test_a_forked_child_cannot_release_its_parents_lock(lock_path: Path) -> None:
    parent_holds, child_done, release = SPAWN.Event(), SPAWN.Event(), SPAWN.Event()
    parent = SPAWN.Process(target=fork_child_releases, args=(str(lock_path), parent_holds, child_done, release))
    with cleanup_processes(parent):
        parent.start()
        assert child_done.wait(START_DEADLINE)
        assert parent_holds.is_set()
        # The child called release(), release(force=True) and dropped the object, and exited.
        assert not _can_lock_elsewhere(lock_path), "the child's release freed the parent's lock"
        release.set()
        parent.join(START_DEADLINE)
        assert parent.exitcode == 0
    assert _can_lock_elsewhere(lock_path)


@pytest.mark.timeout(60)
def test_fcntl_flock_holders_and_ferrolock_exclude_each_other(lock_path: Path) -> None:
    lock_path.parent.mkdir(parents=True)
    held, release = SPAWN.Event(), SPAWN.Event()
    legacy = SPAWN.Process(target=hold_with_fcntl, args=(str(lock_path), held, release))
    with cleanup_processes(legacy):
        legacy.start()
        assert held.wait(START_DEADLINE)
        assert not _can_lock_elsewhere(lock_path)
        release.set()
        legacy.join(START_DEADLINE)

    held, release = SPAWN.Event(), SPAWN.Event()
    ours = SPAWN.Process(target=hold_lock, args=(str(lock_path), held, release))
    result = SPAWN.Value("i", -1)
    probe = SPAWN.Process(target=fcntl_try_lock, args=(str(lock_path), result))
    with cleanup_processes(ours, probe):
        ours.start()
        assert held.wait(START_DEADLINE)
        probe.start()
        probe.join(START_DEADLINE)
        assert result.value == 0, "a fcntl.flock user got the lock ferrolock holds"
        release.set()
        ours.join(START_DEADLINE)


@pytest.mark.timeout(60)
def test_holder_record_is_visible_from_another_process(lock_path: Path) -> None:
    held, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold_lock, args=(str(lock_path), held, release, False, "rebase job 17"))
    with cleanup_processes(holder):
        holder.start()
        assert held.wait(START_DEADLINE)
        record = ferrolock.FileLock(lock_path).holder()
        assert record is not None
        assert (record["pid"], record["purpose"]) == (holder.pid, "rebase job 17")
        with pytest.raises(ferrolock.Timeout) as info:
            ferrolock.FileLock(lock_path).acquire(timeout=0.05)
        assert f"pid {holder.pid}" in str(info.value)
        assert "rebase job 17" in str(info.value)
        assert info.value.holder is not None
        assert info.value.holder["pid"] == holder.pid
        release.set()
        holder.join(START_DEADLINE)
    assert ferrolock.FileLock(lock_path).holder() is None


_CTRL_C_CHILD = textwrap.dedent(
    """
    import sys, ferrolock
    lock = ferrolock.FileLock(sys.argv[1])
    print("waiting", flush=True)
    try:
        lock.acquire()
    except KeyboardInterrupt:
        print("interrupted", lock.is_locked, flush=True)
        sys.exit(42)
    print("acquired", flush=True)
    """
)


@pytest.mark.timeout(60)
def test_ctrl_c_interrupts_a_waiting_process_promptly_and_it_holds_nothing(lock_path: Path) -> None:
    held, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold_lock, args=(str(lock_path), held, release))
    with cleanup_processes(holder):
        holder.start()
        assert held.wait(START_DEADLINE)
        child = subprocess.Popen(
            [sys.executable, "-c", _CTRL_C_CHILD, str(lock_path)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "waiting"
            wait_until_blocked(child.pid)
            sent = time.monotonic()
            child.send_signal(signal.SIGINT)
            out, _ = child.communicate(timeout=10)
            took = time.monotonic() - sent
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == 42, out
        assert out.strip() == "interrupted False"
        assert took < 1.0, f"Ctrl-C took {took:.3f} s to interrupt the wait"
        release.set()
        holder.join(START_DEADLINE)
