"""Task queues from a coordinator (``coord.tasks(queue)``) on both backends: one suite, run against each.
Cross-process behaviour uses real processes; failure tests of PostgreSQL alone are at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import ferrolock
import pytest
from pg import PgCluster
from process_helpers import SPAWN, START_DEADLINE, cleanup_processes
from task_workers import add_tasks, claim_and_hold, drain, wait_for_task

pytestmark = pytest.mark.timeout(180)

LEASE = 2.0


@pytest.fixture
def queue() -> str:
    return f"queue-{uuid.uuid4().hex[:12]}"


def claim_within(tasks: ferrolock.CoordTaskQueue, task: str, by: str, seconds: float) -> float:
    """Claims ``task`` as soon as it is free, within ``seconds``; returns how long it took."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if tasks.claim(task, by=by).claimed:
            return time.monotonic() - started
        time.sleep(0.01)
    raise AssertionError(f"{task} was not free within {seconds} s")


def test_add_claim_taken_missing_and_no_queue(coord_url: str, queue: str) -> None:
    coord = ferrolock.connect(coord_url)
    tasks = coord.tasks(queue)
    assert tasks.claim("a", by="x").outcome == "no_queue"
    assert tasks.release("a", by="x") == "no_queue"
    assert tasks.tasks() == []
    assert tasks.add("a", "b", "a") == 2
    assert tasks.add("b", "c") == 1
    first = tasks.claim("a", by="agent-1")
    assert first.claimed
    assert first.outcome == "claimed"
    assert first.task_id == "a"
    other = coord.tasks(queue)
    taken = other.claim("a", by="agent-2")
    assert taken.outcome == "taken"
    assert not taken
    assert taken.owner is not None
    assert taken.owner["by"] == "agent-1"
    assert taken.owner["pid"] == os.getpid()
    assert other.claim("zz", by="agent-2").outcome == "missing"
    owner = other.owner("a")
    assert owner is not None
    assert owner["by"] == "agent-1"
    assert [task for task, _ in other.tasks()] == ["a", "b", "c"]
    assert other.owner("b") is None
    assert tasks.remove("a", "zz") == 1
    assert [task for task, _ in other.tasks()] == ["b", "c"]


def test_hostile_task_ids_are_refused_on_every_backend(coord_url: str, queue: str) -> None:
    tasks = ferrolock.connect(coord_url).tasks(queue)
    for bad in ["", ".", "..", "a/b", "nul\0", "tab\t", "x" * 201]:
        with pytest.raises(ferrolock.InvalidName):
            tasks.add("fine", bad)
        with pytest.raises(ferrolock.InvalidName):
            tasks.claim(bad, by="x")
    assert tasks.tasks() == [], "a refused add adds nothing"
    assert tasks.add("日本 語", "with space", "%2F") == 3
    assert tasks.claim("日本 語", by="x").claimed


def test_claim_next_follows_queue_order_and_skips_held_tasks(coord_url: str, queue: str) -> None:
    coord = ferrolock.connect(coord_url)
    tasks = coord.tasks(queue)
    assert tasks.claim_next(by="x", block=False) is None
    tasks.add("t1", "t2", "t3")
    tasks.add("t0")
    assert tasks.claim("t2", by="x").claimed
    other = coord.tasks(queue)
    assert [other.claim_next(by="y", block=False) for _ in range(4)] == ["t1", "t3", "t0", None]
    started = time.monotonic()
    assert other.claim_next(by="y", timeout=0.3) is None
    assert time.monotonic() - started >= 0.3, "a timeout must never end early"


def test_release_by_name_force_and_not_claimed(coord_url: str, queue: str) -> None:
    coord = ferrolock.connect(coord_url)
    tasks, other = coord.tasks(queue), coord.tasks(queue)
    tasks.add("a")
    assert tasks.release("a", by="x") == "not_claimed"
    assert tasks.claim("a", by="x").claimed
    assert other.release("a", by="y") == "claimed_by_other"
    assert other.owner("a") is not None
    assert other.release("a", by="y", force=True) == "released"
    assert other.owner("a") is None
    assert tasks.release("missing", by="x") == "missing"


