"""Each weakness of logist's ``locking.py`` (spec: compat/logist.md, "Weaknesses") and its fix, with real
processes. Tests taking the ``impl`` fixture also run against logist's original module when a mirror is
available (``FERROLOCK_MIRRORS``), where they are expected to fail (strict xfail): that is the proof that
each test catches the legacy behaviour it describes.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import platform
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import pytest
from ferrolock.compat.logist import JobLockManager, LockError
from logist_helpers import (
    DEADLINE,
    count_under_job_lock,
    extract_legacy_locking,
    hold_job,
    legacy_protocol_hold,
    legacy_protocol_try,
    load_impl,
    time_out_with_frozen_wall_clock,
    try_job,
    wait_for_job,
)
from process_helpers import cleanup_processes, wait_until_blocked

SPAWN: Final = multiprocessing.get_context("spawn")
#: flock(2)'s system call number, to see in /proc that a waiter sleeps inside flock.
FLOCK_SYSCALL: Final = {"x86_64": 73, "aarch64": 32}.get(platform.machine())


@pytest.fixture(scope="module")
def legacy_path(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    return extract_legacy_locking(tmp_path_factory.mktemp("legacy"))


@pytest.fixture(params=["ferrolock", "legacy"])
def impl(request: pytest.FixtureRequest, legacy_path: Path | None) -> str:
    if request.param == "ferrolock":
        return "ferrolock"
    if legacy_path is None:
        pytest.skip("logist's original module is not available (set FERROLOCK_MIRRORS)")
    request.applymarker(pytest.mark.xfail(strict=True, reason="the legacy bug this test catches"))
    return str(legacy_path)


def start(target: Any, *args: Any) -> multiprocessing.process.BaseProcess:
    p = SPAWN.Process(target=target, args=args)
    p.start()
    return p


def holding(impl: str, base: Path, job_id: str) -> tuple[multiprocessing.process.BaseProcess, Any]:
    ready, release = SPAWN.Event(), SPAWN.Event()
    p = start(hold_job, impl, str(base), job_id, ready, release)
    assert ready.wait(DEADLINE), "holder did not start"
    return p, release


def can_take(impl: str, base: Path, job_id: str, timeout: float = 0.2) -> bool:
    result = SPAWN.Value("i", -1)
    p = start(try_job, impl, str(base), job_id, timeout, result)
    with cleanup_processes(p):
        p.join(DEADLINE)
        assert p.exitcode == 0
    return bool(result.value)


@pytest.mark.timeout(120)
def test_cleanup_never_removes_a_held_lock(impl: str, tmp_path: Path) -> None:
    """logist unlinked every ``.lock`` older than ``max_age`` (age = time since the last acquire), held
    or not; the next locker created a new file and held the "exclusive" lock beside the old holder."""
    holder, release = holding(impl, tmp_path, "long-job")
    with cleanup_processes(holder):
        for name in ("long-job", "crashed-job", "young-job"):
            (tmp_path / name).mkdir(exist_ok=True)
            (tmp_path / name / ".lock").touch()
        hour_ago = time.time() - 3600
        for name in ("long-job", "crashed-job"):
            os.utime(tmp_path / name / ".lock", (hour_ago, hour_ago))

        cleaned = load_impl(impl).JobLockManager(str(tmp_path)).cleanup_stale_locks(max_age_seconds=300)

        assert (tmp_path / "long-job" / ".lock").exists()
        assert not can_take(impl, tmp_path, "long-job"), "a third process took a held job lock"
        assert cleaned == ["crashed-job"]
        assert not (tmp_path / "crashed-job" / ".lock").exists()
        assert (tmp_path / "young-job" / ".lock").exists()
        release.set()
        holder.join(DEADLINE)
    assert can_take(impl, tmp_path, "long-job")


@pytest.mark.timeout(120)
def test_a_forked_child_never_releases_the_parents_lock(impl: str, tmp_path: Path) -> None:
    """logist's child inherited the descriptor; its ``release()`` (LOCK_UN) freed the parent's lock while
    the parent's ``is_locked()`` still said True."""
    mod = load_impl(impl)
    manager = mod.JobLockManager(str(tmp_path))
    lock = manager.lock_job_directory("job", timeout=5.0)
    pid = _fork_and(lambda: (lock.release(), lock.is_locked() and os._exit(3)))
    _, status = os.waitpid(pid, 0)
    try:
        assert os.waitstatus_to_exitcode(status) == 0, "the child believed it held the lock"
        assert lock.is_locked()
        assert not can_take(impl, tmp_path, "job"), "the parent lost its lock to the child's release()"
    finally:
        manager.unlock_job_directory("job")


