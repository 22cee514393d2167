"""ferrolock.LockManager beyond the legacy surface: mutual exclusion under load, waits (timeouts,
Ctrl-C), bad input."""

from __future__ import annotations

import errno
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import ferrolock
import pytest
from process_helpers import cleanup_processes
from scope_helpers import BOUND, DEFAULT_IMPL, hold_claim, wait_forever

ctx = multiprocessing.get_context("spawn")


@pytest.fixture
def loops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    return tmp_path / ".loops"


def increment_under_claims(loops_dir: str, counter: str, name: str, rounds: int) -> None:
    """Child: `rounds` times, wait for the scope, claim it, do a racy read-modify-write, release."""
    manager = ferrolock.LockManager(Path(loops_dir))
    done = 0
    deadline = time.monotonic() + 60
    while done < rounds and time.monotonic() < deadline:
        if not manager.wait_for_scope(["src"], timeout=10) or not manager.acquire(name, ["src/file"]):
            continue
        path = Path(counter)
        value = int(path.read_text())
        path.write_text(str(value + 1))
        manager.release(name)
        done += 1


@pytest.mark.timeout(120)
def test_claims_exclude_across_processes_with_no_lost_updates(loops: Path, tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    workers = [
        ctx.Process(target=increment_under_claims, args=(str(loops), str(counter), f"w{i}", 50)) for i in range(4)
    ]
    with cleanup_processes(*workers):
        for w in workers:
            w.start()
        for w in workers:
            w.join(100)
            assert w.exitcode == 0
    assert counter.read_text() == "200"
    assert ferrolock.LockManager(loops).list_locks() == []


@pytest.mark.timeout(60)
def test_threads_sharing_a_manager_exclude_each_other(loops: Path) -> None:
    manager = ferrolock.LockManager(loops)
    inside = 0
    worst = 0
    guard = threading.Lock()

    def work(i: int) -> None:
        nonlocal inside, worst
        for _ in range(30):
            while not manager.acquire(f"t{i}", ["src"]):
                assert manager.wait_for_scope(["src"], timeout=20)
            with guard:
                inside += 1
                worst = max(worst, inside)
            with guard:
                inside -= 1
            manager.release(f"t{i}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(BOUND)
        assert not t.is_alive()
    assert worst == 1


@pytest.mark.timeout(30)
def test_wait_timeout_is_never_early(loops: Path) -> None:
    manager = ferrolock.LockManager(loops)
    assert manager.acquire("holder", ["src"])
    started = time.monotonic()
    assert manager.wait_for_scope(["src"], timeout=0.3) is False
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 2.0


@pytest.mark.timeout(60)
def test_ctrl_c_interrupts_a_wait(loops: Path) -> None:
    # The holder is a sibling of the waiter: a parent's claim would be skipped as an ancestor's.
    conn, holder_end = ctx.Pipe()
    holder = ctx.Process(target=hold_claim, args=(DEFAULT_IMPL, str(loops), "holder", ["src"], holder_end))
    ready = ctx.Event()
    waiter = ctx.Process(target=wait_forever, args=(DEFAULT_IMPL, str(loops), ["src"], ready))
    with cleanup_processes(holder, waiter):
        holder.start()
        assert conn.poll(BOUND)
        assert conn.recv() is True
        waiter.start()
        assert ready.wait(BOUND)
        os.kill(waiter.pid, signal.SIGINT)
        waiter.join(BOUND)
        assert waiter.exitcode == 7, "the wait ended with KeyboardInterrupt"


@pytest.mark.parametrize("name", ["", "../escape", "/abs", "a//b", "a/../b", "x\0y"])
def test_hostile_record_names_are_refused(loops: Path, name: str) -> None:
    loop_name, instance_id = ("loop", name) if name else ("", None)
    with pytest.raises(ferrolock.InvalidName):
        ferrolock.LockManager(loops).acquire(loop_name, ["src"], instance_id=instance_id)
    assert not (loops.parent / "escape.lock").exists()


def test_a_symlink_at_a_record_path_is_not_followed(loops: Path, tmp_path: Path) -> None:
    """Legacy: `open(record, "w")` followed a planted symlink and overwrote its target."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (loops / ".running").mkdir(parents=True)
    (loops / ".running" / "job.lock").symlink_to(victim)
    manager = ferrolock.LockManager(loops)
    with pytest.raises(OSError, match="symbolic link") as err:
        manager.acquire("job", ["src"])
    assert err.value.errno == errno.ELOOP
    assert victim.read_text() == "precious"
    assert manager.find_conflict(["src"]) is None


def test_garbage_records_are_skipped(loops: Path) -> None:
    """Legacy: a record with a non-integer pid (or a JSON list) raised ValueError/TypeError out of
    `find_conflict`, so one bad file stopped every loop from starting."""
    running_dir = loops / ".running"
    running_dir.mkdir(parents=True)
    (running_dir / "a.lock").write_text(json.dumps({"loop_name": "a", "scope": ["/"], "pid": "x", "started_at": "t"}))
    (running_dir / "b.lock").write_text("[1, 2]")
    (running_dir / "c.lock").write_bytes(b"\xff\xfe")
    manager = ferrolock.LockManager(loops)
    assert manager.find_conflict(["src"]) is None
    assert manager.list_locks() == []
    assert manager.acquire("ok", ["src"])
    assert sorted(p.name for p in running_dir.iterdir()) == [".acquire.lock", "a.lock", "b.lock", "c.lock", "ok.lock"]


class _InterruptingHandler(logging.Handler):
    """Raises KeyboardInterrupt from inside a log call, as a Ctrl-C landing there would."""

    def emit(self, record: logging.LogRecord) -> None:
        if "not a claim record" in record.getMessage():
            raise KeyboardInterrupt


def test_ctrl_c_inside_a_log_call_leaves_no_claim(loops: Path) -> None:
    running_dir = loops / ".running"
    running_dir.mkdir(parents=True)
    (running_dir / "job.lock").write_text("not json")  # acquire replaces it, with a warning
    handler = _InterruptingHandler()
    logger = logging.getLogger("ferrolock.scope")
    logger.addHandler(handler)
    try:
        manager = ferrolock.LockManager(loops)
        with pytest.raises(KeyboardInterrupt):
            manager.acquire("job", ["src"])
    finally:
        logger.removeHandler(handler)
    assert not manager._dir().holds("job")
    assert manager.find_conflict(["src"]) is None