def test_a_claim_ended_elsewhere_is_reported_lost_and_changes_nothing(coord_url: str, queue: str) -> None:
    coord = ferrolock.connect(coord_url)
    mine, admin, newcomer = coord.tasks(queue), coord.tasks(queue), coord.tasks(queue)
    mine.add("a")
    assert mine.claim("a", by="agent").claimed
    assert admin.release("a", by="admin", force=True) == "released"
    assert newcomer.claim("a", by="agent").claimed, "the same name, a new claim"
    assert mine.release("a", by="agent") == "lost"
    owner = admin.owner("a")
    assert owner is not None
    assert owner["by"] == "agent", "the newcomer still holds it"
    assert newcomer.release("a", by="agent") == "released"


def test_close_returns_the_handles_claims(coord_url: str, queue: str) -> None:
    coord = ferrolock.connect(coord_url)
    other = coord.tasks(queue)
    with coord.tasks(queue) as tasks:
        tasks.add("a", "b")
        assert tasks.claim_next(by="x", block=False) == "a"
        assert other.claim("a", by="y").outcome == "taken"
    assert other.owner("a") is None
    assert other.claim("a", by="y").claimed


def test_blocking_claim_next_is_woken_by_an_add_in_another_process(coord_url: str, queue: str) -> None:
    ferrolock.connect(coord_url).tasks(queue).add()  # the queue exists, empty
    ready = SPAWN.Event()
    mine, theirs = SPAWN.Pipe()
    waiter = SPAWN.Process(target=wait_for_task, args=(coord_url, queue, ready, theirs))
    with cleanup_processes(waiter):
        waiter.start()
        assert ready.wait(START_DEADLINE)
        assert not mine.poll(0.5), "the waiter must wait for a task"
        adder = SPAWN.Process(target=add_tasks, args=(coord_url, queue, "late"))
        with cleanup_processes(adder):
            adder.start()
            adder.join(START_DEADLINE)
            added = time.monotonic()
        # A missed wake-up would leave the waiter asleep for its whole 60 s.
        assert mine.poll(15), "the add did not wake the waiter"
        woke_after = time.monotonic() - added
        assert mine.recv() == "late"
        waiter.join(START_DEADLINE)
    assert woke_after < 15


def test_a_cancelled_claim_next_claims_nothing(coord_url: str, queue: str) -> None:
    tasks = ferrolock.connect(coord_url).tasks(queue)
    tasks.add()
    cancel = ferrolock._ferrolock.CoordCancel()
    outcome: list[object] = []

    def wait() -> None:
        try:
            outcome.append(tasks.claim_next(by="x", timeout=60, cancel=cancel))
        except ferrolock.Cancelled as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert not waiter.join(0.3)
    assert waiter.is_alive()
    cancel.cancel()
    waiter.join(START_DEADLINE)
    assert not waiter.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], ferrolock.Cancelled)
    tasks.add("after")
    assert tasks.owner("after") is None


def test_ctrl_c_interrupts_a_waiting_claim_next(coord_url: str, queue: str) -> None:
    ferrolock.connect(coord_url).tasks(queue).add()
    script = (
        "import ferrolock\n"
        f"tasks = ferrolock.connect({coord_url!r}).tasks({queue!r})\n"
        "try:\n"
        "    print('waiting', flush=True)\n"
        "    tasks.claim_next(by='child', timeout=60)\n"
        "    print('woke', flush=True)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', tasks.tasks(), flush=True)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "waiting"
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=START_DEADLINE)
        assert time.monotonic() - sent < 5.0
        assert out.strip() == "interrupted []"
    finally:
        child.kill()