@pytest.mark.timeout(120)
def test_is_locked_tells_the_truth_after_an_unlock_through_a_shared_descriptor(impl: str, tmp_path: Path) -> None:
    """logist's ``is_locked()`` returned its own flag: after a forked child unlocked the shared
    descriptor (what the child's ``release()`` did), the parent's lock was gone and it still said True.

    A child forked from ferrolock no longer refers to the parent's open file description at all (its copy
    is detached at fork), so the unlock through a shared description is made here with a duplicate in
    this process, which shares the description exactly as the legacy child's inherited copy did."""
    lock = load_impl(impl).FileLock(str(tmp_path / "job" / ".lock"))
    assert lock.acquire()
    shared = os.dup(lock._lock_fd)
    fcntl.flock(shared, fcntl.LOCK_UN)
    os.close(shared)
    try:
        assert can_take(impl, tmp_path, "job", timeout=0), "the unlock through the shared descriptor failed"
        assert not lock.is_locked()
    finally:
        lock.release()


@pytest.mark.timeout(60)
def test_is_locked_is_false_once_the_lock_file_was_deleted(impl: str, tmp_path: Path) -> None:
    """logist's flag stayed True after a cleaner (its own ``cleanup_stale_locks``) deleted the held file,
    although the next locker now gets a new file without waiting."""
    lock = load_impl(impl).FileLock(str(tmp_path / "job" / ".lock"))
    assert lock.acquire()
    try:
        (tmp_path / "job" / ".lock").unlink()
        assert not lock.is_locked()
    finally:
        lock.release()


@pytest.mark.timeout(60)
def test_locking_a_job_the_thread_already_holds_fails_at_once(impl: str, tmp_path: Path) -> None:
    """logist's manager opened a second lock on the same file and waited for itself for the whole
    timeout, then raised (the same thread can never release the first lock meanwhile)."""
    manager = load_impl(impl).JobLockManager(str(tmp_path))
    first = manager.lock_job_directory("job", timeout=5.0)
    started = time.monotonic()
    with pytest.raises(Exception, match="deadlock") as info:
        manager.lock_job_directory("job", timeout=3.0)
    assert time.monotonic() - started < 1.0
    assert isinstance(info.value, LockError)
    assert first.is_locked()
    assert manager.is_job_locked("job")
    manager.unlock_job_directory("job")


@pytest.mark.timeout(60)
def test_another_thread_of_the_same_manager_waits_for_the_job(tmp_path: Path) -> None:
    manager = JobLockManager(str(tmp_path))
    manager.lock_job_directory("job")
    got = threading.Event()

    def other() -> None:
        manager.lock_job_directory("job", timeout=DEADLINE)
        got.set()
        manager.unlock_job_directory("job")

    t = threading.Thread(target=other)
    t.start()
    assert not got.wait(0.3), "a second thread took a held job"
    manager.unlock_job_directory("job")
    assert got.wait(DEADLINE)
    t.join(DEADLINE)
    assert manager.get_lock_status() == {"active_locks": [], "lock_count": 0}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("job_id", ["..", "../escaped", "a/b", "<absolute>", "a\0b", ""])
def test_job_ids_that_escape_the_jobs_directory_are_refused(impl: str, tmp_path: Path, job_id: str) -> None:
    """logist joined the id onto the jobs directory: ``../escaped`` or an absolute path locked a file
    outside it, and ``a/b`` silently created nested directories."""
    base = tmp_path / "jobs"
    base.mkdir()
    job_id = job_id.replace("<absolute>", str(tmp_path / "elsewhere"))
    mod = load_impl(impl)
    manager = mod.JobLockManager(str(base))
    try:
        with pytest.raises(mod.LockError, match="invalid job id"):
            manager.lock_job_directory(job_id, timeout=0.5)
    finally:
        for held in list(manager._active_locks):
            manager.unlock_job_directory(held)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["jobs"]


@pytest.mark.timeout(120)
@pytest.mark.skipif(FLOCK_SYSCALL is None, reason="flock's syscall number is only known for x86_64/aarch64")
def test_a_waiter_sleeps_inside_flock_not_in_a_poll_loop(impl: str, tmp_path: Path) -> None:
    """logist retried ``LOCK_NB`` every 0.1 s (sleeping in ``nanosleep``), adding up to 100 ms to every
    hand-over; ferrolock's waiter sleeps in ``flock(2)`` and wakes when the holder releases. (With
    ``FERROLOCK_WAKE=thread`` the ``flock`` is a helper thread's, so every thread is sampled.)"""
    holder, release = holding(impl, tmp_path, "job")
    result, waiting = SPAWN.Value("i", 0), SPAWN.Event()
    waiter = start(wait_for_job, impl, str(tmp_path), "job", waiting, result)
    with cleanup_processes(holder, waiter):
        assert waiter.pid is not None
        assert waiting.wait(DEADLINE)
        # Sample only once the waiter is inside its wait (the legacy poll loop never blocks in flock,
        # so its variant fails here already: that is the bug).
        wait_until_blocked(waiter.pid, deadline=5.0)
        calls = []
        deadline = time.monotonic() + DEADLINE
        while len(calls) < 20 and time.monotonic() < deadline:
            in_flock = []
            for task in Path(f"/proc/{waiter.pid}/task").iterdir():
                with contextlib.suppress(FileNotFoundError):  # a thread that just ended
                    line = (task / "syscall").read_text().split()
                    if line and line[0].isdigit():
                        in_flock.append(int(line[0]) == FLOCK_SYSCALL)
            if in_flock:
                calls.append(FLOCK_SYSCALL if any(in_flock) else -1)
            time.sleep(0.02)
        release.set()
        waiter.join(DEADLINE)
        assert result.value == 1
    # A sample may catch the waiter in one of its brief wake-ups for pending signals, never in a sleep.
    assert calls.count(FLOCK_SYSCALL) >= 16, calls


