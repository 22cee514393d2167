"""Kill storms on claims: todo2 task assignments (single and batch) on one ``state.todo2.json``, and
little-loops scope claims on overlapping paths, with workers SIGKILLed at random moments.

todo2: every assignment that returned success is in the file, with the winner's name; no task was won
twice; at most a kill's worth of assignments (a batch is three) landed unjournaled; the file and its
backup parse and no other task changed; every lock is free.

Scopes: two claims on overlapping paths were never held at once. Each worker journals the monotonic
time after its claim succeeded and before it released, and the driver notes the time just before each
kill, so every journaled interval lies inside the real one and any overlap is a real double claim.
Afterwards no dead claim remains, and the running directory holds nothing but its sentinel.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import ferrolock
from conftest import storm_seconds
from storm import StopFlag, journal, read_journal, run_storm

TASKS = 1500

# --- todo2 ---------------------------------------------------------------------------------------------


def _assign_worker(root: str, journal_path: str, stop: StopFlag, n: int) -> None:
    os.environ["PROJECT_ROOT"] = root
    from ferrolock.compat.todo2 import task_locking

    log = journal(journal_path)
    rng = random.Random(n)
    name = f"w{n}"
    while not stop.is_set():
        if rng.random() < 0.2:
            ids = [f"T-{rng.randrange(TASKS)}" for _ in range(3)]
            result = task_locking.atomic_batch_assign(ids, name, timeout=30)
            for task_id in result["assigned"]:
                log(f"{task_id} {name}")
        else:
            task_id = f"T-{rng.randrange(TASKS)}"
            ok, reason = task_locking.atomic_assign_task(task_id, name, timeout=30)
            if ok:
                log(f"{task_id} {name}")
            elif not reason or not reason.startswith("Task already assigned"):
                raise AssertionError(f"assignment of {task_id} failed: {reason}")


def test_todo2_assignment_kill_storm(tmp_path: Path, report: Callable[..., None]) -> None:
    state = tmp_path / ".todo2" / "state.todo2.json"
    state.parent.mkdir()
    todos = [{"id": f"T-{i}", "name": f"task {i}", "status": "Todo"} for i in range(TASKS)]
    state.write_text(json.dumps({"todos": todos, "lastModified": "2026-11-22T04:30:00Z"}, indent=2))
    journal_path = tmp_path / "journal"
    stop = StopFlag()
    storm = run_storm(
        _assign_worker, lambda n: (str(tmp_path), str(journal_path), stop, n), stop, seconds=storm_seconds()
    )

    won = [line.split() for line in read_journal(journal_path)]
    assert won, "no operation finished: the storm tested nothing"
    final = json.loads(state.read_text())
    assert final["lastModified"] == "2026-11-22T04:30:00Z"
    by_id = {t["id"]: t for t in final["todos"]}
    assert sorted(by_id) == sorted(t["id"] for t in todos), "a task was lost or duplicated"
    for task in final["todos"]:
        assert task["name"] == f"task {task['id'][2:]}", "an assignment changed another field"
    assert len({task_id for task_id, _ in won}) == len(won), "a task was won twice"
    for task_id, name in won:
        assert (by_id[task_id].get("assignee") or {}).get("name") == name, f"the assignment of {task_id} was lost"
    assigned = sum(1 for t in final["todos"] if t.get("assignee"))
    assert 0 <= assigned - len(won) <= 3 * storm.kills, "more unjournaled assignments than kills allow"
    json.loads(state.with_suffix(".json.bak").read_text())  # the backup parses
    for lock in [state.with_name("state.todo2.json.lock"), *(state.parent / "locks").glob("*.lock")]:
        assert ferrolock.probe(lock)[0] in ("free", "missing"), f"{lock.name} is held by a dead worker"
    report(
        "todo2 assignment kill storm (single and batch)",
        seconds=storm_seconds(),
        operations=len(won),
        kills=storm.kills,
        lost=0,
        duplicated=0,
    )


# --- scope claims --------------------------------------------------------------------------------------

PATHS = ["repo", "repo/a", "repo/a/x", "repo/b", "repo/b/y", "repo/c"]


def _overlap(p: str, q: str) -> bool:
    return p == q or p.startswith(q + "/") or q.startswith(p + "/")


def _claim_worker(base: str, journal_path: str, stop: StopFlag, n: int) -> None:
    manager = ferrolock.LockManager(Path(base) / ".loops")
    log = journal(journal_path)
    rng = random.Random(n)
    pid = os.getpid()
    while not stop.is_set():
        picked = rng.sample(PATHS, rng.randint(1, 2))
        scope = [str(Path(base) / p) for p in picked]
        if not manager.acquire(f"loop-{n}", scope):
            manager.wait_for_scope(scope, timeout=0.2)  # wakes when the conflicting claim ends
            continue
        log(f"A {pid} {time.monotonic()!r} {','.join(picked)}")
        time.sleep(rng.uniform(0, 0.005))  # the loop's work on its scope
        log(f"R {pid} {time.monotonic()!r}")
        manager.release(f"loop-{n}")


def test_scope_claim_kill_storm(tmp_path: Path, report: Callable[..., None]) -> None:
    journal_path = tmp_path / "journal"
    stop = StopFlag()
    kill_times: dict[int, float] = {}
    storm = run_storm(
        _claim_worker,
        lambda n: (str(tmp_path), str(journal_path), stop, n),
        stop,
        seconds=storm_seconds(),
        before_kill=lambda pid: kill_times.__setitem__(pid, time.monotonic()),
    )

    intervals: list[tuple[int, float, float, list[str]]] = []
    open_claims: dict[int, tuple[float, list[str]]] = {}
    for line in read_journal(journal_path):
        kind, pid, at, *rest = line.split()
        if kind == "A":
            open_claims[int(pid)] = (float(at), rest[0].split(","))
        else:
            start, paths = open_claims.pop(int(pid))
            intervals.append((int(pid), start, float(at), paths))
    for pid, (start, paths) in open_claims.items():
        assert pid in kill_times, f"worker {pid} never released its claim and was not killed"
        intervals.append((pid, start, kill_times[pid], paths))
    intervals.sort(key=lambda i: i[1])
    for i, (pid, _start, end, paths) in enumerate(intervals):
        for other_pid, other_start, _other_end, other_paths in intervals[i + 1 :]:
            if other_start >= end:
                break
            if other_pid != pid and any(_overlap(p, q) for p in paths for q in other_paths):
                raise AssertionError(f"overlapping claims held at once: {paths} by {pid}, {other_paths} by {other_pid}")

    manager = ferrolock.LockManager(tmp_path / ".loops")
    assert manager.list_locks() == [], "a dead worker's claim is still live"
    assert manager.acquire("after", [str(tmp_path / "repo")]), "the whole tree could not be claimed afterwards"
    manager.release("after")
    running = tmp_path / ".loops" / ".running"
    assert sorted(p.name for p in running.iterdir()) == [".acquire.lock"], "litter in the running directory"
    report(
        "scope-claim kill storm (overlapping paths)",
        seconds=storm_seconds(),
        operations=len(intervals),
        kills=storm.kills,
        double_claims=0,
        lost=0,
    )
