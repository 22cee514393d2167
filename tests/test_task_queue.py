"""``ferrolock.TaskQueue``: task claims across real processes, waiting for a task to appear, Ctrl-C, a
claimant's lock holder dying, bad files and hostile paths, and a format written in Python."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import ferrolock
import pytest
from process_helpers import SPAWN, START_DEADLINE, cleanup_processes, wait_until_blocked
from task_queue_helpers import drain, hold_task_lock, threads_in_poll, wait_for_task

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def queue(tmp_path: Path) -> ferrolock.TaskQueue:
    return ferrolock.TaskQueue(tmp_path / "tasks.json", timeout=30)


def _wait_until(predicate: Any, what: str, deadline: float = START_DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not predicate():
        assert time.monotonic() < end, what
        time.sleep(0.001)


def test_claims_report_what_they_found(queue: ferrolock.TaskQueue) -> None:
    assert queue.claim("a", by="x").outcome == "no_queue"
    assert queue.add("a", "b", "a") == 2
    first = queue.claim("a", by="x")
    assert first.claimed
    assert first
    assert first.outcome == "claimed"
    second = queue.claim("a", by="y")
    assert (second.outcome, bool(second)) == ("taken", False)
    assert second.owner["by"] == "x"
    assert second.owner["pid"] == os.getpid()
    assert queue.claim("zz", by="y").outcome == "missing"
    assert queue.owner("a")["by"] == "x"
    assert queue.owner("b") is None
    assert queue.release("a", by="y") == "claimed_by_other"
    assert queue.release("a", by="x") == "released"
    assert queue.release("a", by="x") == "not_claimed"
    assert queue.release("zz", by="x") == "missing"
    assert [task_id for task_id, _ in queue.tasks()] == ["a", "b"]
    assert queue.remove("a", "zz") == 1
    assert queue.tasks() == [("b", None)]


def test_a_batch_claims_the_free_tasks_and_reports_the_rest(queue: ferrolock.TaskQueue, tmp_path: Path) -> None:
    queue.add("a", "b", "c", "d")
    queue.claim("c", by="other")
    (tmp_path / "tasks.json.locks" / "task_d.lock").symlink_to(tmp_path / "victim")
    results = queue.claim_many(["a", "b", "c", "zz", "a", "d"], by="bot")
    assert [(r.task_id, r.outcome) for r in results] == [
        ("a", "claimed"),
        ("b", "claimed"),
        ("c", "taken"),
        ("zz", "missing"),
        ("a", "taken"),
        ("d", "failed"),
    ]
    assert "symbolic link" in (results[-1].reason or "")
    assert not (tmp_path / "victim").exists(), "nothing is created through a planted link"
    assert queue.owner("d") is None


def test_a_planted_symlink_at_a_task_lock_is_refused_and_its_target_untouched(
    queue: ferrolock.TaskQueue, tmp_path: Path
) -> None:
    queue.add("a")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    Path(queue.locks_dir).mkdir(exist_ok=True)
    Path(queue.task_lock_path("a")).symlink_to(victim)
    with pytest.raises(OSError, match="symbolic link"):
        queue.claim("a", by="x")
    assert victim.read_text() == "precious"
    assert queue.owner("a") is None


def test_hostile_ids_and_a_corrupt_file_are_clear_errors_and_change_nothing(
    queue: ferrolock.TaskQueue, tmp_path: Path
) -> None:
    queue.add("a")
    for bad in ("../escape", "a/b", "", "."):
        with pytest.raises(ferrolock.InvalidName):
            queue.claim(bad, by="x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tasks.json", "tasks.json.lock"]
    Path(queue.path).write_text('{"tasks": [{"id": 7}]}')
    with pytest.raises(ferrolock.CorruptFileError, match=r"task 0 has no string \"id\""):
        queue.claim("a", by="x")
    with pytest.raises(ferrolock.CorruptFileError):
        queue.add("b")
    assert Path(queue.path).read_text() == '{"tasks": [{"id": 7}]}'


def test_a_busy_lock_times_out_and_names_itself(queue: ferrolock.TaskQueue) -> None:
    queue.add("a")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # another thread is another lock owner, as another process would be
        with ferrolock.FileLock(queue.lock_path, purpose="someone else"):
            held.set()
            release.wait(START_DEADLINE)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(START_DEADLINE)
        started = time.monotonic()
        with pytest.raises(ferrolock.Timeout) as raised:
            queue.claim_many(["a"], by="x", timeout=0.2)
        assert time.monotonic() - started >= 0.2
        assert raised.value.lock_file == queue.lock_path
        assert raised.value.holder is not None
        assert raised.value.holder["purpose"] == "someone else"
    finally:
        release.set()
        holder.join(START_DEADLINE)
    assert queue.claim("a", by="x", timeout=0).claimed


@pytest.mark.timeout(240)
def test_processes_draining_a_queue_claim_every_task_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    queue = ferrolock.TaskQueue(path)
    ids = [f"T-{i}" for i in range(120)]
    queue.add(*ids)
    start, out = SPAWN.Event(), SPAWN.Queue()
    procs = [SPAWN.Process(target=drain, args=(str(path), f"w{n}", start, out)) for n in range(6)]
    with cleanup_processes(*procs):
        for p in procs:
            p.start()
        start.set()
        claimed = dict(out.get(timeout=180) for _ in procs)
        for p in procs:
            p.join(START_DEADLINE)
            assert p.exitcode == 0
    every = [task for tasks in claimed.values() for task in tasks]
    assert sorted(every) == sorted(ids), "each task claimed exactly once"
    owners = dict(queue.tasks())
    for name, tasks in claimed.items():
        assert all(owners[t]["by"] == name for t in tasks)
    json.loads(path.read_bytes())


@pytest.mark.timeout(120)
def test_a_waiter_sleeps_until_a_task_appears_and_wakes_at_once(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    queue = ferrolock.TaskQueue(path)
    queue.add()
    out = SPAWN.Queue()
    waiter = SPAWN.Process(target=wait_for_task, args=(str(path), "w", out))
    with cleanup_processes(waiter):
        waiter.start()
        _wait_until(lambda: waiter.pid is not None and threads_in_poll(waiter.pid) > 0, "the waiter never slept")
        added = time.monotonic()
        queue.add("new")
        got = out.get(timeout=START_DEADLINE)
        took = time.monotonic() - added
        waiter.join(START_DEADLINE)
    assert got == "new"
    assert queue.owner("new")["by"] == "w"
    assert took < 5.0, f"woken by the change, not a timeout ({took:.3f} s)"


def test_claim_next_times_out_exactly_and_never_early(queue: ferrolock.TaskQueue) -> None:
    queue.add("a")
    queue.claim("a", by="x")
    assert queue.claim_next(by="y", block=False) is None
    started = time.monotonic()
    assert queue.claim_next(by="y", timeout=0.2) is None
    took = time.monotonic() - started
    assert 0.2 <= took < 5.0


_CTRL_C_CHILD = textwrap.dedent(
    """
    import sys, ferrolock
    queue = ferrolock.TaskQueue(sys.argv[1])
    print("waiting", flush=True)
    try:
        queue.claim_next(by="child", timeout=60)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(42)
    """
)


@pytest.mark.timeout(120)
def test_ctrl_c_interrupts_a_waiting_claim_next_promptly_and_nothing_is_claimed(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    ferrolock.TaskQueue(path).add()
    child = subprocess.Popen([sys.executable, "-c", _CTRL_C_CHILD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "waiting"
        _wait_until(lambda: threads_in_poll(child.pid) > 0, "the child never slept")
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert (child.returncode, out.strip()) == (42, "interrupted")
    assert took < 2.0, f"Ctrl-C took {took:.3f} s"
    assert ferrolock.TaskQueue(path).tasks() == []


@pytest.mark.timeout(120)
def test_a_claim_waits_for_the_task_lock_and_gets_it_when_its_holder_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    queue = ferrolock.TaskQueue(path, timeout=60)
    queue.add("a")
    held = SPAWN.Event()
    holder = SPAWN.Process(target=hold_task_lock, args=(str(path), "a", held))
    with cleanup_processes(holder):
        holder.start()
        assert held.wait(START_DEADLINE)
        assert queue.claim_many(["a"], by="x")[0].outcome == "busy", "a batch does not wait for it"
        assert queue.claim_next(by="x", block=False) is None, "nor does claim_next"
        killer = SPAWN.Process(target=_kill_when_blocked, args=(os.getpid(), holder.pid))
        with cleanup_processes(killer):
            killer.start()
            result = queue.claim("a", by="x")
            killer.join(START_DEADLINE)
    assert result.claimed


def _kill_when_blocked(waiter: int, victim: int) -> None:
    wait_until_blocked(waiter)
    os.kill(victim, signal.SIGKILL)


class _Shelf:
    """A format written in Python: a JSON object of task id -> claimant name (or null)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def decode(self, data: bytes) -> dict[str, Any]:
        self.calls.append("decode")
        return json.loads(data)  # type: ignore[no-any-return]

    def encode(self, doc: dict[str, Any]) -> bytes:
        return json.dumps(doc, sort_keys=True).encode()

    def lookup(self, doc: dict[str, Any], task_id: str) -> tuple[str, Any]:
        if task_id not in doc:
            return ("missing", None)
        return ("claimed", doc[task_id]) if doc[task_id] else ("free", None)

    def unclaimed(self, doc: dict[str, Any]) -> list[str] | None:
        return [k for k, v in doc.items() if not v]

    def claim(self, doc: dict[str, Any], task_id: str, who: Any) -> None:
        doc[task_id] = who

    def release(self, doc: dict[str, Any], task_id: str, who: Any, force: bool) -> tuple[str, Any]:
        if doc.get(task_id) in (who, None) or force:
            doc[task_id] = None
            return ("released", None)
        return ("claimed_by_other", doc[task_id])

    def tasks(self, doc: dict[str, Any]) -> list[tuple[str, Any]]:
        return list(doc.items())


