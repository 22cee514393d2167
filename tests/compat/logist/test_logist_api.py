"""The surface of ``ferrolock.compat.logist`` that logist's code and tests rely on: names, signatures,
exception classes, message texts and files on disk (spec: compat/logist.md)."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import ferrolock
import pytest
from ferrolock.compat import logist
from ferrolock.compat.logist import (
    FileLock,
    JobLockManager,
    LockError,
    ensure_workspace_ready,
    job_directory_lock,
    try_lock_job_directory,
)


def params(func: object) -> list[tuple[str, object]]:
    sig = inspect.signature(func)  # type: ignore[arg-type]
    return [(p.name, p.default) for p in sig.parameters.values() if p.name != "self"]


def test_exports_every_name_logist_imports() -> None:
    for name in ("FileLock", "JobLockManager", "LockError", "job_directory_lock", "try_lock_job_directory"):
        assert hasattr(logist, name), name
    assert "ensure_workspace_ready" in logist.__all__


def test_signatures_match_logist() -> None:
    empty = inspect.Parameter.empty
    assert params(FileLock)[:2] == [("lock_file_path", empty), ("timeout", 30.0)]
    assert params(FileLock.acquire) == [("blocking", True)]
    assert params(FileLock.release) == []
    assert params(FileLock.is_locked) == []
    assert params(JobLockManager) == [("base_jobs_dir", empty)]
    assert params(JobLockManager.lock_job_directory) == [("job_id", empty), ("timeout", 30.0)]
    assert params(JobLockManager.unlock_job_directory) == [("job_id", empty)]
    assert params(JobLockManager.is_job_locked) == [("job_id", empty)]
    assert params(JobLockManager.job_lock) == [("job_id", empty), ("timeout", 30.0)]
    assert params(JobLockManager.lock_jobs_index) == [("timeout", 30.0)]
    assert params(JobLockManager.jobs_index_lock) == [("timeout", 30.0)]
    assert params(JobLockManager.cleanup_stale_locks) == [("max_age_seconds", 3600)]
    assert params(JobLockManager.get_lock_status) == []
    assert params(job_directory_lock) == [("job_id", empty), ("base_jobs_dir", empty), ("timeout", 30.0)]
    assert params(try_lock_job_directory) == [("job_id", empty), ("base_jobs_dir", empty), ("timeout", 5.0)]
    assert params(ensure_workspace_ready)[:3] == [("job_dir", empty), ("setup", empty), ("debug", False)]


def test_exception_classes() -> None:
    assert issubclass(LockError, logist.JobStateError)
    assert issubclass(LockError, ferrolock.LockError)
    assert not issubclass(LockError, TimeoutError)


def test_lock_error_subclasses_the_hosts_job_state_error(tmp_path: Path) -> None:
    """logist's CLI, engine and recovery catch ``logist.job_state.JobStateError`` around locking."""
    pkg = tmp_path / "logist"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "job_state.py").write_text("class JobStateError(Exception):\n    pass\n")
    code = textwrap.dedent(
        """
        from logist.job_state import JobStateError
        from ferrolock.compat.logist import LockError, JobLockManager
        assert issubclass(LockError, JobStateError), LockError.__mro__
        try:
            JobLockManager(".").lock_job_directory("../escape")
        except JobStateError as e:
            print("caught", type(e).__name__)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "caught _InvalidJobId"


def test_files_and_attributes(tmp_path: Path) -> None:
    manager = JobLockManager(str(tmp_path))
    assert manager.base_jobs_dir == tmp_path
    lock = manager.lock_job_directory("job-1", timeout=5.0)
    try:
        assert isinstance(lock, FileLock)
        assert lock.lock_file_path == tmp_path / "job-1" / ".lock"
        assert lock.timeout == 5.0
        assert lock._locked is True
        assert isinstance(lock._lock_fd, int)
        assert lock.is_locked()
        assert manager.get_lock_status() == {"active_locks": ["job-1"], "lock_count": 1}
        assert (tmp_path / "job-1" / ".lock").stat().st_mode & 0o777 == 0o666 & ~_umask()
    finally:
        manager.unlock_job_directory("job-1")
    assert lock._locked is False
    assert lock._lock_fd is None
    assert manager.get_lock_status() == {"active_locks": [], "lock_count": 0}
    with manager.jobs_index_lock() as index:
        assert index.lock_file_path == tmp_path / ".jobs_index.lock"
        assert index.is_locked()
        assert manager.get_lock_status()["lock_count"] == 0
    assert not index.is_locked()


def test_timeout_and_error_messages(tmp_path: Path) -> None:
    path = tmp_path / "j" / ".lock"
    holder = FileLock(str(path))
    assert holder.acquire()
    contender = FileLock(str(path), timeout=0.2)
    import threading

    errors: list[str] = []

    def other_thread() -> None:
        assert contender.acquire(blocking=False) is False
        try:
            contender.acquire()
        except LockError as e:
            errors.append(str(e))

    t = threading.Thread(target=other_thread)
    t.start()
    t.join(30)
    assert errors == [f"Lock acquisition timeout after 0.2s: {path}"]
    holder.release()

    bad = FileLock(str(tmp_path))  # a directory cannot be a lock file
    with pytest.raises(LockError, match=re.escape(f"Failed to acquire lock {tmp_path}: ")) as info:
        bad.acquire()
    assert isinstance(info.value.__cause__, OSError)


def test_context_manager_and_release_of_an_unheld_lock(tmp_path: Path) -> None:
    lock = FileLock(str(tmp_path / ".lock"))
    lock.release()  # nothing held: a no-op, as in logist
    with lock as entered:
        assert entered is lock
        assert lock.is_locked()
    assert not lock.is_locked()
    assert lock.acquire()
    assert lock.acquire()
    lock.release()
    assert not lock._locked


def test_workspace_files_and_marker_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job_dir = tmp_path / "job-7"
    calls: list[tuple[str, bool]] = []

    def setup(job_dir: str, debug: bool = False) -> None:
        calls.append((job_dir, debug))

    ensure_workspace_ready(str(job_dir), setup, debug=True)
    ensure_workspace_ready(str(job_dir), setup, debug=True)
    assert calls == [(str(job_dir), True)]
    marker = job_dir / "workspace" / ".workspace_ready"
    lines = marker.read_text().splitlines(keepends=True)
    assert lines[0] == "Workspace ready for job: job-7\n"
    assert re.fullmatch(r"Setup completed at: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\n", lines[1])
    assert len(lines) == 2
    # After a successful setup nobody holds the lock files, so they are gone: only the marker is left.
    assert sorted(os.listdir(job_dir)) == ["workspace"]
    assert sorted(os.listdir(job_dir / "workspace")) == [".workspace_ready"]
    assert capsys.readouterr().out.splitlines() == [
        "[DEBUG] Setting up workspace for job: job-7 (attempt 1)",
        "[DEBUG] Workspace setup completed successfully for job: job-7",
        "[DEBUG] Workspace already ready for job: job-7",
    ]


def test_native_names_are_exported() -> None:
    assert ferrolock.JobLockManager is logist.JobLockManager.__mro__[1]
    assert issubclass(logist.FileLock, ferrolock.JobLock)
    assert params(ferrolock.run_once)[:3] == [
        ("marker", inspect.Parameter.empty),
        ("lock_path", inspect.Parameter.empty),
        ("setup", inspect.Parameter.empty),
    ]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
