"""Workers for the coordinator state tests (importable by spawned children)."""

from __future__ import annotations

import hashlib
import json
import os
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event

from process_helpers import START_DEADLINE


def increment(url: str, name: str, times: int, start: Event) -> None:
    """Add 1 to the JSON counter in state ``name``, ``times`` times, each a locked edit."""
    import ferrolock

    state = ferrolock.connect(url).state(name)
    start.wait(START_DEADLINE)
    for _ in range(times):
        with state.edit(timeout=120) as draft:
            value = json.loads(draft.text or '{"n": 0, "by": []}')
            value["n"] += 1
            value["by"].append(os.getpid())
            draft.text = json.dumps(value)


def signed(payload: bytes) -> bytes:
    """``payload`` preceded by its SHA-256, so a reader can tell a torn value from a whole one."""
    return hashlib.sha256(payload).digest() + payload


def is_whole(value: bytes) -> bool:
    return hashlib.sha256(value[32:]).digest() == value[:32]


def write_large_values(url: str, name: str, size: int, times: int, started: Event) -> None:
    """Write ``times`` signed values of ``size`` bytes each, every one different."""
    import ferrolock

    state = ferrolock.connect(url).state(name)
    started.set()
    for i in range(times):
        state.write(signed(bytes([i % 251]) * size), timeout=60)


def hold_state_lock(url: str, name: str, held: Event, release: Event, purpose: str) -> None:
    import ferrolock

    state = ferrolock.connect(url).state(name, purpose=purpose)
    with state.lock:
        held.set()
        release.wait(START_DEADLINE * 4)


def edit_and_stall(url: str, name: str, text: str, inside: Event, go: Event, report: Connection) -> None:  # noqa: PLR0917
    """Enter an edit, report, wait for ``go`` (the parent pauses or kills us meanwhile), then set the
    draft to ``text`` and leave the block; report what happened."""
    import ferrolock

    state = ferrolock.connect(url).state(name)
    try:
        with state.edit(timeout=30) as draft:
            inside.set()
            go.wait(START_DEADLINE * 4)
            draft.text = text
        report.send("written")
    except ferrolock.LockLost as exc:
        report.send(type(exc).__name__)
