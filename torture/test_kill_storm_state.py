"""Kill storms on durable state: ``StateFile`` read-modify-writes, and BlackBox5's ``StateManager``
(``add_note`` and ``update``) on one ``STATE.md``, with workers SIGKILLed at random moments.

Afterwards: every update that returned is in the file exactly once, and at most one more per kill (an
update that landed just before its writer died); the file and its backup parse, the backup is exactly
the previous version (or the current one, if a writer died between swapping in the backup and its
rename); unlocked readers never saw a torn file; the lock is free; and the next writer
sweeps whatever the killed writers left.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from multiprocessing.queues import Queue
from pathlib import Path

import ferrolock
from conftest import storm_seconds
from ferrolock._state_md import decode_state, parse_workflow, validate_markdown
from ferrolock.compat.blackbox5 import StateManager
from process_helpers import SPAWN
from storm import StopFlag, journal, leftovers, read_journal, run_storm

# --- StateFile: a JSON list that every writer extends by one -----------------------------------------


def _append_worker(path: str, journal_path: str, stop: StopFlag) -> None:
    state = ferrolock.StateFile(path, backup_path=path + ".backup")
    log = journal(journal_path)
    while not stop.is_set():
        with state.locked():
            entries = json.loads(state.read() or b"[]")
            entries.append(entries[-1] + 1 if entries else 1)
            state.write(json.dumps(entries), timeout=0)
            log(str(entries[-1]))  # under the lock: the journal's order is the lock's order


def _reader(path: str, stop: StopFlag, results: Queue[tuple[int, int]]) -> None:
    """Reads without any lock; every read must be a complete version."""
    state = ferrolock.StateFile(path)
    reads = torn = 0
    while not stop.is_set():
        data = state.read()
        reads += 1
        try:
            entries = json.loads(data or b"[]")
            torn += entries != list(range(1, len(entries) + 1))
        except ValueError:
            torn += 1
    results.put((reads, torn))


def test_state_file_kill_storm(tmp_path: Path, report: Callable[..., None]) -> None:
    path, journal_path = tmp_path / "state.json", tmp_path / "journal"
    stop = StopFlag()
    results: Queue[tuple[int, int]] = SPAWN.Queue()
    reader = SPAWN.Process(target=_reader, args=(str(path), stop, results))
    reader.start()
    storm = run_storm(
        _append_worker, lambda _n: (str(path), str(journal_path), stop), stop, seconds=storm_seconds(), extra=[reader]
    )
    reads, torn = results.get(timeout=10)

    done = [int(v) for v in read_journal(journal_path)]
    assert done, "no operation finished: the storm tested nothing"
    state = ferrolock.StateFile(path, backup_path=str(path) + ".backup")
    entries = json.loads(state.read() or b"[]")
    assert entries == list(range(1, len(entries) + 1)), "a lost or duplicated update in the file"
    assert len(done) == len(set(done)), "an update journaled twice: two writers at once"
    assert done == sorted(done), "journal order disagrees with lock order"
    assert set(done) <= set(entries), "an update that returned is missing from the file"
    unjournaled = len(entries) - len(done)
    assert 0 <= unjournaled <= storm.kills, f"{unjournaled} unjournaled updates for {storm.kills} kills"
    # A writer killed after swapping in the backup but before its rename leaves backup == current.
    backup = json.loads(state.read_backup() or b"[]")
    assert backup in (entries[:-1], entries), "the backup is neither the previous nor the current version"
    assert torn == 0, f"unlocked readers saw {torn} torn versions in {reads} reads"
    assert ferrolock.probe(state.lock_path)[0] == "free", "a dead writer's lock is still held"

    state.write(json.dumps([*entries, len(entries) + 1]), timeout=0)  # the next writer sweeps
    assert leftovers(tmp_path, {"state.json", "state.json.backup", "state.json.lock", "journal"}) == []
    report(
        "StateFile kill storm",
        seconds=storm_seconds(),
        operations=len(done),
        kills=storm.kills,
        unlocked_reads=reads,
        torn_reads=torn,
        lost=0,
        duplicated=0,
    )


# --- StateManager: add_note and update on one STATE.md ------------------------------------------------


def _notes_worker(state_md: str, journal_path: str, stop: StopFlag, n: int) -> None:
    # A retry budget far beyond any wait in a storm: a refusal would be a hang in disguise.
    manager = StateManager(Path(state_md), max_retries=12, retry_delay=0.05)
    log = journal(journal_path)
    i = 0
    while not stop.is_set():
        note = f"w{n}-{i}"
        if i % 4 == 3:
            manager.update(
                "wf-storm",
                "Storm",
                wave_id=1 + i % 3,
                total_waves=3,
                completed_tasks=[{"task_id": f"T-{n}-{i}", "description": "done", "wave_id": 1}],
                current_wave_tasks=[{"task_id": f"C-{n}", "description": "running"}],
                pending_waves=[[{"task_id": f"P-{n}", "description": "later"}]],
                notes=[note],
            )
        else:
            manager.add_note(note)
        log(note)
        i += 1


def _notes_of(data: bytes | None, what: str) -> list[str]:
    assert data is not None, f"{what} is missing"
    text, reason = decode_state(data)
    assert text is not None, f"{what} is corrupt: {reason}"
    assert validate_markdown(text) == [], f"{what} does not validate"
    return parse_workflow(text).notes


def test_state_manager_kill_storm(tmp_path: Path, report: Callable[..., None]) -> None:
    state_md, journal_path = tmp_path / "STATE.md", tmp_path / "journal"
    StateManager(state_md).initialize("wf-storm", "Storm", 3, [[{"task_id": "T-0", "description": "first"}]])
    stop = StopFlag()
    storm = run_storm(
        _notes_worker, lambda n: (str(state_md), str(journal_path), stop, n), stop, seconds=storm_seconds()
    )

    done = read_journal(journal_path)
    assert done, "no operation finished: the storm tested nothing"
    notes = _notes_of(state_md.read_bytes(), "STATE.md")
    assert len(notes) == len(set(notes)), "a note written twice"
    missing = set(done) - set(notes)
    assert not missing, f"{len(missing)} notes whose add_note/update returned were lost: {sorted(missing)[:5]}"
    unjournaled = len(notes) - len(done)
    assert 0 <= unjournaled <= storm.kills, f"{unjournaled} unjournaled notes for {storm.kills} kills"
    backup = _notes_of((tmp_path / "STATE.backup").read_bytes(), "STATE.backup")
    assert backup in (notes[:-1], notes), "STATE.backup is neither the previous nor the current version"
    assert not (tmp_path / "STATE.corrupt").exists(), "a writer found STATE.md corrupt"
    assert ferrolock.probe(tmp_path / "STATE.lock")[0] == "free", "a dead writer's lock is still held"

    StateManager(state_md).add_note("after the storm")  # the next writer replaces a stale STATE.tmp
    assert leftovers(tmp_path, {"STATE.md", "STATE.backup", "STATE.lock", "journal"}) == []
    assert _notes_of(state_md.read_bytes(), "STATE.md") == [*notes, "after the storm"]
    report(
        "StateManager kill storm (add_note, update)",
        seconds=storm_seconds(),
        operations=len(done),
        kills=storm.kills,
        lost=0,
        duplicated=0,
    )
