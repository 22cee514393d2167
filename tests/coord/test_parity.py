"""The lock API on both backends (``file://`` and ``postgresql://``): one suite, run against each."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import ferrolock
import pytest
from coord_helpers import (
    acquire_and_report,
    fenced_increments,
    hold,
    hold_and_draw,
    hold_shared,
    run_setup_once,
    try_once,
)
from process_helpers import SPAWN, START_DEADLINE, cleanup_processes, wait_until_blocked

pytestmark = pytest.mark.timeout(120)


def test_exclusive_excludes_other_processes_and_timeout_names_the_holder(coord_url: str, name: str) -> None:
    held, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold, args=(coord_url, name, held, release, "nightly build"))
    with cleanup_processes(holder):
        holder.start()
        assert held.wait(START_DEADLINE)
        lock = ferrolock.connect(coord_url).lock(name)
        with pytest.raises(ferrolock.Timeout) as info:
            lock.acquire(timeout=0)
        assert isinstance(info.value, TimeoutError)
        assert info.value.lock_file == name
        assert info.value.holder is not None
        assert info.value.holder["pid"] == holder.pid
        assert info.value.holder["purpose"] == "nightly build"
        assert "nightly build" in str(info.value)
        started = time.monotonic()
        with pytest.raises(ferrolock.Timeout):
            lock.acquire(timeout=0.3)
        assert time.monotonic() - started >= 0.3, "a timeout must never end early"
        assert not lock.is_locked
        release.set()
        holder.join(START_DEADLINE)
        with lock.acquire(timeout=START_DEADLINE):
            assert lock.is_locked


def test_shared_holders_coexist_and_exclude_exclusive(coord_url: str, name: str) -> None:
    held, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold_shared, args=(coord_url, name, held, release))
    with cleanup_processes(holder):
        holder.start()
        assert held.wait(START_DEADLINE)
        shared_ok, exclusive_ok = SPAWN.Value("i", -1), SPAWN.Value("i", -1)
        for result, shared in ((shared_ok, True), (exclusive_ok, False)):
            probe = SPAWN.Process(target=try_once, args=(coord_url, name, result, shared))
            with cleanup_processes(probe):
                probe.start()
                probe.join(START_DEADLINE)
        assert (shared_ok.value, exclusive_ok.value) == (1, 0)
        release.set()


def test_reentry_per_thread_and_two_objects_exclude_in_one_process(coord_url: str, name: str) -> None:
    coord = ferrolock.connect(coord_url)
    first, second = coord.lock(name), coord.lock(name)
    with first:
        with first:
            assert first.lock_counter == 2
        assert first.lock_counter == 1
        with pytest.raises(ferrolock.WouldDeadlock):
            second.acquire(timeout=1)
        outcome: list[BaseException | None] = []

        def other_thread() -> None:
            try:
                second.acquire(timeout=0)
                outcome.append(None)
            except BaseException as exc:  # reported to the test thread
                outcome.append(exc)

        t = threading.Thread(target=other_thread)
        t.start()
        t.join(START_DEADLINE)
        assert len(outcome) == 1
        assert isinstance(outcome[0], ferrolock.Timeout)
    assert not first.is_locked
    second.release()  # not held: a no-op, never someone else's lock
    with second.acquire(timeout=5):
        assert second.is_locked


def test_tokens_strictly_increase_across_holders_and_processes(coord_url: str, name: str) -> None:
    coord = ferrolock.connect(coord_url)
    lock = coord.lock(name)
    with lock:
        first = lock.token
        assert lock.token == first, "one grant has one token"
        lock.fenced_write(b"from the first holder")
    assert coord.fenced_read(name) == (first, b"from the first holder")
    tokens = [first]
    for _ in range(3):
        waiting, acquired_at, token = SPAWN.Event(), SPAWN.Value("d", 0.0), SPAWN.Value("q", 0)
        p = SPAWN.Process(target=acquire_and_report, args=(coord_url, name, waiting, acquired_at, token))
        with cleanup_processes(p):
            p.start()
            p.join(START_DEADLINE * 2)
            assert p.exitcode == 0
        tokens.append(token.value)
    with lock:
        tokens.append(lock.token)
    assert tokens == sorted(tokens), tokens
    assert len(set(tokens)) == len(tokens), tokens
    # An older token handed to the store is refused; the newest is accepted.
    with pytest.raises(ferrolock.StaleToken) as info:
        coord.fenced_write(name, tokens[-2], b"stale")
    assert (info.value.token, info.value.current) == (tokens[-2], tokens[-1])
    coord.fenced_write(name, tokens[-1], b"newest")
    assert coord.fenced_read(name) == (tokens[-1], b"newest")
    with pytest.raises(ferrolock.LockLost):
        lock.fenced_write(b"not held")
    with pytest.raises(ferrolock.LockLost):
        _ = lock.token


def test_fenced_counter_has_no_lost_updates(coord_url: str, name: str) -> None:
    start = SPAWN.Event()
    workers = [SPAWN.Process(target=fenced_increments, args=(coord_url, name, 25, start)) for _ in range(4)]
    with cleanup_processes(*workers):
        for w in workers:
            w.start()
        start.set()
        for w in workers:
            w.join(START_DEADLINE * 2)
        assert [w.exitcode for w in workers] == [0] * 4
    value = ferrolock.connect(coord_url).fenced_read(name)
    assert value is not None
    assert int(value[1]) == 100


def test_a_killed_holder_frees_the_lock_at_once(coord_url: str, name: str) -> None:
    held, token = SPAWN.Event(), SPAWN.Value("q", 0)
    holder = SPAWN.Process(target=hold_and_draw, args=(coord_url, name, held, token))
    with cleanup_processes(holder):
        holder.start()
        assert held.wait(START_DEADLINE)
        lock = ferrolock.connect(coord_url).lock(name)
        with pytest.raises(ferrolock.Timeout):
            lock.acquire(timeout=0)
        killed = time.monotonic()
        os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
        with lock.acquire(timeout=START_DEADLINE):
            waited = time.monotonic() - killed
            assert lock.token > token.value
    assert waited < 5.0, f"the lock came free {waited:.3f} s after the holder died"


def test_async_with_and_cancellation_leave_nothing_held(coord_url: str, name: str) -> None:
    coord = ferrolock.connect(coord_url)
    blocker, lock = coord.lock(name), coord.lock(name)

    async def main() -> None:
        async with lock:
            assert lock.is_locked
            assert lock.token >= 1
        assert not lock.is_locked
        blocker.acquire()
        task = asyncio.create_task(lock.acquire_async(timeout=30))
        await asyncio.to_thread(wait_until_waiting, coord_url, name, os.getpid())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not lock.is_locked
        blocker.release()
        # The cancelled wait left nothing behind: one attempt by another object succeeds at once.
        await lock.acquire_async(timeout=0)
        await lock.release_async()

    asyncio.run(asyncio.wait_for(main(), 60))
    assert not lock.is_locked
    assert not blocker.is_locked
    third = ferrolock.connect(coord_url).lock(name)
    with third.acquire(timeout=0):
        pass


def test_run_once_runs_the_setup_once_across_processes(coord_url: str, name: str, tmp_path: Path) -> None:
    log = tmp_path / "ran.log"
    start = SPAWN.Event()
    callers = [SPAWN.Process(target=run_setup_once, args=(coord_url, name, str(log), start)) for _ in range(4)]
    with cleanup_processes(*callers):
        for c in callers:
            c.start()
        start.set()
        for c in callers:
            c.join(START_DEADLINE * 2)
        assert [c.exitcode for c in callers] == [0] * 4
    assert len(log.read_text().split()) == 1
    assert ferrolock.connect(coord_url).run_once(name, lambda: None) == "already-done"


def test_run_once_failed_setup_leaves_no_marker(coord_url: str, name: str) -> None:
    coord = ferrolock.connect(coord_url)

    def fails() -> None:
        raise ValueError("setup broke")

    with pytest.raises(ValueError, match="setup broke"):
        coord.run_once(name, fails)
    assert coord.run_once(name, lambda: None) == "ran"
    assert coord.run_once(name, fails) == "already-done"


def test_status_names_the_holder(coord_url: str, name: str) -> None:
    coord = ferrolock.connect(coord_url)
    with coord.lock(name, purpose="status check"):
        entries = {e["name"]: e for e in coord.status()}
        assert name in entries
        (holder,) = entries[name]["holders"]
        assert holder["mode"] == "exclusive"
        assert coord.lock(name).holder() == holder["holder"]
        assert holder["holder"]["pid"] == os.getpid()
        assert holder["holder"]["purpose"] == "status check"
    assert name not in {e["name"] for e in coord.status()}
    assert coord.lock(name).holder() is None


def test_bad_names_are_refused_on_every_backend(coord_url: str) -> None:
    coord = ferrolock.connect(coord_url)
    for bad in ["", "a\0b", "tab\tname", "x" * 201]:
        with pytest.raises(ferrolock.InvalidName):
            coord.lock(bad)


def test_ctrl_c_interrupts_a_wait_and_leaves_nothing_held(coord_url: str, name: str) -> None:
    held, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold, args=(coord_url, name, held, release))
    script = (
        "import ferrolock, sys\n"
        f"lock = ferrolock.connect({coord_url!r}).lock({name!r})\n"
        "print('waiting', flush=True)\n"
        "try:\n"
        "    lock.acquire(timeout=60)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', lock.is_locked, flush=True)\n"
    )
    with cleanup_processes(holder):
        holder.start()
        assert held.wait(START_DEADLINE)
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "waiting"
            wait_until_waiting(coord_url, name, child.pid)
            sent = time.monotonic()
            child.send_signal(signal.SIGINT)
            out, _ = child.communicate(timeout=START_DEADLINE)
            assert time.monotonic() - sent < 2.0
            assert out.strip() == "interrupted False"
        finally:
            child.kill()
        release.set()
    lock = ferrolock.connect(coord_url).lock(name)
    with lock.acquire(timeout=START_DEADLINE):
        pass


def wait_until_waiting(coord_url: str, name: str, pid: int) -> None:
    """Wait (bounded) until process ``pid`` waits for ``name``: blocked in the kernel (``file://``), or
    queued in the server (``status()`` counts it)."""
    if coord_url.startswith("file://"):
        wait_until_blocked(pid)
        return
    coord = ferrolock.connect(coord_url)
    end = time.monotonic() + START_DEADLINE
    while not any(e["name"] == name and e["waiting"] for e in coord.status()):
        assert time.monotonic() < end, f"process {pid} never queued for {name}"
        time.sleep(0.01)


def test_connect_reads_ferrolock_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FERROLOCK_URL", f"file://{tmp_path}")
    assert ferrolock.connect().backend == "file"
    monkeypatch.delenv("FERROLOCK_URL")
    with pytest.raises(ferrolock.CoordinatorError, match="FERROLOCK_URL"):
        ferrolock.connect()
    with pytest.raises(ferrolock.CoordinatorError, match="scheme"):
        ferrolock.connect("redis://localhost")


def _probe_from_another_process(coord_url: str, name: str) -> int:
    result = SPAWN.Value("i", -1)
    probe = SPAWN.Process(target=try_once, args=(coord_url, name, result))
    with cleanup_processes(probe):
        probe.start()
        probe.join(START_DEADLINE)
    return int(result.value)


def test_a_forked_child_never_releases_its_parents_grant(coord_url: str, name: str) -> None:
    """The child inherits the lock object, its grant and (on PostgreSQL) the pooled sessions' sockets. It
    must hold nothing, release nothing, close nothing of the parent's, and still take locks of its own."""
    coord = ferrolock.connect(coord_url)
    lock = coord.lock(name)
    lock.acquire(timeout=START_DEADLINE)
    other = f"{name}-child"
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        code = 0
        try:
            code |= 1 if lock.is_locked else 0
            lock.release(force=True)
            del lock
            with coord.lock(other, timeout=START_DEADLINE) as mine:
                code |= 0 if mine.is_locked else 2
        except BaseException:
            code |= 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child saw a hold, failed to lock, or raised"
    assert lock.is_locked
    lock.ensure_held()  # the parent's grant (and its session) survived the child
    assert _probe_from_another_process(coord_url, name) == 0, "the child released the parent's lock"
    lock.release()
    assert _probe_from_another_process(coord_url, name) == 1
    assert _probe_from_another_process(coord_url, other) == 1, "the child's own lock outlived it"


def test_a_new_event_loop_at_a_dead_loops_address_does_not_inherit_its_hold(coord_url: str, name: str) -> None:
    """As for ``FileLock``: a loop that closes while holding leaves its hold to nobody, even to a later loop
    that gets the same ``id()`` (CPython reuses the memory at once)."""
    coord = ferrolock.connect(coord_url)

    async def as_the_next_loop(lock: ferrolock.CoordLock) -> tuple[bool, int]:
        try:
            await lock.acquire_async(timeout=0)
            reentered = True
        except ferrolock.Timeout:
            reentered = False
        await lock.release_async()  # a non-holder's release does nothing
        return reentered, _probe_from_another_process(coord_url, lock.name)

    for attempt in range(20):
        lock = coord.lock(f"{name}-{attempt}")
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
    assert outcome == (False, 0), "a new event loop inherited (or released) a closed loop's hold"