def test_a_format_written_in_python_plugs_in(tmp_path: Path) -> None:
    path = tmp_path / "shelf.json"
    path.write_text('{"a": null, "b": "someone"}')
    shelf = _Shelf()
    queue = ferrolock.TaskQueue(path, format=shelf)
    assert queue.claim("a", by={"agent": 1}).claimed
    taken = queue.claim("b", by={"agent": 1})
    assert (taken.outcome, taken.owner) == ("taken", "someone")
    assert json.loads(path.read_text()) == {"a": {"agent": 1}, "b": "someone"}
    assert queue.release("b", by="me") == "claimed_by_other"
    assert queue.release("b", by="me", force=True) == "released"
    assert queue.claim_next(by="next", block=False) == "b"
    assert queue.tasks() == [("a", {"agent": 1}), ("b", "next")]
    assert "decode" in shelf.calls
    with pytest.raises(TypeError, match="own format"):
        queue.add("c")


def test_a_format_s_own_exception_reaches_the_caller_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "shelf.json"
    path.write_text('{"a": null}')

    class Broken(_Shelf):
        def claim(self, doc: dict[str, Any], task_id: str, who: Any) -> None:
            raise LookupError("the format refuses")

    class Confused(_Shelf):
        def lookup(self, doc: dict[str, Any], task_id: str) -> tuple[str, Any]:
            return ("perhaps", None)

    with pytest.raises(LookupError, match="the format refuses"):
        ferrolock.TaskQueue(path, format=Broken()).claim("a", by="x")
    with pytest.raises(ValueError, match='unknown outcome "perhaps"'):
        ferrolock.TaskQueue(path, format=Confused()).claim("a", by="x")
    assert path.read_text() == '{"a": null}'
    assert ferrolock.TaskQueue(path, format=_Shelf()).claim("a", by="x", timeout=0).claimed, "no lock was left held"
