"""One test per weakness of little-loops' LockManager that ferrolock fixes. Each docstring says what
the legacy code did; each test fails on it (run with ``FERROLOCK_SCOPE_IMPL=<path to the legacy
concurrency.py>`` to see). Cross-process behaviour uses real processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from process_helpers import cleanup_processes
from scope_helpers import BOUND, claim_cycles, hold_claim, impl_spec, load_impl

ctx = multiprocessing.get_context("spawn")
DEAD_PID = 99_999_999  # above any pid_max: os.kill says ESRCH


@pytest.fixture
def mod() -> ModuleType:
    return load_impl(impl_spec())


@pytest.fixture
def loops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src" / "api").mkdir(parents=True)
    (tmp_path / "lib").mkdir()
    return tmp_path / ".loops"


class Holder:
    """A child process holding a claim until stopped."""

    def __init__(self, loops: Path, name: str, scope: list[str], **kw: Any) -> None:
        self.conn, child_end = ctx.Pipe()
        self.proc = ctx.Process(
            target=hold_claim,
            args=(impl_spec(), str(loops), name, scope, child_end),
            kwargs=kw,
        )

    def start(self) -> None:
        self.proc.start()
        assert self.conn.poll(BOUND)
        assert self.conn.recv() is True, "the holder could not claim"

    def stop(self) -> None:
        self.conn.close()


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    made: list[Holder] = []
    yield made
    for h in made:
        h.stop()
        h.proc.join(BOUND)
        if h.proc.is_alive():
            h.proc.kill()
            h.proc.join(BOUND)


def _hold(holders: list[Holder], loops: Path, name: str, scope: list[str], **kw: Any) -> Holder:
    h = Holder(loops, name, scope, **kw)
    holders.append(h)
    h.start()
    return h


@pytest.mark.timeout(60)
def test_stale_cleanup_never_deletes_a_live_claim(mod: ModuleType, loops: Path, holders: list[Holder]) -> None:
    """Legacy: `list_locks` read a dead-pid record, then unlinked the file outside the sentinel. A new
    run that re-claimed the name in between lost its live claim, and a conflicting loop could start."""
    record = loops / ".running" / "job.lock"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"loop_name": "job", "scope": ["/x"], "pid": DEAD_PID, "started_at": "t"}))
    racing: list[Holder] = []

    class Racing(mod.LockManager):  # type: ignore[name-defined,misc]
        def _process_alive(self, pid: int) -> bool:
            alive = bool(super()._process_alive(pid))
            if pid == DEAD_PID and not racing:
                # The window between the liveness check and the unlink: a new run claims "job" now.
                racing.append(_hold(holders, loops, "job", ["src"]))
            return alive

    Racing(loops).list_locks()
    assert racing, "the stale record was never judged"
    assert record.exists(), "the cleanup deleted the new run's live claim"
    assert json.loads(record.read_text())["pid"] == racing[0].proc.pid
    conflict = mod.LockManager(loops).find_conflict(["src/api"])
    assert conflict is not None
    assert conflict.loop_name == "job"


@pytest.mark.timeout(60)
def test_release_only_removes_a_claim_this_process_holds(mod: ModuleType, loops: Path, holders: list[Holder]) -> None:
    """Legacy: `release(name)` unlinked whatever file had the name, so any process ended any claim."""
    _hold(holders, loops, "job", ["src"])
    manager = mod.LockManager(loops)
    manager.release("job")
    assert (loops / ".running" / "job.lock").exists()
    assert not manager.acquire("other", ["src"])


@pytest.mark.timeout(60)
def test_same_record_name_cannot_overwrite_a_live_claim(mod: ModuleType, loops: Path, holders: list[Holder]) -> None:
    """Legacy: a second run with the same name and a disjoint scope rewrote the first run's record,
    leaving the first run's scope unprotected."""
    first = _hold(holders, loops, "job", ["src"])
    manager = mod.LockManager(loops)
    assert not manager.acquire("job", ["lib"])
    assert json.loads((loops / ".running" / "job.lock").read_text())["pid"] == first.proc.pid
    assert not manager.acquire("other", ["src/api"])


@pytest.mark.timeout(60)
def test_nested_names_are_seen_by_conflict_checks(mod: ModuleType, loops: Path, holders: list[Holder]) -> None:
    """Legacy: `acquire("group/loop")` wrote `.running/group/loop.lock`, but the checks globbed only
    the top level, so nested claims never conflicted with anything."""
    _hold(holders, loops, "group/loop", ["src"])
    manager = mod.LockManager(loops)
    conflict = manager.find_conflict(["src/api"])
    assert conflict is not None
    assert conflict.loop_name == "group/loop"
    assert not manager.acquire("other", ["src"])
    assert [lock.loop_name for lock in manager.list_locks()] == ["group/loop"]


