"""``ferrolock.StateFile``: the locked read-modify-write API, across threads and real processes."""

from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path

import ferrolock
import pytest
import state_helpers as h
from ferrolock import StateFile


@pytest.fixture
def state(tmp_path: Path) -> StateFile:
    return StateFile(tmp_path / "state.json", backup_path=tmp_path / "state.json.bak")


def hidden(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.mark.timeout(10)
def test_paths_and_defaults(tmp_path: Path) -> None:
    sf = StateFile(tmp_path / "s.md")
    assert sf.path == str(tmp_path / "s.md")
    assert sf.lock_path == str(tmp_path / "s.md.lock")
    assert sf.backup_path is None
    assert sf.temp_path is None
    assert sf.timeout == -1.0
    sf.timeout = 2.5
    assert sf.timeout == 2.5
    custom = StateFile(tmp_path / "STATE.md", lock_path=tmp_path / "STATE.lock", temp_path=tmp_path / "STATE.tmp")
    assert custom.lock_path == str(tmp_path / "STATE.lock")
    assert custom.temp_path == str(tmp_path / "STATE.tmp")


@pytest.mark.timeout(10)
def test_edit_round_trip_with_backup(state: StateFile, tmp_path: Path) -> None:
    assert state.read() is None
    with state.edit() as draft:
        assert draft.data is None
        assert draft.text is None
        assert not draft.exists
        assert not draft.changed
        assert state.is_locked
        draft.text = "one"
        assert draft.changed
        assert draft.data == b"one"
    assert not state.is_locked
    assert state.read() == b"one"
    assert state.read_backup() is None

    with state.edit() as draft:
        assert draft.exists
        assert draft.text == "one"
        draft.data = b"two"
    assert state.read() == b"two"
    assert state.read_backup() == b"one"
    assert hidden(tmp_path) == []


@pytest.mark.timeout(10)
def test_an_unchanged_draft_writes_nothing(state: StateFile, tmp_path: Path) -> None:
    state.write("v1")
    inode = os.stat(state.path).st_ino
    with state.edit() as draft:
        assert draft.text == "v1"
    assert os.stat(state.path).st_ino == inode, "no rewrite when nothing was set"
    assert state.read_backup() is None


@pytest.mark.timeout(10)
def test_an_exception_in_the_block_writes_nothing_and_releases(state: StateFile) -> None:
    state.write(b"kept")

    def fail_midway() -> None:
        with state.edit() as draft:
            draft.text = "lost on purpose"
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        fail_midway()
    assert not state.is_locked
    assert state.read() == b"kept"
    with state.edit(timeout=0) as draft:  # free again
        assert draft.text == "kept"


@pytest.mark.timeout(10)
def test_setting_none_removes_the_file_into_the_backup(state: StateFile) -> None:
    state.write(b"last words")
    with state.edit() as draft:
        draft.data = None
    assert state.read() is None
    assert state.read_backup() == b"last words"
    assert not state.remove(), "nothing left to remove"


@pytest.mark.timeout(10)
def test_draft_rejects_other_types_and_invalid_utf8_is_reported(state: StateFile) -> None:
    state.write(b"\xff\xfe not utf-8")
    with state.edit() as draft:
        with pytest.raises(UnicodeDecodeError):
            _ = draft.text
        assert draft.data == b"\xff\xfe not utf-8"
        with pytest.raises(TypeError):
            draft.data = "text is not bytes"  # type: ignore[assignment]
        with pytest.raises(TypeError):
            draft.text = b"bytes are not text"  # type: ignore[assignment]
        draft.data = bytearray(b"from a bytearray")
    assert state.read() == b"from a bytearray"


@pytest.mark.timeout(10)
def test_a_nested_edit_on_the_same_thread_is_refused(state: StateFile) -> None:
    with state.edit() as outer:
        with pytest.raises(RuntimeError, match="already editing"), state.edit():
            pass
        outer.text = "outer"
    assert state.read() == b"outer"
    with state.edit() as draft:  # the refusal left nothing behind
        draft.text = "again"
    assert state.read() == b"again"


@pytest.mark.timeout(10)
def test_write_and_read_inside_locked_re_enter(state: StateFile) -> None:
    with state.locked(timeout=0) as sf:
        assert sf is state
        assert state.is_locked
        state.write("inside")
        assert state.read() == b"inside"
        with state.edit(timeout=0) as draft:
            draft.text = "edited inside"
    assert not state.is_locked
    assert state.read() == b"edited inside"


@pytest.mark.timeout(10)
def test_set_aside_keeps_the_good_backup(state: StateFile, tmp_path: Path) -> None:
    state.write(b"good")
    state.write(b"garbage")
    assert state.set_aside(tmp_path / "state.json.corrupt")
    assert (tmp_path / "state.json.corrupt").read_bytes() == b"garbage"
    state.write(b"fresh")
    assert state.read_backup() == b"good"


@pytest.mark.timeout(10)
def test_bad_paths_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ferrolock.InvalidName):
        StateFile(tmp_path / "s", lock_path=tmp_path / "s")
    with pytest.raises(ferrolock.InvalidName):
        StateFile(tmp_path / "s", backup_path=tmp_path / "s")
    (tmp_path / "dir").mkdir()
    sf = StateFile(tmp_path / "dir")
    with pytest.raises(IsADirectoryError):
        sf.read()
    with pytest.raises(OSError):  # noqa: PT011 - the errno depends on the step that refuses
        sf.write(b"x")
    assert (tmp_path / "dir").is_dir()
    assert not sf.is_locked


