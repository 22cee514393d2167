"""Waits that the application's signals cannot break.

A blocking wait sleeps in ``flock(2)``; on Linux a real-time signal, aimed by a POSIX timer at the waiting
thread, interrupts it for a deadline, a cancellation or a Ctrl-C check. An application may take that
signal later (a Python handler, a native ``SA_RESTART`` handler, ``SIG_IGN``, ``SIG_DFL``), ignore every
real-time signal before ferrolock picks one, or run out of queued signals (``RLIMIT_SIGPENDING``).
Each case runs in a child process that sets up its signals and then waits on a lock this test holds;
whatever the child did, its timeouts stay exact, it is woken when the lock is freed, Ctrl-C and
cancellation still work, and the application's handler never sees one of ferrolock's signals.

``FERROLOCK_WAKE=thread`` selects the mechanism that needs no signal at all (helper threads); the
tests at the end check that it is really used and that its helpers are bounded.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ferrolock
import pytest
from process_helpers import START_DEADLINE, wait_until_blocked

# A wait's timeout is never early and, even on a loaded 2-core machine, far less late than this.
LATE_BOUND = 1.5
# How long the test holds the lock before giving up on a child that ignores its timeout: long enough
# that a broken child's wait is unmistakable, short enough to keep a failing run quick.
HOLD_FOR = 6.0

# Shared by every child: find the signal ferrolock installed, install a native SA_RESTART handler,
# time an acquisition.
_PRELUDE = textwrap.dedent(
    """
    import ctypes, json, os, resource, signal, sys, threading, time
    import ferrolock

    PATH = sys.argv[1]
    libc = ctypes.CDLL(None, use_errno=True)

    class Sigaction(ctypes.Structure):  # glibc's struct sigaction
        _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * 16),
                    ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]

    SA_RESTART = 0x10000000

    def native_handler(signo, flags):
        # getpid is async-signal-safe and ignores its argument: a native handler that does nothing.
        act = Sigaction(handler=ctypes.cast(libc.getpid, ctypes.c_void_p).value, flags=flags)
        if libc.sigaction(signo, ctypes.byref(act), None) != 0:
            raise OSError(ctypes.get_errno(), "sigaction")

    def rt_signals():
        return range(signal.SIGRTMIN, signal.SIGRTMAX + 1)

    def native_handler_of(signo):
        old = Sigaction()
        if libc.sigaction(signo, None, ctypes.byref(old)) != 0:
            raise OSError(ctypes.get_errno(), "sigaction")
        return old.handler or 0

    def ferrolock_signals():
        # Real-time signals with a handler (not SIG_DFL = 0, not SIG_IGN = 1) that Python did not install.
        return [n for n in rt_signals() if native_handler_of(n) > 1 and signal.getsignal(n) == signal.SIG_DFL]

    def timed(lock, **kw):
        start = time.monotonic()
        try:
            lock.acquire(**kw)
            outcome = "acquired"
        except ferrolock.Timeout:
            outcome = "timeout"
        except OSError as e:
            outcome = f"OSError {e.errno}"
        return outcome, time.monotonic() - start

    def report(**kw):
        print(json.dumps(kw), flush=True)
    """
)


@contextlib.contextmanager
def held(path: Path) -> Iterator[int]:
    """Hold ``path`` exclusively with a plain ``fcntl.flock`` (another open file description)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def run_child_holding(body: str, path: Path, *, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Hold ``path``, run ``_PRELUDE + body`` against it and return the child's last report.

    A child still running after ``HOLD_FOR`` seconds has ignored its timeout (the failure this module
    guards against): the lock is then released so the broken wait ends, and the test fails with the
    child's own account of how long it waited."""
    child_env = dict(os.environ)
    child_env.pop("FERROLOCK_WAKE", None)
    child_env.update(env or {})
    with held(path):
        child = subprocess.Popen(
            [sys.executable, "-c", _PRELUDE + textwrap.dedent(body), str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env,
        )
        try:
            out, err = child.communicate(timeout=HOLD_FOR)
            stretched = False
        except subprocess.TimeoutExpired:
            stretched = True
        except BaseException:
            child.kill()
            child.wait()
            raise
    try:
        if stretched:  # the lock is free now; the broken wait ends and the child says how long it took
            out, err = child.communicate(timeout=START_DEADLINE)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert not stretched, f"the child's wait outlived its timeout by {HOLD_FOR:.0f} s: {out.strip()} {err.strip()}"
    assert child.returncode == 0, f"child ended with {child.returncode}: {err}"
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"child reported nothing: {out!r} {err!r}"
    result: dict[str, Any] = json.loads(lines[-1])
    result["stderr"] = err
    return result


def assert_exact_timeout(result: dict[str, Any], timeout: float, key: str = "elapsed") -> None:
    assert result["outcome"] == "timeout", result
    assert result[key] >= timeout, f"timeout was early: {result[key]:.4f} s < {timeout} s"
    assert result[key] < timeout + LATE_BOUND, f"timeout was late: {result[key]:.3f} s"


# --- the application takes ferrolock's signal after ferrolock chose it ---------------------------------


@pytest.mark.timeout(60)
def test_an_application_handler_installed_later_receives_none_of_our_signals(lock_path: Path) -> None:
    result = run_child_holding(
        """
        lock = ferrolock.FileLock(PATH)
        timed(lock, timeout=0.05)          # ferrolock picks its signal here
        ours = ferrolock_signals()
        assert len(ours) == 1, ours
        hits = []
        signal.signal(ours[0], lambda signo, frame: hits.append(signo))
        outcome, elapsed = timed(lock, timeout=0.5)
        for _ in range(1000):              # let any pending Python handler run
            pass
        report(outcome=outcome, elapsed=elapsed, hits=len(hits))
        """,
        lock_path,
    )
    assert_exact_timeout(result, 0.5)
    assert result["hits"] == 0, "the application's handler received ferrolock's wake signal"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["native SA_RESTART handler", "SIG_IGN", "SIG_DFL"])
def test_an_application_taking_our_signal_later_does_not_break_timeouts(lock_path: Path, how: str) -> None:
    install = {
        "native SA_RESTART handler": "native_handler(ours[0], SA_RESTART)",
        "SIG_IGN": "signal.signal(ours[0], signal.SIG_IGN)",
        "SIG_DFL": "signal.signal(ours[0], signal.SIG_DFL)",
    }[how]
    result = run_child_holding(
        f"""
        lock = ferrolock.FileLock(PATH)
        timed(lock, timeout=0.05)
        ours = ferrolock_signals()
        assert len(ours) == 1, ours
        {install}
        first = timed(lock, timeout=0.5)
        second = timed(lock, timeout=0.3)   # and every later wait too
        report(outcome=first[0], elapsed=first[1], outcome2=second[0], elapsed2=second[1])
        """,
        lock_path,
    )
    assert_exact_timeout(result, 0.5)
    assert_exact_timeout({"outcome": result["outcome2"], "elapsed": result["elapsed2"]}, 0.3)


# --- no signal to be had at all ---------------------------------------------------------------------------

_NO_SIGNALS = {
    "every real-time signal ignored": "for n in rt_signals(): signal.signal(n, signal.SIG_IGN)",
    "every real-time signal handled": "for n in rt_signals(): native_handler(n, SA_RESTART)",
    "RLIMIT_SIGPENDING exhausted": (
        "resource.setrlimit(resource.RLIMIT_SIGPENDING, (0, resource.getrlimit(resource.RLIMIT_SIGPENDING)[1]))"
    ),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("setup", sorted(_NO_SIGNALS))
def test_without_a_usable_signal_timeouts_are_exact(lock_path: Path, setup: str) -> None:
    result = run_child_holding(
        f"""
        {_NO_SIGNALS[setup]}
        lock = ferrolock.FileLock(PATH)
        outcome, elapsed = timed(lock, timeout=0.5)
        report(outcome=outcome, elapsed=elapsed)
        """,
        lock_path,
    )
    assert_exact_timeout(result, 0.5)


_WAIT_FOR_RELEASE = """
{setup}
lock = ferrolock.FileLock(PATH)
print("waiting", flush=True)
outcome, elapsed = timed(lock, timeout={timeout})
report(outcome=outcome, since_release=time.time() - float(sys.stdin.readline()))
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("setup", sorted(_NO_SIGNALS))
@pytest.mark.parametrize("timeout", [-1, 30])
def test_without_a_usable_signal_a_waiter_wakes_when_the_lock_is_freed(
    lock_path: Path, setup: str, timeout: float
) -> None:
    body = _PRELUDE + _WAIT_FOR_RELEASE.format(setup=_NO_SIGNALS[setup], timeout=timeout)
    with held(lock_path) as fd:
        child = subprocess.Popen(
            [sys.executable, "-c", body, str(lock_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            assert child.stdin is not None
            assert child.stdout.readline().strip() == "waiting"
            wait_until_blocked(child.pid)
            child.stdin.write(f"{time.time()}\n")
            child.stdin.flush()
            fcntl.flock(fd, fcntl.LOCK_UN)
            out, err = child.communicate(timeout=START_DEADLINE)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert child.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["outcome"] == "acquired", result
    # The wake-up is the kernel's (not a poll): well under a poll interval even on a loaded machine.
    assert result["since_release"] < 1.0, result


_CTRL_C = """
{setup}
lock = ferrolock.FileLock(PATH)
print("waiting", flush=True)
try:
    lock.acquire()
except KeyboardInterrupt:
    report(outcome="interrupted", locked=lock.is_locked)
    sys.exit(0)
report(outcome="acquired")
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("setup", sorted(_NO_SIGNALS))
def test_without_a_usable_signal_ctrl_c_interrupts_a_wait_and_nothing_is_held(lock_path: Path, setup: str) -> None:
    body = _PRELUDE + _CTRL_C.format(setup=_NO_SIGNALS[setup])
    with held(lock_path) as fd:
        child = subprocess.Popen(
            [sys.executable, "-c", body, str(lock_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "waiting"
            wait_until_blocked(child.pid)
            sent = time.monotonic()
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=START_DEADLINE)
            took = time.monotonic() - sent
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == {"outcome": "interrupted", "locked": False}
        assert took < 1.0, f"Ctrl-C took {took:.3f} s"
        fcntl.flock(fd, fcntl.LOCK_UN)
    # Nothing of the child's is left holding the file.
    with ferrolock.FileLock(lock_path).acquire(timeout=START_DEADLINE):
        pass


_CANCEL = """
{setup}
lock = ferrolock.FileLock(PATH)
token = ferrolock.CancelToken()
ended = []

def wait():
    try:
        lock.acquire(cancel=token)
        ended.append("acquired")
    except ferrolock.Cancelled:
        ended.append("cancelled")

t = threading.Thread(target=wait)
t.start()
print("waiting", flush=True)
sys.stdin.readline()                      # the test saw the wait blocked in the kernel
start = time.monotonic()
token.cancel()
t.join(30)
report(outcome=ended, took=time.monotonic() - start, locked=lock.is_locked)
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("setup", sorted(_NO_SIGNALS))
def test_without_a_usable_signal_a_cancel_token_ends_a_wait(lock_path: Path, setup: str) -> None:
    body = _PRELUDE + _CANCEL.format(setup=_NO_SIGNALS[setup])
    with held(lock_path):
        child = subprocess.Popen(
            [sys.executable, "-c", body, str(lock_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            assert child.stdin is not None
            assert child.stdout.readline().strip() == "waiting"
            wait_until_blocked(child.pid)
            child.stdin.write("go\n")
            child.stdin.flush()
            out, err = child.communicate(timeout=START_DEADLINE)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert child.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["outcome"] == ["cancelled"], result
    assert result["took"] < 1.0, result
    assert result["locked"] is False


# --- choosing the mechanism ----------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("wake", ["thread", None])
def test_ferrolock_wake_chooses_the_mechanism(lock_path: Path, wake: str | None) -> None:
    result = run_child_holding(
        """
        lock = ferrolock.FileLock(PATH)
        outcome, elapsed = timed(lock, timeout=0.3)
        report(outcome=outcome, elapsed=elapsed, signals=ferrolock_signals())
        """,
        lock_path,
        env={"FERROLOCK_WAKE": wake} if wake else None,
    )
    assert_exact_timeout(result, 0.3)
    if wake == "thread":
        assert result["signals"] == [], "FERROLOCK_WAKE=thread still installed a signal handler"
    else:
        assert len(result["signals"]) == 1, "the default mechanism should use one real-time signal"
        assert result["signals"][0] <= signal.SIGRTMAX - 2


@pytest.mark.timeout(60)
def test_an_unknown_ferrolock_wake_value_is_reported_and_the_default_used(lock_path: Path) -> None:
    result = run_child_holding(
        """
        import logging
        logging.basicConfig(level=logging.WARNING)
        lock = ferrolock.FileLock(PATH)
        outcome, elapsed = timed(lock, timeout=0.3)
        report(outcome=outcome, elapsed=elapsed, signals=ferrolock_signals())
        """,
        lock_path,
        env={"FERROLOCK_WAKE": "threads"},
    )
    assert_exact_timeout(result, 0.3)
    assert "FERROLOCK_WAKE" in result["stderr"], result["stderr"]
    assert "'threads'" in result["stderr"], result["stderr"]
    assert len(result["signals"]) == 1


# --- helper threads are bounded --------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_abandoned_helpers_are_bounded_and_end_when_their_locks_are_freed(tmp_path: Path) -> None:
    """In thread mode every timed-out wait leaves a helper blocked in ``flock`` until the lock is free.
    Repeated timeouts on one lock reuse one helper; many locks are served by at most the stated number
    of helpers; once the locks are freed every helper ends and nothing stays locked."""
    paths = [tmp_path / f"l{i}.lock" for i in range(100)]
    body = """
    def tasks():
        return len(os.listdir("/proc/self/task"))

    def fds():
        return len(os.listdir("/proc/self/fd"))

    base_tasks, base_fds = tasks(), fds()
    paths = sys.argv[2:]
    one = ferrolock.FileLock(paths[0])
    outcomes = {timed(one, timeout=0.002)[0] for _ in range(200)}
    one_lock = (tasks() - base_tasks, fds() - base_fds)
    locks = [ferrolock.FileLock(p) for p in paths]
    timings = [timed(lock, timeout=0.01) for lock in locks]
    many_locks = (tasks() - base_tasks, fds() - base_fds)
    assert ferrolock_signals() == [], "FERROLOCK_WAKE=thread still installed a signal handler"
    print(json.dumps([sorted(outcomes), one_lock, [t[0] for t in timings], min(t[1] for t in timings), many_locks]),
          flush=True)
    sys.stdin.readline()                    # the test released every lock
    deadline = time.monotonic() + 30
    while tasks() > base_tasks and time.monotonic() < deadline:
        time.sleep(0.01)
    report(after=(tasks() - base_tasks, fds() - base_fds))
    """
    fds = []
    for p in paths:
        fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        fds.append(fd)
    env = dict(os.environ, FERROLOCK_WAKE="thread")
    child = subprocess.Popen(
        [sys.executable, "-c", _PRELUDE + textwrap.dedent(body), "-", *map(str, paths)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        assert child.stdin is not None
        line = child.stdout.readline()
        assert line, child.communicate(timeout=START_DEADLINE)
        outcomes, one_lock, many, fastest, many_locks = json.loads(line)
        for fd in fds:
            os.close(fd)
        child.stdin.write("released\n")
        child.stdin.flush()
        out, err = child.communicate(timeout=START_DEADLINE * 2)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert outcomes == ["timeout"]
    assert one_lock[0] <= 1, f"200 timeouts on one lock left {one_lock[0]} helper threads"
    assert one_lock[1] <= 1, f"200 timeouts on one lock left {one_lock[1]} descriptors"
    assert set(many) == {"timeout"}
    assert fastest >= 0.01
    assert many_locks[0] <= 32, f"100 locks left {many_locks[0]} helper threads"
    assert many_locks[1] <= 32, f"100 locks left {many_locks[1]} descriptors"
    after = json.loads(out.strip().splitlines()[-1])["after"]
    assert after[0] == 0, f"{after[0]} helper threads outlived their locks; {err}"
    assert after[1] <= 1, f"{after[1]} descriptors outlived their locks; {err}"
    # Every helper gave its lock back: each file is free.
    for p in paths:
        with ferrolock.FileLock(p).acquire(timeout=START_DEADLINE):
            pass