@pytest.mark.timeout(120)
def test_readers_never_see_a_partial_record(mod: ModuleType, loops: Path) -> None:
    """Legacy: records were written in place (`open(path, "w")` truncates, then writes), so readers
    outside the sentinel (list_locks, wait_for_scope, `ll-loop status`) saw empty or partial files."""
    (loops / ".running").mkdir(parents=True)
    done = ctx.Event()
    writer = ctx.Process(
        target=claim_cycles, args=(impl_spec(), str(loops), "job", ["src"]), kwargs={"cycles": 3000, "done": done}
    )
    partial = reads = 0
    with cleanup_processes(writer):
        writer.start()
        deadline = time.monotonic() + 90
        while not done.is_set() and time.monotonic() < deadline:
            for path in (loops / ".running").glob("*.lock"):
                if path.name == ".acquire.lock":
                    continue
                try:
                    text = path.read_text()
                except FileNotFoundError:
                    continue
                reads += 1
                try:
                    json.loads(text)
                except json.JSONDecodeError:
                    partial += 1
        assert done.is_set()
    assert reads > 0
    assert partial == 0, f"{partial} of {reads} reads saw a partial record"


class _Signalling:
    """Makes a manager class signal an Event each time its conflict check reached a live conflict
    (it asks `_get_ancestry` then), so the test knows the waiter has looked before it releases."""

    @staticmethod
    def subclass(mod: ModuleType, seen: threading.Event) -> type:
        class Signalling(mod.LockManager):  # type: ignore[name-defined,misc]
            def _get_ancestry(self) -> set[int]:
                seen.set()
                return set()

        return Signalling


def _timed_wait(manager: Any, scope: list[str], timeout: float, out: list[tuple[bool, float]]) -> threading.Thread:
    def run() -> None:
        result = manager.wait_for_scope(scope, timeout=timeout)
        out.append((result, time.monotonic()))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.timeout(60)
@pytest.mark.parametrize("end", ["release", "sigkill"])
def test_wait_for_scope_wakes_within_milliseconds(
    mod: ModuleType, loops: Path, holders: list[Holder], end: str
) -> None:
    """Legacy: `wait_for_scope` re-checked once a second, so a waiter noticed a release or a crash up
    to a second late (here: almost exactly a second, as the release follows the waiter's check)."""
    holder = _hold(holders, loops, "job", ["src"])
    seen = threading.Event()
    manager = _Signalling.subclass(mod, seen)(loops)
    out: list[tuple[bool, float]] = []
    waiter = _timed_wait(manager, ["src/api"], 20, out)
    assert seen.wait(BOUND)
    ended = time.monotonic()
    if end == "release":
        holder.stop()
    else:
        os.kill(holder.proc.pid, signal.SIGKILL)
    waiter.join(BOUND)
    assert out
    assert out[0][0] is True
    latency = out[0][1] - ended
    assert latency < 0.5, f"woke {latency * 1000:.0f} ms after the claim ended"


@pytest.mark.timeout(60)
def test_a_dead_claim_is_not_kept_alive_by_pid_reuse(mod: ModuleType, loops: Path, holders: list[Holder]) -> None:
    """Legacy: liveness was `os.kill(pid, 0)`, so once a crashed claimant's pid belonged to another
    process, the dead claim blocked its scope until that process exited too."""
    unrelated = subprocess.Popen(["sleep", "60"])
    try:
        crashed = _hold(holders, loops, "job", ["src"], fake_pid=unrelated.pid)
        os.kill(crashed.proc.pid, signal.SIGKILL)
        crashed.proc.join(BOUND)
        assert json.loads((loops / ".running" / "job.lock").read_text())["pid"] == unrelated.pid
        assert mod.LockManager(loops).acquire("next", ["src"])
    finally:
        unrelated.kill()
        unrelated.wait(BOUND)


@pytest.mark.timeout(60)
def test_ancestry_is_not_stale_after_fork(mod: ModuleType, loops: Path) -> None:
    """Legacy: `_get_ancestry` was cached on the manager for its lifetime, so a forked child (or a
    long-lived manager) kept using an ancestry that was no longer its own."""
    manager = mod.LockManager(loops)
    assert os.getpid() not in manager._get_ancestry()
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.write(write_end, b"1" if os.getppid() in manager._get_ancestry() else b"0")
        os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 1)
    os.close(read_end)
    os.waitpid(pid, 0)
    assert answer == b"1"


@pytest.mark.timeout(60)
def test_a_forked_child_cannot_release_its_parents_claim(mod: ModuleType, loops: Path) -> None:
    """Legacy: the child's `release(name)` unlinked the parent's record (no ownership at all)."""
    manager = mod.LockManager(loops)
    assert manager.acquire("job", ["src"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        manager.release("job")
        os._exit(0)
    os.waitpid(pid, 0)
    assert (loops / ".running" / "job.lock").exists()
    assert not mod.LockManager(loops).acquire("other", ["src"])
    manager.release("job")
    assert not (loops / ".running" / "job.lock").exists()
