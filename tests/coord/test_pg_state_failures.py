"""Coordinator state on PostgreSQL under failure: an editor paused past its lease, a server crash."""

from __future__ import annotations

import os
import signal
import time

import ferrolock
import pytest
from coord_state_helpers import edit_and_stall
from pg import PgCluster
from process_helpers import SPAWN, START_DEADLINE, cleanup_processes

pytestmark = pytest.mark.timeout(180)

LEASE = 2.0


def test_an_editor_paused_past_its_lease_cannot_write_over_the_next_one(pg_url: str, name: str) -> None:
    state = ferrolock.connect(pg_url).state(name)
    state.write(b"v1")
    inside, go = SPAWN.Event(), SPAWN.Event()
    mine, theirs = SPAWN.Pipe()
    editor = SPAWN.Process(target=edit_and_stall, args=(pg_url, name, "stale edit", inside, go, theirs))
    with cleanup_processes(editor):
        editor.start()
        assert inside.wait(START_DEADLINE)
        os.kill(editor.pid, signal.SIGSTOP)  # type: ignore[arg-type]
        paused = time.monotonic()
        try:
            with state.edit(timeout=LEASE + 30) as draft:
                freed_after = time.monotonic() - paused
                assert draft.data == b"v1"
                draft.data = b"v2 by the next editor"
        finally:
            os.kill(editor.pid, signal.SIGCONT)  # type: ignore[arg-type]
        go.set()
        assert mine.poll(START_DEADLINE)
        outcome = mine.recv()
        editor.join(START_DEADLINE)
    assert outcome == "LockLost", "the resumed editor's write must be refused"
    assert state.read() == b"v2 by the next editor"
    assert state.read_backup() == b"v1"
    assert freed_after < LEASE + 1.0, f"freed after {freed_after:.2f} s"


def test_a_written_state_survives_a_server_crash(own_cluster: PgCluster, name: str) -> None:
    url = own_cluster.url(lease="2s")
    state = ferrolock.connect(url).state(name)
    state.write(b"v1")
    state.write(b"v2")
    own_cluster.restart("immediate")
    again = ferrolock.connect(url).state(name)
    assert (again.read(), again.read_backup()) == (b"v2", b"v1")
    with again.edit(timeout=START_DEADLINE) as draft:
        draft.data = b"v3"
    assert again.read() == b"v3"