@pytest.mark.timeout(30)
def test_a_legacy_flock_holder_excludes_writers_until_it_releases(state: StateFile) -> None:
    ready, release = h.SPAWN.Event(), h.SPAWN.Event()
    holder = h.SPAWN.Process(target=h.hold_flock_until, args=(state.lock_path, ready, release))
    holder.start()
    try:
        assert ready.wait(20)
        started = time.monotonic()
        with pytest.raises(ferrolock.Timeout):
            state.write(b"x", timeout=0.2)
        assert time.monotonic() - started >= 0.2
        with pytest.raises(ferrolock.Timeout), state.edit(timeout=0):
            pass
        assert not state.is_locked
        threading.Timer(0.1, release.set).start()
        with state.edit(timeout=20) as draft:  # wakes when the holder lets go
            draft.text = "after the holder"
    finally:
        release.set()
        holder.join(20)
    assert state.read() == b"after the holder"


@pytest.mark.timeout(30)
def test_threads_lose_no_update(state: StateFile) -> None:
    errors: queue.Queue[BaseException] = queue.Queue()

    def work() -> None:
        try:
            for _ in range(25):
                with state.edit(timeout=20) as draft:
                    draft.text = str(int(draft.text or "0") + 1)
        except BaseException as exc:  # reported to the main thread
            errors.put(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(25)
    assert errors.empty(), errors.get()
    assert state.read() == b"150"


@pytest.mark.timeout(90)
def test_spawned_processes_lose_no_update(tmp_path: Path) -> None:
    path = str(tmp_path / "counter")
    codes = h.run_all(h.increment, [(path, 40)] * 5)
    assert codes == [0] * 5
    assert Path(path).read_text() == "200"
    assert Path(path + ".bak").read_text() == "199"
    assert hidden(tmp_path) == []


@pytest.mark.timeout(90)
def test_unlocked_readers_never_see_a_torn_file(tmp_path: Path) -> None:
    """Writers replace a 256 KiB self-checking file as fast as they can while readers read it with no
    lock at all; every read must be one complete version."""
    path = str(tmp_path / "big.state")
    StateFile(path).write(h.versioned_payload(0, 0, 1 << 18))
    started, stop = h.SPAWN.Event(), h.SPAWN.Event()
    results = h.SPAWN.Queue()
    readers = [h.SPAWN.Process(target=h.read_until, args=(path, stop, results)) for _ in range(2)]
    for r in readers:
        r.start()
    try:
        writers = [h.SPAWN.Process(target=h.write_versions, args=(path, w, 30, 1 << 18, started)) for w in range(3)]
        for w in writers:
            w.start()
        started.set()
        for w in writers:
            w.join(h.JOIN_DEADLINE)
            assert w.exitcode == 0
    finally:
        stop.set()
    outcomes = [results.get(timeout=h.JOIN_DEADLINE) for _ in readers]
    for r in readers:
        r.join(h.JOIN_DEADLINE)
    assert sum(reads for reads, _ in outcomes) > 0
    assert [torn for _, torn in outcomes] == [0, 0]
    assert h.payload_is_whole(Path(path).read_bytes())