@pytest.mark.timeout(120)
def test_timeouts_use_a_monotonic_clock(impl: str, tmp_path: Path) -> None:
    """logist measured its timeout with ``time.time()``: a wall clock that stands still (or is set back)
    made a waiter wait far beyond its timeout."""
    holder, release = holding(impl, tmp_path, "job")
    elapsed = SPAWN.Value("d", -1.0)
    waiter = start(time_out_with_frozen_wall_clock, impl, str(tmp_path), "job", elapsed)
    with cleanup_processes(holder, waiter):
        waiter.join(15)
        release.set()
        assert 0.3 <= elapsed.value < 5.0, "the timeout did not fire"


@pytest.mark.timeout(120)
def test_mixed_fleet_legacy_protocol_and_ferrolock_exclude_each_other(tmp_path: Path) -> None:
    """During a migration old processes (logist's fcntl protocol, re-implemented here from the spec) and
    new ones lock the same ``<jobs>/<job>/.lock`` and must exclude each other both ways."""
    lock_path = str(tmp_path / "job" / ".lock")
    ready, release = SPAWN.Event(), SPAWN.Event()
    legacy = start(legacy_protocol_hold, lock_path, ready, release)
    with cleanup_processes(legacy):
        assert ready.wait(DEADLINE)
        assert not can_take("ferrolock", tmp_path, "job")
        got = threading.Event()
        manager = JobLockManager(str(tmp_path))

        def wait_for_it() -> None:
            manager.lock_job_directory("job", timeout=DEADLINE)
            got.set()

        t = threading.Thread(target=wait_for_it)
        t.start()
        assert not got.wait(0.3)
        release.set()
        assert got.wait(DEADLINE), "ferrolock did not get the lock the legacy holder released"
        t.join(DEADLINE)
        result = SPAWN.Value("i", -1)
        probe = start(legacy_protocol_try, lock_path, result)
        with cleanup_processes(probe):
            probe.join(DEADLINE)
        assert result.value == 0, "a legacy process took a lock ferrolock holds"
        manager.unlock_job_directory("job")
        probe = start(legacy_protocol_try, lock_path, result)
        with cleanup_processes(probe):
            probe.join(DEADLINE)
        assert result.value == 1


@pytest.mark.timeout(180)
def test_no_lost_updates_across_processes_and_threads(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    procs = [start(count_under_job_lock, "ferrolock", str(tmp_path), "job", 25, str(counter)) for _ in range(4)]
    with cleanup_processes(*procs):
        manager = JobLockManager(str(tmp_path))

        def bump(_: int) -> None:
            with manager.job_lock("job", timeout=DEADLINE):
                counter.write_text(str(int(counter.read_text() or "0") + 1 if counter.exists() else 1))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(bump, range(100)))
        for p in procs:
            p.join(DEADLINE * 3)
            assert p.exitcode == 0
    assert int(counter.read_text()) == 4 * 25 + 100
    assert manager.get_lock_status() == {"active_locks": [], "lock_count": 0}


@pytest.mark.timeout(120)
def test_one_manager_shared_by_threads_keeps_its_books(tmp_path: Path) -> None:
    """logist's manager dict was shared unsynchronised: an unlock could delete the entry another thread
    had just stored, leaving that thread's lock held with no way to unlock it through the manager."""
    manager = JobLockManager(str(tmp_path))
    counts = dict.fromkeys(range(4), 0)

    def cycle(i: int) -> None:
        job = i % 4
        manager.lock_job_directory(f"job-{job}", timeout=DEADLINE)
        counts[job] += 1
        assert manager.is_job_locked(f"job-{job}")
        manager.unlock_job_directory(f"job-{job}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(cycle, range(400)))
    assert counts == dict.fromkeys(range(4), 100)
    assert manager.get_lock_status() == {"active_locks": [], "lock_count": 0}
    assert all(can_take("ferrolock", tmp_path, f"job-{j}", timeout=0) for j in range(4))


def _fork_and(action: Any) -> int:
    """Fork; the child runs ``action`` and exits 0 (or with the code ``action`` chose)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (Python 3.12+)
        pid = os.fork()
    if pid == 0:
        code = 0
        try:
            action()
        except BaseException:
            code = 4
        finally:
            os._exit(code)
    return pid
