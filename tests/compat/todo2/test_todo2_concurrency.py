"""Concurrent task claims across real processes (spawn), with an unlocked reader parsing the state file
throughout. Each test also runs against the legacy code when it is available; the legacy code lost
most of 12 concurrent assignments of different tasks, read torn JSON, and let a batch and single
assignments overwrite each other (racy, so those legacy runs are non-strict xfails)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

import pytest
from process_helpers import SPAWN, START_DEADLINE, cleanup_processes
from todo2_helpers import (
    LEGACY_MAY_FAIL,
    Impl,
    Where,
    assign_worker,
    assignees,
    batch_worker,
    padded_todos,
    read_until,
    write_state,
)

# Filler tasks: a state file of ~300 KB, so that each read-modify-write takes long enough to overlap
# with the others, as with a real todo2 file that has history.
PADDING = 600


@contextlib.contextmanager
def _unlocked_reader(state: Path) -> Iterator[Any]:
    """A process that parses ``state`` without any lock, over and over, until the block ends; yields
    its counters (reads, torn reads)."""
    stop = SPAWN.Event()
    reads, torn = SPAWN.Value("i", 0), SPAWN.Value("i", 0)
    reader = SPAWN.Process(target=read_until, args=(str(state), stop, reads, torn))
    with cleanup_processes(reader):
        reader.start()
        try:
            yield reads, torn
        finally:
            stop.set()
            reader.join(START_DEADLINE)


def _run(procs: list[SpawnProcess], start: Any, out: Any) -> dict[str, Any]:
    """Start ``procs``, release them at once, collect one ``(name, result)`` each."""
    results: dict[str, Any] = {}
    with cleanup_processes(*procs):
        for p in procs:
            p.start()
        start.set()
        for _ in procs:
            name, result = out.get(timeout=120)
            results[name] = result
        for p in procs:
            p.join(START_DEADLINE)
            assert p.exitcode == 0
    return results


def _where(impl: Impl, legacy_path: str | None, root: Path) -> Where:
    return Where(impl.name, legacy_path, str(root))


@pytest.mark.timeout(240)
@pytest.mark.parametrize("impl", ["ferrolock", LEGACY_MAY_FAIL], indirect=True)
def test_twelve_processes_assigning_twelve_tasks_lose_nothing(
    impl: Impl, legacy_path: str | None, tmp_path: Path
) -> None:
    """Legacy: each process held only its own task's lock while rewriting the whole file, so in most
    runs only 3-5 of the 12 assignments survived, some calls read torn JSON, and the file was sometimes
    left unparseable."""
    ids = [f"T-{i}" for i in range(12)]
    state = write_state(tmp_path, padded_todos(ids, PADDING))
    start, out = SPAWN.Event(), SPAWN.Queue()
    where = _where(impl, legacy_path, tmp_path)
    procs = [SPAWN.Process(target=assign_worker, args=(where, i, f"agent-{i}", start, out)) for i in ids]
    with _unlocked_reader(state) as (reads, torn):
        results = _run(procs, start, out)
    assert results == {f"agent-{i}": (True, None) for i in ids}
    assert assignees(tmp_path) == {i: f"agent-{i}" for i in ids}, "an assignment was lost"
    assert reads.value > 0
    assert torn.value == 0, "an unlocked reader saw a partial file"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("impl", ["ferrolock", "legacy"], indirect=True)
def test_twelve_processes_racing_for_one_task_exactly_one_wins(
    impl: Impl, legacy_path: str | None, tmp_path: Path
) -> None:
    state = write_state(tmp_path, padded_todos(["T-1"], PADDING))
    start, out = SPAWN.Event(), SPAWN.Queue()
    where = _where(impl, legacy_path, tmp_path)
    procs = [SPAWN.Process(target=assign_worker, args=(where, "T-1", f"agent-{n}", start, out)) for n in range(12)]
    with _unlocked_reader(state) as (_, torn):
        results = _run(procs, start, out)
    winners = [name for name, result in results.items() if result == (True, None)]
    assert len(winners) == 1
    assert assignees(tmp_path) == {"T-1": winners[0]}
    losers = {name: result for name, result in results.items() if name != winners[0]}
    assert losers == {name: (False, f"Task already assigned to agent:{winners[0]}") for name in losers}
    if impl.name == "ferrolock":
        assert torn.value == 0


@pytest.mark.timeout(240)
@pytest.mark.parametrize("impl", ["ferrolock", LEGACY_MAY_FAIL], indirect=True)
def test_a_batch_racing_single_assignments_never_double_assigns_or_loses_one(
    impl: Impl, legacy_path: str | None, tmp_path: Path
) -> None:
    """Legacy: the batch held only the state-file lock and single assignments only their task's lock,
    so both could assign the same task, and whichever wrote last erased the other's assignments."""
    ids = [f"T-{i}" for i in range(40)]
    state = write_state(tmp_path, padded_todos(ids, PADDING))
    start, out = SPAWN.Event(), SPAWN.Queue()
    where = _where(impl, legacy_path, tmp_path)
    singles = {f"single-{n}": ids[n * 5] for n in range(8)}  # T-0, T-5, ..., T-35: all in the batch too
    procs = [SPAWN.Process(target=batch_worker, args=(where, ids, "batch", start, out))]
    procs += [SPAWN.Process(target=assign_worker, args=(where, tid, name, start, out)) for name, tid in singles.items()]
    with _unlocked_reader(state) as (_, torn):
        results = _run(procs, start, out)

    final = assignees(tmp_path)
    batch = results.pop("batch")
    single_wins = {name: tid for name, tid in singles.items() if results[name] == (True, None)}
    # Every reported success is on disk, and nobody else's name is on those tasks.
    assert {tid: "batch" for tid in batch["assigned"]} | {tid: name for name, tid in single_wins.items()} == final
    assert len(batch["assigned"]) + len(single_wins) == len(ids), "every task was assigned exactly once"
    # Each loser was told who (or what) beat it.
    for name in singles:
        if name not in single_wins:
            assert results[name] == (False, "Task already assigned to agent:batch")
    for failure in batch["failed"]:
        winner = final[failure["task_id"]]
        assert failure["reason"] in (
            f"Already assigned to {winner}",
            f"Failed to acquire lock for task {failure['task_id']}",
        )
    assert torn.value == 0
    json.loads(state.read_bytes())


@pytest.mark.timeout(240)
def test_legacy_and_ferrolock_processes_racing_for_one_task_exclude_each_other(
    legacy_path: str | None, tmp_path: Path
) -> None:
    """A mixed fleet during a migration: both take the task's lock file with flock, so exactly one of
    six legacy and six ferrolock processes assigns the task."""
    if legacy_path is None:
        pytest.skip("legacy code not available (set FERROLOCK_MIRRORS to a folder of bare mirrors)")
    write_state(tmp_path, padded_todos(["T-1"], PADDING))
    start, out = SPAWN.Event(), SPAWN.Queue()
    procs = [
        SPAWN.Process(
            target=assign_worker, args=(Where(impl, legacy_path, str(tmp_path)), "T-1", f"{impl}-{n}", start, out)
        )
        for n in range(6)
        for impl in ("legacy", "ferrolock")
    ]
    results = _run(procs, start, out)
    winners = [name for name, result in results.items() if result == (True, None)]
    assert len(winners) == 1
    assert assignees(tmp_path) == {"T-1": winners[0]}
    assert (
        sorted(r for name, r in results.items() if name != winners[0])
        == [(False, f"Task already assigned to agent:{winners[0]}")] * 11
    )
