"""``coord.state(name)`` on both backends (``file://`` and ``postgresql://``): one suite, run against
each, with real processes."""

from __future__ import annotations

import json
import os
import signal
import time

import ferrolock
import pytest
from coord_state_helpers import edit_and_stall, hold_state_lock, increment, is_whole, signed, write_large_values
from process_helpers import SPAWN, START_DEADLINE, cleanup_processes

pytestmark = pytest.mark.timeout(180)


def test_edit_write_remove_keep_the_previous_version(coord_url: str, name: str) -> None:
    state = ferrolock.connect(coord_url).state(name)
    assert state.read() is None
    assert state.read_backup() is None
    with state.edit() as draft:
        assert draft.data is None
        assert not draft.exists
        draft.text = "one"
        assert draft.changed
    assert state.read() == b"one"
    state.write(b"two")
    assert (state.read(), state.read_backup()) == (b"two", b"one")
    with state.edit() as draft:
        assert draft.exists
        assert draft.text == "two"  # unchanged: nothing is written
    assert (state.read(), state.read_backup()) == (b"two", b"one")
    assert state.remove() is True
    assert (state.read(), state.read_backup()) == (None, b"two"), "a removal is as recoverable as a write"
    assert state.remove() is False
    state.write("três")
    assert state.read() == "três".encode()
    assert not state.lock.is_locked


def test_a_block_that_raises_writes_nothing_and_nested_edits_are_refused(coord_url: str, name: str) -> None:
    state = ferrolock.connect(coord_url).state(name)
    state.write(b"kept")

    def fail_inside_an_edit() -> None:
        with state.edit() as draft:
            draft.data = b"lost"
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        fail_inside_an_edit()
    assert state.read() == b"kept"
    with state.edit(), pytest.raises(RuntimeError, match="already editing"), state.edit():
        pass
    assert not state.lock.is_locked
    with pytest.raises(TypeError, match="bytes"):
        state.write(5)  # type: ignore[arg-type]


def test_processes_updating_one_value_lose_no_update(coord_url: str, name: str) -> None:
    workers, times = 6, 15
    start = SPAWN.Event()
    procs = [SPAWN.Process(target=increment, args=(coord_url, name, times, start)) for _ in range(workers)]
    with cleanup_processes(*procs):
        for p in procs:
            p.start()
        pids = sorted(p.pid for p in procs if p.pid is not None)
        start.set()
        for p in procs:
            p.join(120)
            assert p.exitcode == 0
    value = json.loads(ferrolock.connect(coord_url).state(name).read() or b"{}")
    assert value["n"] == workers * times
    assert sorted(set(value["by"])) == pids


def test_readers_never_see_a_torn_value(coord_url: str, name: str) -> None:
    state = ferrolock.connect(coord_url).state(name)
    state.write(signed(b"first"))
    started = SPAWN.Event()
    writer = SPAWN.Process(target=write_large_values, args=(coord_url, name, 256 * 1024, 40, started))
    seen: set[bytes] = set()
    with cleanup_processes(writer):
        writer.start()
        assert started.wait(START_DEADLINE)
        while writer.is_alive() or not seen:
            value = state.read()
            assert value is not None
            assert is_whole(value), "a reader saw a torn value"
            seen.add(value[:32])
        writer.join(START_DEADLINE)
        assert writer.exitcode == 0
    assert is_whole(state.read() or b"")
    assert is_whole(state.read_backup() or b"")


def test_a_busy_state_times_out_naming_its_holder(coord_url: str, name: str) -> None:
    held, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold_state_lock, args=(coord_url, name, held, release, "planner"))
    with cleanup_processes(holder):
        holder.start()
        assert held.wait(START_DEADLINE)
        state = ferrolock.connect(coord_url).state(name)
        with pytest.raises(ferrolock.Timeout) as info, state.edit(timeout=0.2):
            pass
        assert info.value.holder is not None
        assert info.value.holder["pid"] == holder.pid
        assert info.value.holder["purpose"] == "planner"
        assert info.value.lock_file == f"state:{name}"
        release.set()
        holder.join(START_DEADLINE)
        state.write(b"after", timeout=START_DEADLINE)
        assert state.read() == b"after"


def test_a_write_fenced_by_an_older_token_is_refused_and_changes_nothing(coord_url: str, name: str) -> None:
    coord = ferrolock.connect(coord_url)
    state = coord.state(name)
    leader = coord.lock(f"{name}-leader")
    with leader:
        old = leader.token
        state.write(b"by the old leader", fence=leader)
    with coord.lock(f"{name}-leader") as newer:
        assert newer.token > old
        with pytest.raises(ferrolock.StaleToken):
            state.write(b"late write", fence=(leader.name, old))
        with pytest.raises(ferrolock.StaleToken), state.edit(fence=(leader.name, old)) as draft:
            draft.text = "late edit"
        assert state.read() == b"by the old leader"
        state.write(b"by the new leader", fence=newer)
    assert (state.read(), state.read_backup()) == (b"by the new leader", b"by the old leader")
    assert not state.lock.is_locked


def test_a_killed_editor_leaves_the_last_value_and_frees_the_state(coord_url: str, name: str) -> None:
    state = ferrolock.connect(coord_url).state(name)
    state.write(b"before")
    inside, go = SPAWN.Event(), SPAWN.Event()
    _mine, theirs = SPAWN.Pipe()
    editor = SPAWN.Process(target=edit_and_stall, args=(coord_url, name, "never", inside, go, theirs))
    with cleanup_processes(editor):
        editor.start()
        assert inside.wait(START_DEADLINE)
        os.kill(editor.pid, signal.SIGKILL)  # type: ignore[arg-type]
        killed = time.monotonic()
        with state.edit(timeout=START_DEADLINE) as draft:
            freed_after = time.monotonic() - killed
            assert draft.data == b"before"
            draft.data = b"after"
    assert state.read() == b"after"
    assert freed_after < 1.0, f"the state was freed {freed_after:.2f} s after the kill"


@pytest.mark.parametrize("bad", ["", "a\nb", "x" * 200])
def test_bad_state_names_are_refused(coord_url: str, bad: str) -> None:
    coord = ferrolock.connect(coord_url)
    with pytest.raises(ferrolock.InvalidName):
        coord.state(bad)
