"""The native ``ferrolock.JobLock`` and ``ferrolock.JobLockManager`` (logist's signatures, ferrolock's
exceptions)."""

from __future__ import annotations

import threading
from pathlib import Path

import ferrolock
import pytest
from ferrolock import JobLock, JobLockManager

DEADLINE = 30.0


def held_by_another_thread(path: Path) -> tuple[threading.Event, threading.Thread]:
    """Hold ``path`` in a helper thread (another owner, as another process would be) until released."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        lock = JobLock(path)
        lock.acquire()
        held.set()
        release.wait(DEADLINE)
        lock.release()

    t = threading.Thread(target=hold)
    t.start()
    assert held.wait(DEADLINE)
    return release, t


def test_job_lock_basics(tmp_path: Path) -> None:
    lock = JobLock(tmp_path / "j" / ".lock", purpose="job j")
    assert lock.timeout == 30.0
    assert repr(lock).endswith("locked=False)")
    assert lock.acquire() is True
    record = lock.holder()
    assert record is not None
    assert record["purpose"] == "job j"
    assert repr(lock).endswith("locked=True)")
    # Any thread may release a JobLock: it belongs to the object.
    t = threading.Thread(target=lock.release)
    t.start()
    t.join(DEADLINE)
    assert not lock.is_locked()
    assert lock._lock_fd is None


@pytest.mark.timeout(60)
@pytest.mark.parametrize("timeout", [0.0, -1.0])
def test_a_timeout_of_zero_or_less_is_one_attempt(tmp_path: Path, timeout: float) -> None:
    path = tmp_path / ".lock"
    release, t = held_by_another_thread(path)
    try:
        lock = JobLock(path, timeout)
        assert lock.acquire(blocking=False) is False
        with pytest.raises(ferrolock.Timeout):
            lock.acquire()
    finally:
        release.set()
        t.join(DEADLINE)


def test_native_manager_raises_ferrolocks_exceptions(tmp_path: Path) -> None:
    manager = JobLockManager(tmp_path)
    with pytest.raises(ferrolock.InvalidName):
        manager.lock_job_directory("../x")
    lock = manager.lock_job_directory("j")
    assert type(lock) is JobLock
    with pytest.raises(ferrolock.WouldDeadlock):
        manager.lock_job_directory("j", timeout=5)
    # Through another manager the core's deadlock detection still answers at once.
    with pytest.raises(ferrolock.WouldDeadlock):
        JobLockManager(tmp_path).lock_job_directory("j", timeout=5)
    manager.unlock_job_directory("j")
    manager.unlock_job_directory("j")  # not held: nothing to do


@pytest.mark.timeout(60)
def test_job_lock_context_releases_only_its_own_lock(tmp_path: Path) -> None:
    """logist's ``job_lock()`` ended with ``unlock_job_directory(job_id)``: if the block had released its
    lock and another thread had locked the job through the same manager since, it released that
    thread's lock."""
    manager = JobLockManager(tmp_path)
    taken, done = threading.Event(), threading.Event()
    locks: list[JobLock] = []

    def other() -> None:
        locks.append(manager.lock_job_directory("j", timeout=DEADLINE))
        taken.set()
        done.wait(DEADLINE)
        manager.unlock_job_directory("j")

    with manager.job_lock("j") as lock:
        lock.release()
        t = threading.Thread(target=other)
        t.start()
        assert taken.wait(DEADLINE)
    try:
        assert locks[0].is_locked(), "job_lock() released another thread's lock"
        assert manager.get_lock_status() == {"active_locks": ["j"], "lock_count": 1}
    finally:
        done.set()
        t.join(DEADLINE)
    assert manager.get_lock_status()["lock_count"] == 0


def test_cleanup_reports_sorted_job_names_and_tolerates_a_missing_directory(tmp_path: Path) -> None:
    assert JobLockManager(tmp_path / "missing").cleanup_stale_locks() == []
    manager = JobLockManager(tmp_path)
    for job in ("b", "a", "c"):
        manager.lock_job_directory(job)
        manager.unlock_job_directory(job)
    assert manager.cleanup_stale_locks(max_age_seconds=-1) == ["a", "b", "c"]
    assert manager.cleanup_stale_locks(max_age_seconds=float("nan")) == []
