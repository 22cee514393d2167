"""Bad environments, part 4: every file format cut short at every byte, and fixed garbage, through the
properties of ``fuzz_properties`` (a crash of a writer that did not fsync, a full disk under a legacy
writer, a copy interrupted by hand): STATE.md, STATE.backup, holder records, scope-claim records and the
todo2 state. Each: a clear error or a sensible result, nothing changed by a refused write, the last
good version kept.
"""

from __future__ import annotations

import json
import os
from datetime import datetime

import fuzz_properties as fp
import pytest
from ferrolock._state_md import TaskState, WorkflowState

pytestmark = pytest.mark.timeout(120)

STATE = (
    WorkflowState(
        workflow_id="wf-1",
        workflow_name="Release",
        current_wave=1,
        total_waves=2,
        tasks={
            "T-1": TaskState("T-1", "plan", "completed", 1, ["a.py", "b.py"], "abc1234"),
            "T-2": TaskState("T-2", "build", "failed", 1, error="boom"),
            "T-3": TaskState("T-3", "ship", "pending", 2),
        },
        started_at=datetime(2026, 11, 22, 4, 30),
        updated_at=datetime(2026, 11, 22, 4, 31),
        notes=["first"],
        metadata={"owner": "alice"},
    )
    .to_markdown()
    .encode()
)
HOLDER = b'{"pid":4121,"host":"build-3","since":"2026-11-22T04:30:00.123456Z","purpose":"rebase","version":1}\n'
CLAIM = (
    b'{"loop_name": "fix", "scope": ["/repo/src"], "pid": 4121, '
    b'"started_at": "2026-11-22T04:07:12.380965+00:00", "ferrolock": 1}'
)
TODO2 = json.dumps(
    {"todos": [{"id": "T-1", "name": "a"}, {"id": "T-2", "assignee": {"name": "bob"}}]}, indent=2
).encode()
GARBAGE = [b"", b"\n", b"\x00" * 64, b"\xff\xfe\xfd", b"null", b"[]", b"{}", b"{" * 10_000, os.urandom(512)]


def cuts(data: bytes) -> list[bytes]:
    return [data[:n] for n in range(len(data) + 1)]


def test_state_md_cut_anywhere_is_recovered_from_the_backup() -> None:
    for prefix in cuts(STATE):
        fp.check_state_files(prefix, STATE, "note")


def test_a_backup_cut_anywhere_never_replaces_a_corrupt_state_md_silently() -> None:
    for prefix in [*cuts(STATE), *GARBAGE]:
        fp.check_state_files(b"\x00garbage", prefix, "note")


def test_garbage_state_md_with_and_without_a_backup() -> None:
    for junk in GARBAGE:
        fp.check_state_files(junk, None, "note")
        fp.check_state_files(junk, STATE, "note")


def test_holder_records_cut_anywhere_or_garbage() -> None:
    for data in [*cuts(HOLDER), *GARBAGE, b"x" * 5_000_000]:
        fp.check_holder_bytes(data)


@pytest.mark.parametrize("nested", [False, True])
def test_claim_records_cut_anywhere_or_garbage(nested: bool) -> None:
    for data in [*cuts(CLAIM), *GARBAGE]:
        fp.check_claim_bytes(data, nested)


def test_todo2_state_cut_anywhere_or_garbage() -> None:
    for data in [*cuts(TODO2), *GARBAGE]:
        fp.check_todo2_state(data, "T-1")
