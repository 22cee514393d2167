"""Inputs have one meaning in every API: a NaN timeout, a mode with bits beyond ``0o777`` and an argument
of the wrong type are refused with an error that says what was expected, before anything is touched.

Infinities: ``inf`` waits forever everywhere. ``-inf`` is a negative timeout, so it follows each API's
convention for negative values (forever for ``FileLock``/``StateFile``/``run_once``, one attempt for
logist's ``JobLock``, "return at once" for little-loops' ``wait_for_scope``).
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ferrolock
import pytest
from ferrolock import _ferrolock
from ferrolock._scope import RUNNING_DIR
from ferrolock._state_manager import StateManager
from ferrolock.compat.todo2 import file_lock as todo2_file_lock
from process_helpers import START_DEADLINE, wait_until_blocked

pytestmark = pytest.mark.timeout(60)

NAN = math.nan


def _nan_timeout_calls(tmp: Path) -> dict[str, Callable[[], object]]:
    """Every API that takes a timeout, each called with NaN on a free lock (so a NaN that is accepted
    returns at once instead of hanging the test)."""
    lock, state = tmp / "a.lock", ferrolock.StateFile(tmp / "state")
    jobs = ferrolock.JobLockManager(tmp / "jobs")

    def set_timeout(obj: Any) -> None:
        obj.timeout = NAN

    return {
        "FileLock(timeout=nan)": lambda: ferrolock.FileLock(lock, timeout=NAN),
        "FileLock.acquire(timeout=nan)": lambda: ferrolock.FileLock(lock).acquire(timeout=NAN),
        "FileLock.timeout = nan": lambda: set_timeout(ferrolock.FileLock(lock)),
        "FileLock.acquire_async(timeout=nan)": lambda: asyncio.run(ferrolock.FileLock(lock).acquire_async(NAN)),
        "StateFile(timeout=nan)": lambda: ferrolock.StateFile(tmp / "s2", timeout=NAN),
        "StateFile.timeout = nan": lambda: set_timeout(state),
        "StateFile.edit(timeout=nan)": lambda: state.edit(timeout=NAN).__enter__(),
        "StateFile.locked(timeout=nan)": lambda: state.locked(timeout=NAN).__enter__(),
        "StateFile.write(timeout=nan)": lambda: state.write(b"x", timeout=NAN),
        "StateFile.remove(timeout=nan)": lambda: state.remove(timeout=NAN),
        "StateFile.set_aside(timeout=nan)": lambda: state.set_aside(tmp / "aside", timeout=NAN),
        "JobLock(timeout=nan)": lambda: ferrolock.JobLock(lock, NAN),
        "JobLock.timeout = nan": lambda: set_timeout(ferrolock.JobLock(lock)),
        "JobLockManager.lock_job_directory(timeout=nan)": lambda: jobs.lock_job_directory("j", timeout=NAN),
        "JobLockManager.lock_jobs_index(timeout=nan)": lambda: jobs.lock_jobs_index(timeout=NAN),
        "run_once(timeout=nan)": lambda: ferrolock.run_once(tmp / "m", tmp / "m.lock", lambda: None, timeout=NAN),
        "LockManager.wait_for_scope(timeout=nan)": lambda: ferrolock.LockManager(tmp).wait_for_scope(["x"], NAN),
        "ScopeDir.wait_for_scope(nan)": lambda: _ferrolock.ScopeDir(tmp / RUNNING_DIR).wait_for_scope(["/x"], NAN),
        "StateManager._lock_state(timeout=nan)": lambda: StateManager(tmp / "STATE.md")._lock_state(NAN).__enter__(),
        "todo2 FileLock.acquire() with timeout nan": lambda: todo2_file_lock.FileLock(lock, timeout=NAN).acquire(),
    }


@pytest.mark.parametrize("api", sorted(_nan_timeout_calls(Path("/unused"))))
def test_a_nan_timeout_is_a_value_error_everywhere(tmp_path: Path, api: str) -> None:
    """NaN used to wait forever in FileLock, StateFile and JobLock and return at once in
    wait_for_scope and the todo2 FileLock: it has no meaning as a duration."""
    with pytest.raises(ValueError, match="NaN"):
        _nan_timeout_calls(tmp_path)[api]()
    assert not (tmp_path / "a.lock").exists(), "a refused call touched the lock file"
    assert not (tmp_path / "state").exists()


def test_a_refused_timeout_leaves_the_old_one(tmp_path: Path) -> None:
    lock = ferrolock.FileLock(tmp_path / "a.lock", timeout=3)
    with pytest.raises(ValueError, match="NaN"):
        lock.timeout = NAN
    assert lock.timeout == 3
    job = ferrolock.JobLock(tmp_path / "j.lock", None)
    with pytest.raises(ValueError, match="NaN"):
        job.timeout = NAN
    assert job.timeout is None


@pytest.mark.parametrize("make", ["FileLock", "JobLock", "StateFile"])
def test_an_infinite_timeout_waits_until_the_lock_is_free(tmp_path: Path, make: str) -> None:
    """``inf`` must sleep in the kernel (not give up at once) and get the lock when it is released."""
    path = tmp_path / "a.lock"
    held, release, done = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        with ferrolock.FileLock(path):
            held.set()
            release.wait(START_DEADLINE)

    def wait() -> None:
        try:
            if make == "FileLock":
                with ferrolock.FileLock(path, timeout=math.inf):
                    pass
            elif make == "JobLock":
                with ferrolock.JobLock(path, math.inf):
                    pass
            else:
                ferrolock.StateFile(tmp_path / "state", lock_path=path, timeout=math.inf).write("done")
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)
        done.set()

    holder, waiter = threading.Thread(target=hold), threading.Thread(target=wait)
    holder.start()
    assert held.wait(START_DEADLINE)
    waiter.start()
    try:
        wait_until_blocked(os.getpid())
        assert not done.is_set(), "an infinite timeout gave up"
    finally:
        release.set()
        holder.join(START_DEADLINE)
        waiter.join(START_DEADLINE)
    assert done.is_set()
    assert not errors


def test_minus_infinity_follows_each_apis_convention_for_negative_timeouts(tmp_path: Path) -> None:
    path = tmp_path / "a.lock"
    # logist: a timeout <= 0 is one attempt.
    with ferrolock.FileLock(path), pytest.raises(ferrolock.Timeout):
        ferrolock.JobLock(path, -math.inf).acquire()
    # little-loops: a timeout <= 0 returns False at once, without looking.
    assert ferrolock.LockManager(tmp_path).wait_for_scope(["x"], -math.inf) is False
    # py-filelock: negative waits forever; on a free lock that is an ordinary acquire.
    with ferrolock.FileLock(path, timeout=-math.inf) as lock:
        assert lock.is_locked


# --- Modes --------------------------------------------------------------------------------------------

BAD_MODES = [0o6777, 0o4755, 0o2770, 0o1644, 0o10000, -2, 2**40]


@pytest.mark.parametrize("mode", [*BAD_MODES, -1], ids=oct)
def test_a_mode_beyond_permission_bits_is_refused_and_nothing_is_created(tmp_path: Path, mode: int) -> None:
    """``FileLock(mode=0o6777)`` created a setuid/setgid lock file."""
    if mode == -1:  # py-filelock's "no mode given" for FileLock, an error everywhere else
        assert not ferrolock.FileLock(tmp_path / "a.lock", mode=mode).has_explicit_mode
    else:
        with pytest.raises(ValueError, match="mode") as info:
            ferrolock.FileLock(tmp_path / "a.lock", mode=mode).acquire()
        assert "0o777" in str(info.value)
    with pytest.raises(ValueError, match="0o777"):
        ferrolock.atomic_write(tmp_path / "data", b"x", mode=mode)
    with pytest.raises(ValueError, match="0o777"):
        ferrolock.StateFile(tmp_path / "state", mode=mode).write(b"x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", [0, 0o600, 0o644, 0o777])
def test_permission_bits_are_accepted(tmp_path: Path, mode: int) -> None:
    with ferrolock.FileLock(tmp_path / "a.lock", mode=mode) as lock:
        assert lock.mode == mode
    ferrolock.atomic_write(tmp_path / "data", b"x", mode=mode)
    assert (tmp_path / "data").stat().st_mode & 0o7777 == mode


def test_a_mode_of_the_wrong_type_says_an_int_was_expected(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"mode must be an int .*not str"):
        ferrolock.FileLock(tmp_path / "a.lock", mode="644")  # type: ignore[arg-type]


# --- Types --------------------------------------------------------------------------------------------


def _data_calls(tmp: Path) -> dict[str, tuple[Callable[[object], object], str]]:
    """Each API taking "bytes or str", with the start of the message its refusal must have."""
    return {
        "StateFile.write": (
            lambda v: ferrolock.StateFile(tmp / "s").write(v),  # type: ignore[arg-type]
            "data must be bytes or str",
        ),
        "atomic_write": (
            lambda v: ferrolock.atomic_write(tmp / "s", v),  # type: ignore[arg-type]
            "data must be bytes or str",
        ),
        "run_once(marker_text=...)": (
            lambda v: ferrolock.run_once(
                tmp / "m",
                tmp / "m.lock",
                (tmp / "setup-ran").touch,
                marker_text=v,  # type: ignore[arg-type]
            ),
            "marker_text must be bytes, str or a callable returning them",
        ),
    }


@pytest.mark.parametrize("api", sorted(_data_calls(Path("/unused"))))
@pytest.mark.parametrize("value", [5, 1.5, ["x"], {"a": 1}], ids=repr)
def test_data_of_the_wrong_type_says_bytes_or_str_were_expected(tmp_path: Path, api: str, value: object) -> None:
    """``StateFile.write(5)`` printed PyO3's enum-extraction report; ``run_once`` ran the setup before
    finding out its marker text was unusable."""
    call, message = _data_calls(tmp_path)[api]
    with pytest.raises(TypeError) as info:
        call(value)
    assert str(info.value) == f"{message}, not {type(value).__name__}"
    assert list(tmp_path.iterdir()) == [], "a refused call wrote something (or ran the setup)"


def _path_calls(tmp: Path) -> dict[str, Callable[[Any], object]]:
    return {
        "FileLock": ferrolock.FileLock,
        "JobLock": ferrolock.JobLock,
        "StateFile": ferrolock.StateFile,
        "StateFile(lock_path=...)": lambda p: ferrolock.StateFile(tmp / "s", lock_path=p),  # type: ignore[arg-type]
        "StateFile.set_aside": lambda p: ferrolock.StateFile(tmp / "s").set_aside(p),  # type: ignore[arg-type]
        "atomic_write": lambda p: ferrolock.atomic_write(p, b""),  # type: ignore[arg-type]
        "atomic_write(backup=...)": lambda p: ferrolock.atomic_write(tmp / "s", b"", backup=p),  # type: ignore[arg-type]
        "probe": ferrolock.probe,
        "remove_if_unheld": ferrolock.remove_if_unheld,
        "run_once": lambda p: ferrolock.run_once(p, tmp / "l", lambda: None),  # type: ignore[arg-type]
        "ScopeDir": _ferrolock.ScopeDir,
        "job_lock_path": lambda p: _ferrolock.job_lock_path(p, "j"),  # type: ignore[arg-type]
    }


# None is the default of the optional path arguments, so it is only wrong for the required ones.
_OPTIONAL_PATHS = {"StateFile(lock_path=...)", "atomic_write(backup=...)"}


@pytest.mark.parametrize(
    ("api", "value"),
    [
        (api, value)
        for api in sorted(_path_calls(Path("/unused")))
        for value in (5, None, b"a.lock", ["a"])
        if not (value is None and api in _OPTIONAL_PATHS)
    ],
)
def test_a_path_of_the_wrong_type_says_str_or_pathlike_was_expected(tmp_path: Path, api: str, value: object) -> None:
    with pytest.raises(TypeError) as info:
        _path_calls(tmp_path)[api](value)
    assert str(info.value) == f"path must be str or os.PathLike[str], not {type(value).__name__}"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["5", b"1", [1]], ids=repr)
def test_a_timeout_of_the_wrong_type_says_a_number_was_expected(tmp_path: Path, value: object) -> None:
    expected = f"timeout must be a number of seconds, not {type(value).__name__}"
    for call in (
        lambda: ferrolock.FileLock(tmp_path / "a.lock", timeout=value),  # type: ignore[arg-type]
        lambda: ferrolock.FileLock(tmp_path / "a.lock").acquire(timeout=value),  # type: ignore[arg-type]
        lambda: ferrolock.JobLock(tmp_path / "a.lock", value),  # type: ignore[arg-type]
        lambda: ferrolock.StateFile(tmp_path / "s").write(b"", timeout=value),  # type: ignore[arg-type]
        lambda: ferrolock.run_once(tmp_path / "m", tmp_path / "l", lambda: None, timeout=value),  # type: ignore[arg-type]
        lambda: ferrolock.LockManager(tmp_path).wait_for_scope(["x"], value),  # type: ignore[arg-type]
    ):
        with pytest.raises(TypeError) as info:
            call()
        assert str(info.value) == expected
    assert list(tmp_path.iterdir()) == []


# --- Names and paths ----------------------------------------------------------------------------------


def test_validate_name_refuses_an_unknown_label() -> None:
    """An unknown label was silently reported as "name"."""
    with pytest.raises(ValueError, match=r'^invalid kind of name "job-id"') as info:
        _ferrolock.validate_name("job-id", "ok")
    assert not isinstance(info.value, ferrolock.InvalidName)
    assert '"job id"' in str(info.value), "the message lists the known labels"


@pytest.mark.parametrize("label", ["job id", "task id", "loop name", "instance id"])
def test_invalid_name_messages_name_the_right_thing(label: str) -> None:
    with pytest.raises(ferrolock.InvalidName, match=rf'^invalid {label} "\.\./x"'):
        _ferrolock.validate_name(label, "../x")
    assert _ferrolock.validate_name(label, "ok-1") == "ok-1"


def test_a_non_utf8_lock_path_round_trips(tmp_path: Path) -> None:
    """A lock path that is not valid UTF-8 came back with U+FFFD in place of its bytes."""
    name = os.fsdecode(b"lock-\xff\xfe")
    path = str(tmp_path / name)
    lock = ferrolock.FileLock(path)
    assert lock.lock_file == path
    with lock:
        assert os.fsencode(name) in os.listdir(os.fsencode(tmp_path))
    state = ferrolock.StateFile(path + ".state")
    assert (state.path, state.lock_path) == (path + ".state", path + ".state.lock")
    assert _ferrolock.ScopeDir(path).running_dir == path
