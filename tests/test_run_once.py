"""Run-once setup across processes: ``ferrolock.run_once`` and logist's ``ensure_workspace_ready``."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Final

import ferrolock
import pytest
from ferrolock._ferrolock import _set_failpoint
from ferrolock.compat.logist import LockError, ensure_workspace_ready
from logist_helpers import (
    DEADLINE,
    ensure_ready,
    ensure_ready_replacing_workspace,
    ensure_ready_until_interrupted,
    hold_file_lock,
    legacy_protocol_hold,
)
from process_helpers import cleanup_processes, wait_until_blocked

SPAWN: Final = multiprocessing.get_context("spawn")


def start(target: Any, *args: Any) -> multiprocessing.process.BaseProcess:
    p = SPAWN.Process(target=target, args=args)
    p.start()
    return p


def log_lines(log: Path) -> Counter[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    return Counter("setup" if line.startswith("setup ") and line != "setup failed" else line for line in lines)


@pytest.mark.timeout(180)
def test_eight_processes_race_one_setup_runs_and_all_return(tmp_path: Path) -> None:
    """logist's waiters retried ``LOCK_NB`` ten times, 0.1 s apart, then raised a plain ``Exception``:
    with a setup of several seconds (a git clone) every caller but the first failed."""
    job_dir, log = tmp_path / "job-1", tmp_path / "log"
    go = SPAWN.Event()
    procs = [start(ensure_ready, str(job_dir), str(log), 3.0, go) for _ in range(8)]
    with cleanup_processes(*procs):
        go.set()
        for p in procs:
            p.join(DEADLINE * 2)
            assert p.exitcode == 0
    assert log_lines(log) == Counter({"setup": 1, "returned": 8})
    assert (job_dir / "workspace" / ".workspace_ready").read_text().startswith("Workspace ready for job: job-1\n")


@pytest.mark.timeout(180)
def test_a_setup_that_fails_once_is_retried_by_the_next_caller(tmp_path: Path) -> None:
    """The failure reaches the caller that ran the setup, no marker is left, and the next caller runs
    the setup again (logist's other waiters had given up after about 1 s)."""
    job_dir, log, failures = tmp_path / "job-2", tmp_path / "log", tmp_path / "fail-once"
    failures.touch()
    go = SPAWN.Event()
    procs = [start(ensure_ready, str(job_dir), str(log), 1.5, go, str(failures)) for _ in range(4)]
    with cleanup_processes(*procs):
        go.set()
        for p in procs:
            p.join(DEADLINE * 2)
            assert p.exitcode == 0
    assert log_lines(log) == Counter(
        {"setup failed": 1, "raised RuntimeError: first setup fails": 1, "setup": 1, "returned": 3}
    )
    lines = (job_dir / "workspace" / ".workspace_ready").read_text().splitlines()
    assert lines[0] == "Workspace ready for job: job-2"
    assert lines[1].startswith("Setup completed at: ")


@pytest.mark.timeout(180)
def test_a_setup_that_replaces_the_workspace_never_runs_twice_at_once(tmp_path: Path) -> None:
    """logist's lock file lived inside the workspace its setup deletes and recreates: once the folder was
    gone, a newcomer created a fresh lock file, locked it unopposed and ran a second setup beside the
    first. ferrolock's mutex lives beside the workspace, so latecomers wait."""
    job_dir, log = tmp_path / "job-3", tmp_path / "log"
    (job_dir / "workspace").mkdir(parents=True)
    deleted = SPAWN.Event()
    first = start(ensure_ready_replacing_workspace, str(job_dir), str(log), 2.0, deleted)
    procs = [first]
    with cleanup_processes(*procs):
        assert deleted.wait(DEADLINE)
        assert not (job_dir / "workspace").exists()
        procs += [start(ensure_ready_replacing_workspace, str(job_dir), str(log), 2.0, deleted) for _ in range(6)]
        for p in procs:
            p.join(DEADLINE * 2)
            assert p.exitcode == 0
    assert log_lines(log) == Counter({"setup": 1, "returned": 7})
    assert os.listdir(job_dir / "workspace") == [".workspace_ready"]


@pytest.mark.timeout(60)
def test_waiting_gives_up_at_the_timeout_with_logists_message(tmp_path: Path) -> None:
    job_dir = tmp_path / "job-4"
    ready, release = SPAWN.Event(), SPAWN.Event()
    holder = start(hold_file_lock, str(job_dir / ".workspace_setup.lock"), ready, release)
    with cleanup_processes(holder):
        assert ready.wait(DEADLINE)
        started = time.monotonic()
        with pytest.raises(ferrolock.Timeout) as info:
            ensure_workspace_ready(str(job_dir), _must_not_run, timeout=0.3)
        assert time.monotonic() - started >= 0.3
        release.set()
    assert str(info.value) == "Failed to coordinate workspace setup for job job-4: lock acquisition timeout"
    assert not isinstance(info.value, LockError)  # logist raised a plain Exception, not a JobStateError


@pytest.mark.timeout(60)
def test_a_legacy_process_setting_up_is_waited_for(tmp_path: Path) -> None:
    """A process still running logist's code holds ``workspace/.workspace_setup.lock`` while it sets up:
    ferrolock holds that file too, so it never runs its setup beside the old one."""
    job_dir = tmp_path / "job-5"
    ready, release = SPAWN.Event(), SPAWN.Event()
    legacy = start(legacy_protocol_hold, str(job_dir / "workspace" / ".workspace_setup.lock"), ready, release)
    with cleanup_processes(legacy):
        assert ready.wait(DEADLINE)
        with pytest.raises(ferrolock.Timeout):
            ensure_workspace_ready(str(job_dir), _must_not_run, timeout=0.3)
        release.set()
        legacy.join(DEADLINE)
    ran: list[str] = []
    ensure_workspace_ready(str(job_dir), lambda job_dir, debug=False: ran.append(job_dir))
    assert ran == [str(job_dir)]


@pytest.mark.timeout(60)
def test_the_marker_is_written_atomically(tmp_path: Path) -> None:
    """logist wrote the marker in place (``open('w')``): a crash mid-write left a truncated marker that
    still counted as "ready". ferrolock renames a complete, fsynced file into place."""
    job_dir = tmp_path / "job-6"
    ran: list[int] = []
    _set_failpoint("atomic_write:rename")
    try:
        with pytest.raises(OSError, match="rename"):
            ensure_workspace_ready(str(job_dir), lambda job_dir, debug=False: ran.append(1))
    finally:
        _set_failpoint(None)
    workspace = job_dir / "workspace"
    assert not (workspace / ".workspace_ready").exists()
    assert [n for n in os.listdir(workspace) if "workspace_ready" in n] == []
    ensure_workspace_ready(str(job_dir), lambda job_dir, debug=False: ran.append(2))
    assert ran == [1, 2]
    assert (workspace / ".workspace_ready").read_text().count("\n") == 2


@pytest.mark.timeout(60)
def test_ctrl_c_interrupts_a_waiting_caller_with_nothing_held(tmp_path: Path) -> None:
    job_dir, log = tmp_path / "job-7", tmp_path / "log"
    ready, release, waiting = SPAWN.Event(), SPAWN.Event(), SPAWN.Event()
    holder = start(hold_file_lock, str(job_dir / ".workspace_setup.lock"), ready, release)
    with cleanup_processes(holder):
        assert ready.wait(DEADLINE)
        waiter = start(ensure_ready_until_interrupted, str(job_dir), str(log), waiting)
        with cleanup_processes(waiter):
            assert waiting.wait(DEADLINE)
            assert waiter.pid is not None
            wait_until_blocked(waiter.pid)  # the signal must interrupt a kernel wait
            os.kill(waiter.pid, signal.SIGINT)
            waiter.join(DEADLINE)
            assert waiter.exitcode == 0
        release.set()
        holder.join(DEADLINE)
    assert log.read_text() == "interrupted\n"
    assert ferrolock.probe(job_dir / ".workspace_setup.lock")[0] in ("free", "missing")


def test_run_once_native_api(tmp_path: Path) -> None:
    marker, lock = tmp_path / "w" / ".ready", tmp_path / "setup.lock"
    calls: list[int] = []
    assert ferrolock.run_once(marker, lock, lambda: calls.append(1), marker_text="v1\n") is True
    assert ferrolock.run_once(marker, lock, lambda: calls.append(2)) is False
    assert calls == [1]
    assert marker.read_text() == "v1\n"
    assert not lock.exists()

    other = tmp_path / "other"
    assert ferrolock.run_once(other, lock, lambda: None, marker_text=lambda: b"bytes\n", cleanup=False)
    assert other.read_bytes() == b"bytes\n"
    assert lock.exists()
    default = tmp_path / "default"
    ferrolock.run_once(default, lock, lambda: None)
    assert default.read_text().startswith("completed ")


def test_run_once_passes_the_setup_exception_through_unchanged(tmp_path: Path) -> None:
    marker = tmp_path / ".ready"
    boom = ValueError("clone failed")

    def setup() -> None:
        marker.write_text("half")
        raise boom

    with pytest.raises(ValueError, match="clone failed") as info:
        ferrolock.run_once(marker, tmp_path / "l", setup)
    assert info.value is boom
    assert not marker.exists()


def test_run_once_inside_its_own_setup_is_a_clear_error(tmp_path: Path) -> None:
    lock = tmp_path / "l"

    def setup() -> None:
        ferrolock.run_once(tmp_path / "inner", lock, lambda: None)

    with pytest.raises(ferrolock.WouldDeadlock):
        ferrolock.run_once(tmp_path / "outer", lock, setup)
    assert not (tmp_path / "outer").exists()


@pytest.mark.timeout(60)
def test_run_once_timeout_zero_is_one_attempt(tmp_path: Path) -> None:
    lock = ferrolock.FileLock(tmp_path / "l")
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait(DEADLINE)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(DEADLINE)
        with pytest.raises(ferrolock.Timeout):
            ferrolock.run_once(tmp_path / "m", tmp_path / "l", _must_not_run, timeout=0)
    finally:
        release.set()
        t.join(DEADLINE)


def _must_not_run(*args: object, **kwargs: object) -> None:
    raise AssertionError("setup must not run")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_something_other_than_a_marker_at_its_path_is_refused_not_taken_for_done(tmp_path: Path, kind: str) -> None:
    """A FIFO or a directory where the marker belongs is not a finished setup: counting it as one would
    skip the setup for good. It is refused with a clear error, and the setup does not run."""
    marker = tmp_path / "work" / ".done"
    marker.parent.mkdir()
    if kind == "fifo":
        os.mkfifo(marker)
    else:
        marker.mkdir()
    ran: list[bool] = []
    with pytest.raises(OSError, match=r"[Ii]s a (FIFO|directory)") as err:  # a directory: the OS's EISDIR words
        ferrolock.run_once(marker, tmp_path / "setup.lock", lambda: ran.append(True))
    assert err.value.filename == str(marker)
    assert ran == []
