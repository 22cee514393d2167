"""``ferrolock.compat.todo2.file_lock``: the legacy surface, and each fixed weakness of the legacy
``FileLock``/``task_lock`` (those tests also run against the legacy code, where they must fail)."""

from __future__ import annotations

import errno
import fcntl
import inspect
import os
import threading
import time
from pathlib import Path

import ferrolock
import pytest
from ferrolock.compat.todo2 import file_lock
from process_helpers import SPAWN, START_DEADLINE, cleanup_processes, fcntl_try_lock, wait_until_blocked
from todo2_helpers import LEGACY_FAILS, Impl, hold_and_fork, load_impl


def _hold(path: Path) -> int:
    """An exclusive flock on ``path`` through a descriptor of its own (as a legacy process holds it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _free(path: Path) -> bool:
    """Whether a separate descriptor can lock ``path`` right now."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --- the legacy surface ----------------------------------------------------------------------------

EXPECTED_SIGNATURES = {
    "FileLock": "(lock_file, timeout=10.0, poll_interval=0.1)",
    "FileLock.acquire": "(self, blocking=True)",
    "FileLock.release": "(self)",
    "task_lock": "(task_id=None, timeout=10.0)",
    "state_file_lock": "(timeout=10.0)",
    "try_lock_task": "(task_id, timeout=0.0)",
}


def _unannotated(module: object, dotted: str) -> str:
    obj = module
    for part in dotted.split("."):
        obj = getattr(obj, part)
    sig = inspect.signature(obj)  # type: ignore[arg-type]
    return str(inspect.Signature([p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]))


@pytest.mark.parametrize("name", sorted(EXPECTED_SIGNATURES))
def test_signatures_match_the_legacy_module(name: str, legacy_path: str | None) -> None:
    assert _unannotated(file_lock, name) == EXPECTED_SIGNATURES[name]
    if legacy_path is not None:
        assert _unannotated(load_impl("legacy", legacy_path).file_lock, name) == EXPECTED_SIGNATURES[name]


def test_module_constants_and_attributes(tmp_path: Path) -> None:
    assert file_lock.HAS_WINDOWS_LOCK is False
    lock = file_lock.FileLock(tmp_path / "a.lock")
    assert isinstance(lock.lock_file, Path)
    assert (lock.timeout, lock.poll_interval, lock.lock_fd, lock.is_windows) == (10.0, 0.1, None, False)
    lock.timeout = 2.5
    assert lock.timeout == 2.5
    assert not (tmp_path / "a.lock").exists(), "constructing a lock must not touch the disk"