def test_many_processes_drain_a_queue_and_no_task_is_claimed_twice(coord_url: str, queue: str) -> None:
    ids = [f"t{i:04d}" for i in range(300)]
    ferrolock.connect(coord_url).tasks(queue).add(*ids)
    start = SPAWN.Event()
    pipes = [SPAWN.Pipe() for _ in range(6)]
    workers = [
        SPAWN.Process(target=drain, args=(coord_url, queue, f"w{i}", start, theirs))
        for i, (_, theirs) in enumerate(pipes)
    ]
    with cleanup_processes(*workers):
        for w in workers:
            w.start()
        start.set()
        claimed: list[str] = []
        for mine, _ in pipes:
            assert mine.poll(120), "a worker did not finish"
            claimed.extend(mine.recv())
        for w in workers:
            w.join(START_DEADLINE)
    assert sorted(claimed) == ids, "every task claimed exactly once"
    assert ferrolock.connect(coord_url).tasks(queue).tasks() == []


def test_a_killed_claimants_tasks_return_to_the_queue(coord_url: str, queue: str) -> None:
    tasks = ferrolock.connect(coord_url).tasks(queue)
    tasks.add("a", "b")
    held, go = SPAWN.Event(), SPAWN.Event()
    mine, theirs = SPAWN.Pipe()
    claimant = SPAWN.Process(target=claim_and_hold, args=((coord_url, queue), "a", held, go, theirs))
    with cleanup_processes(claimant):
        claimant.start()
        assert held.wait(START_DEADLINE)
        assert mine.recv() == "claimed"
        assert tasks.claim("a", by="me").outcome == "taken"
        assert tasks.claim_next(by="me", block=False) == "b", "a live claim is skipped"
        os.kill(claimant.pid, signal.SIGKILL)  # type: ignore[arg-type]
        claimant.join(START_DEADLINE)
    took = claim_within(tasks, "a", "me", 10)
    assert took < 5, f"a dead claimant's task came back after {took:.2f} s"
    owner = tasks.owner("a")
    assert owner is not None
    assert owner["by"] == "me"


# --- PostgreSQL alone: a claimant paused past its lease, a server restart ---


def test_a_paused_claimant_loses_its_task_after_the_lease_and_its_release_says_lost(pg_url: str, queue: str) -> None:
    tasks = ferrolock.connect(pg_url).tasks(queue)
    tasks.add("a")
    held, go = SPAWN.Event(), SPAWN.Event()
    mine, theirs = SPAWN.Pipe()
    claimant = SPAWN.Process(target=claim_and_hold, args=((pg_url, queue), "a", held, go, theirs))
    with cleanup_processes(claimant):
        claimant.start()
        assert held.wait(START_DEADLINE)
        assert mine.recv() == "claimed"
        os.kill(claimant.pid, signal.SIGSTOP)  # type: ignore[arg-type]
        try:
            freed_after = claim_within(tasks, "a", "waiter", LEASE + 30)
            assert tasks.claim("a", by="waiter").outcome == "taken"
        finally:
            os.kill(claimant.pid, signal.SIGCONT)  # type: ignore[arg-type]
        go.set()
        assert mine.poll(START_DEADLINE)
        assert mine.recv() == "lost"
        claimant.join(START_DEADLINE)
    owner = tasks.owner("a")
    assert owner is not None
    assert owner["by"] == "waiter", "the resumed claimant's release changed nothing"
    assert LEASE / 2 < freed_after < LEASE + 2.0, f"freed after {freed_after:.2f} s"


def test_a_server_restart_frees_every_claim_and_the_queue_survives(own_cluster: PgCluster, queue: str) -> None:
    url = own_cluster.url(lease="2s")
    tasks = ferrolock.connect(url).tasks(queue)
    tasks.add("a", "b")
    assert tasks.claim("a", by="x").claimed
    own_cluster.restart("immediate")
    assert tasks.release("a", by="x") == "lost"
    other = ferrolock.connect(url).tasks(queue)
    assert [task for task, _ in other.tasks()] == ["a", "b"], "the tasks were committed durably"
    assert other.claim("a", by="y").claimed
    assert other.claim_next(by="y", block=False) == "b"