@pytest.mark.timeout(30)
def test_acquire_returns_false_after_the_timeout_never_early(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "x.lock"
    fd = _hold(path)
    try:
        lock = file_lock.FileLock(path, timeout=0.3)
        assert lock.acquire(blocking=False) is False
        started = time.monotonic()
        assert lock.acquire() is False
        waited = time.monotonic() - started
        assert lock.lock_fd is None
    finally:
        os.close(fd)
    assert 0.3 <= waited < 1.5
    assert lock.acquire(blocking=False) is True
    assert lock.lock_fd == -1
    assert not _free(path)
    lock.release()
    assert lock.lock_fd is None
    assert _free(path)
    assert path.exists()


@pytest.mark.timeout(30)
def test_threads_sharing_one_instance_take_turns(tmp_path: Path) -> None:
    """Each thread holds through its own descriptor, so a shared instance excludes threads, and a
    thread's ``release()`` never frees another thread's hold. (The legacy instance kept one ``lock_fd``,
    which the second thread overwrote.)"""
    path = tmp_path / "shared.lock"
    lock = file_lock.FileLock(path, timeout=20.0)
    assert lock.acquire()
    got, release = threading.Event(), threading.Event()

    def other_thread() -> None:
        if lock.acquire():
            got.set()
            release.wait(START_DEADLINE)
            lock.release()

    worker = threading.Thread(target=other_thread)
    worker.start()
    try:
        wait_until_blocked(os.getpid(), deadline=5.0)
        assert not got.is_set()
        lock.release()
        assert got.wait(START_DEADLINE)
        lock.release()  # this thread holds nothing now: a no-op, never the other thread's release
        assert not _free(path)
    finally:
        release.set()
        worker.join(START_DEADLINE)
    assert _free(path)


def test_context_manager_message(tmp_path: Path) -> None:
    path = tmp_path / "y.lock"
    fd = _hold(path)
    try:
        with pytest.raises(RuntimeError) as info, file_lock.FileLock(path, timeout=0.05):
            pass
    finally:
        os.close(fd)
    assert str(info.value) == f"Failed to acquire lock: {path}"


def test_task_lock_and_state_file_lock_paths(root: Path) -> None:
    with file_lock.task_lock("T-7", timeout=1.0) as lock:
        assert lock.lock_file == root / ".todo2" / "locks" / "task_T-7.lock"
        assert not _free(lock.lock_file)
    with file_lock.task_lock(None, timeout=1.0) as lock:
        assert lock.lock_file == root / ".todo2" / "state.todo2.json.lock"
    with file_lock.task_lock("", timeout=1.0) as lock:  # a falsy id is the state file, as before
        assert lock.lock_file == root / ".todo2" / "state.todo2.json.lock"
    with file_lock.state_file_lock(timeout=1.0) as nothing:
        assert nothing is None
        assert not _free(root / ".todo2" / "state.todo2.json.lock")
    assert _free(root / ".todo2" / "state.todo2.json.lock")


def test_try_lock_task_returns_the_held_lock_or_none(root: Path) -> None:
    lock = file_lock.try_lock_task("T-5")
    assert isinstance(lock, file_lock.FileLock)
    assert file_lock.try_lock_task("T-5") is None
    lock.release()
    again = file_lock.try_lock_task("T-5", timeout=0.5)
    assert again is not None
    again.release()


# --- fixed weaknesses: each test fails on the legacy code -----------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("impl", ["ferrolock", LEGACY_FAILS], indirect=True)
def test_reacquiring_a_held_instance_succeeds_at_once(impl: Impl, tmp_path: Path) -> None:
    """Legacy: the second ``acquire()`` leaked the descriptor, blocked on itself for the whole timeout
    and returned False, leaving the file locked by the leaked descriptor."""
    path = tmp_path / "r.lock"
    lock = impl.file_lock.FileLock(path, timeout=0.3)
    assert lock.acquire()
    started = time.monotonic()
    assert lock.acquire() is True
    assert time.monotonic() - started < 0.1
    lock.release()
    assert _free(path), "one release() frees the lock"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("impl", ["ferrolock", LEGACY_FAILS], indirect=True)
def test_a_waiter_sleeps_in_the_kernel_and_wins_as_soon_as_the_holder_releases(impl: Impl, tmp_path: Path) -> None:
    """Legacy: polled every ``poll_interval`` (0.1 s) and never waited in the kernel, so the lock sat
    free for up to 100 ms after each release. (How fast the hand-off is, is ``bench/``'s business.)"""
    path = tmp_path / "k.lock"
    fd = _hold(path)
    got: list[bool] = []
    lock = impl.file_lock.FileLock(path, timeout=20.0)
    waiter = threading.Thread(target=lambda: got.append(lock.acquire()))
    waiter.start()
    try:
        wait_until_blocked(os.getpid(), deadline=5.0)
        assert not got
    finally:
        os.close(fd)
        waiter.join(START_DEADLINE)
    assert got == [True]
    lock.release()


@pytest.mark.parametrize("impl", ["ferrolock", LEGACY_FAILS], indirect=True)
def test_errors_other_than_contention_are_raised_not_reported_as_busy(impl: Impl, tmp_path: Path) -> None:
    """Legacy: any error opening or locking the file (here: a directory in its place) was logged and
    ``acquire()`` returned False, indistinguishable from "someone holds it"."""
    path = tmp_path / "is-a-dir.lock"
    path.mkdir()
    lock = impl.file_lock.FileLock(path, timeout=0.2)
    with pytest.raises(IsADirectoryError) as info:
        lock.acquire()
    assert info.value.filename == str(path)


@pytest.mark.parametrize("impl", ["ferrolock", LEGACY_FAILS], indirect=True)
def test_a_planted_symlink_is_not_followed(impl: Impl, root: Path) -> None:
    """Legacy: ``os.open(O_CREAT|O_RDWR)`` followed a symlink at the lock path and created (or locked)
    its target, wherever it pointed."""
    victim = root / "victim.txt"
    link = root / ".todo2" / "locks" / "task_T-1.lock"
    link.parent.mkdir(parents=True)
    link.symlink_to(victim)
    with pytest.raises(OSError, match=r"symbolic link") as info:
        impl.file_lock.try_lock_task("T-1")
    assert info.value.errno == errno.ELOOP
    assert not victim.exists()


@pytest.mark.parametrize("task_id", ["../../../escaped", "a/b", "nul\0byte"])
@pytest.mark.parametrize("impl", ["ferrolock", LEGACY_FAILS], indirect=True)
def test_task_ids_that_would_escape_the_locks_directory_are_rejected(impl: Impl, root: Path, task_id: str) -> None:
    """Legacy: the id went into the file name as is: ``/`` created directories and ``..`` escaped
    ``.todo2/locks/`` (``../../../escaped`` created ``<root>/escaped.lock``)."""
    before = _tree(root)
    with pytest.raises(ValueError, match="invalid task id"):
        impl.file_lock.try_lock_task(task_id)
    with pytest.raises(ValueError, match="invalid task id"), impl.file_lock.task_lock(task_id, timeout=0.1):
        pass
    assert _tree(root) == before


@pytest.mark.parametrize("task_id", ["", ".", "..", "x" * 300])
def test_unusable_task_ids_are_rejected_too(root: Path, task_id: str) -> None:
    """Not escapes in the legacy layout, but never useful ids: rejected by the same validation."""
    with pytest.raises(ferrolock.InvalidName):
        file_lock.try_lock_task(task_id)


@pytest.mark.parametrize("impl", ["ferrolock", LEGACY_FAILS], indirect=True)
def test_a_task_lock_timeout_is_a_runtime_error_and_a_timeout_error(impl: Impl, root: Path) -> None:
    """Legacy: only ``RuntimeError``, although its documentation promised a lock timeout error."""
    fd = _hold(root / ".todo2" / "locks" / "task_T-8.lock")
    try:
        with pytest.raises(TimeoutError) as info, impl.file_lock.task_lock("T-8", timeout=0.1):
            pass
    finally:
        os.close(fd)
    assert isinstance(info.value, RuntimeError)
    assert str(info.value) == "Failed to acquire lock for task T-8"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("impl", ["ferrolock", LEGACY_FAILS], indirect=True)
def test_a_forked_child_never_releases_the_parents_lock(impl: Impl, legacy_path: str | None, tmp_path: Path) -> None:
    """Legacy: ``release()`` and ``__del__`` in a forked child did ``LOCK_UN`` on the descriptor it
    shares with the parent, so the parent silently lost its lock."""
    path = tmp_path / "fork.lock"
    child_done, release = SPAWN.Event(), SPAWN.Event()
    parent = SPAWN.Process(target=hold_and_fork, args=(impl.name, legacy_path, str(path), child_done, release))
    with cleanup_processes(parent):
        parent.start()
        assert child_done.wait(START_DEADLINE)
        free = SPAWN.Value("i", -1)
        probe = SPAWN.Process(target=fcntl_try_lock, args=(str(path), free))
        with cleanup_processes(probe):
            probe.start()
            probe.join(START_DEADLINE)
        release.set()
        parent.join(START_DEADLINE)
        assert parent.exitcode == 0
    assert free.value == 0, "the child's release freed the parent's lock"


# --- the project root ------------------------------------------------------------------------------


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("PROJECT_ROOT", raising=False)
    monkeypatch.delenv("WORKSPACE_PATH", raising=False)
    return monkeypatch


def test_project_root_precedence(tmp_path: Path, no_env: pytest.MonkeyPatch) -> None:
    from ferrolock.compat.todo2.project_root import find_project_root

    env_root, workspace, project = tmp_path / "env", tmp_path / "ws", tmp_path / "proj"
    for d in (env_root, workspace, project / "src" / "deep"):
        d.mkdir(parents=True)
    (project / "go.mod").write_text("module x\n")
    no_env.chdir(project / "src" / "deep")
    assert find_project_root() == project.resolve()
    no_env.setenv("WORKSPACE_PATH", str(workspace))
    assert find_project_root() == workspace.resolve()
    no_env.setenv("PROJECT_ROOT", str(env_root))
    assert find_project_root() == env_root.resolve()
    # PROJECT_ROOT set but missing: WORKSPACE_PATH is not consulted (legacy `a or b` precedence)
    no_env.setenv("PROJECT_ROOT", str(tmp_path / "missing"))
    assert find_project_root() == project.resolve()
    no_env.delenv("PROJECT_ROOT")
    no_env.delenv("WORKSPACE_PATH")
    assert find_project_root(project / "src") == project.resolve()


@pytest.mark.parametrize("marker", [".git", ".todo2", "CMakeLists.txt", "go.mod", "pyproject.toml"])
def test_every_legacy_marker_marks_a_root(tmp_path: Path, no_env: pytest.MonkeyPatch, marker: str) -> None:
    from ferrolock.compat.todo2.project_root import find_project_root

    (tmp_path / "p" / marker).mkdir(parents=True)
    (tmp_path / "p" / "sub").mkdir()
    assert find_project_root(tmp_path / "p" / "sub") == (tmp_path / "p").resolve()


@pytest.mark.parametrize("impl", ["ferrolock", LEGACY_FAILS], indirect=True)
def test_a_chdir_after_the_first_lookup_is_honoured(impl: Impl, tmp_path: Path, no_env: pytest.MonkeyPatch) -> None:
    """Legacy: the first answer was cached for the life of the process, so after a ``chdir`` into
    another project, locks and state went to the first project."""
    first, second = tmp_path / "first", tmp_path / "second"
    for d in (first, second):
        (d / ".todo2").mkdir(parents=True)
    no_env.chdir(first)
    assert impl.task_locking.find_project_root() == first.resolve()
    no_env.chdir(second)
    assert impl.task_locking.find_project_root() == second.resolve()
