"""Properties of every reader of untrusted files, with the hypothesis strategies that attack them.

Shared by ``tests/test_fuzz_inputs.py`` (a fixed, quick budget run by ``make test``) and
``torture/test_fuzz_campaign.py`` (random inputs for as long as the torture run allows). Each ``check_*``
function takes one generated input, runs it through the public API in a scratch directory, and asserts
the contract: a clear error or a sensible result, never another exception, never a hang, never a
change to the files unless the operation succeeded, never a lost backup.

Why hypothesis (and not only proptest, which covers the pure Rust parsers in ``tests/core_props.rs``):
these paths cross the binding and the Python compat layers (``StateManager``'s recovery from the backup,
the todo2 JSON shaping, ``LockManager``'s judging of legacy records), which a Rust-only fuzzer never
runs; and hypothesis shrinks a failure to a minimal file that a regression test can quote.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import ferrolock
from ferrolock._ferrolock import _state_md_add_note
from ferrolock._state_md import TaskState, WorkflowState, decode_state, parse_workflow
from ferrolock.compat.blackbox5 import StateManager
from hypothesis import strategies as st

# --- strategies ---------------------------------------------------------------------------------------

#: Lines that mean something to the STATE.md parser, to splice into otherwise valid files.
MARKDOWN_LINES = [
    "# Workflow: Injected",
    "## ✅ Completed (1 tasks)",
    "## Completed",
    "## 🔄 In Progress (1 tasks)",
    "## 📋 Pending (2 tasks)",
    "## ❌ Failed (1 tasks)",
    "## Notes",
    "## Metadata",
    "### Wave 2",
    "### Wave x",
    "- [x] **T-9**: forged",
    "- [~] **T-9**: forged (IN PROGRESS)",
    "- [ ] **T-1**: duplicate",
    "- [z] **bad**: checkbox",
    "  - Error: injected",
    "  - Commit: `deadbeef`",
    "  - Files: a.py, b.py (+999999999999 more)",
    "**Status:** Wave 99/3",
    "**Workflow ID:** `other`",
    "**Started:** 9999-99-99 99:99:99",
    "- **key:** value",
    "",
    "\r",
    "\x00",
    "\ufeff",
]

one_line = st.text(st.characters(exclude_categories=("Cs", "Zl", "Zp", "Cc")), max_size=40)
any_text = st.text(max_size=400)


# Notes are stripped when read (the legacy format), so none starts or ends with a space here.
NOTE = r"[A-Za-z0-9]([A-Za-z0-9 .,]{0,20}[A-Za-z0-9.])?"


@st.composite
def valid_state(draw: st.DrawFn) -> WorkflowState:
    ids = draw(st.lists(st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,10}", fullmatch=True), unique=True, max_size=8))
    statuses = st.sampled_from(["completed", "in_progress", "pending", "failed"])
    tasks = {
        task_id: TaskState(
            task_id=task_id,
            description=draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 ,.()/_-]{0,30}[A-Za-z0-9.]", fullmatch=True)),
            status=draw(statuses),
            wave_id=draw(st.integers(1, 4)),
            commit_hash=draw(st.none() | st.from_regex(r"[0-9a-f]{7,12}", fullmatch=True)),
        )
        for task_id in ids
    }
    now = datetime(2026, 11, 22, 4, 30, 0)
    return WorkflowState(
        workflow_id=draw(st.from_regex(r"wf-[0-9]{1,4}", fullmatch=True)),
        workflow_name=draw(st.from_regex(r"[A-Za-z][A-Za-z0-9 ]{0,20}[A-Za-z0-9]", fullmatch=True)),
        current_wave=draw(st.integers(0, 4)),
        total_waves=4,
        tasks=tasks,
        started_at=now,
        updated_at=now,
        notes=draw(
            st.lists(st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9 .,]{0,20}[A-Za-z0-9.])?", fullmatch=True), max_size=3)
        ),
    )


@st.composite
def mangled_state_md(draw: st.DrawFn) -> bytes:
    """A valid STATE.md, then damaged: cut short, lines dropped, duplicated or replaced by parser
    keywords, bytes flipped, or encoded wrongly."""
    lines = draw(valid_state()).to_markdown().split("\n")
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(lines)))
        kind = draw(st.sampled_from(["insert", "drop", "dup", "replace"]))
        if kind == "insert" or not lines or at == len(lines):
            lines.insert(at, draw(st.sampled_from(MARKDOWN_LINES) | one_line))
        elif kind == "drop":
            del lines[at]
        elif kind == "dup":
            lines.insert(at, lines[at])
        else:
            lines[at] = draw(st.sampled_from(MARKDOWN_LINES))
    data = bytearray("\n".join(lines).encode())
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))) :]
    for _ in range(draw(st.integers(0, 2))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


state_md_bytes = mangled_state_md() | st.binary(max_size=300) | any_text.map(str.encode)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)
record_keys = st.sampled_from(["loop_name", "scope", "pid", "started_at", "singleton", "ferrolock", "other"])


@st.composite
def claim_record_bytes(draw: st.DrawFn) -> bytes:
    """Legacy-shaped claim records with values of every type, truncated JSON, or garbage."""
    kind = draw(st.sampled_from(["shaped", "truncated", "garbage"]))
    record = draw(st.dictionaries(record_keys, json_values | st.lists(st.text(max_size=12), max_size=3)))
    if draw(st.booleans()):
        record.setdefault("pid", draw(st.sampled_from([1, 2**31, -1, 0, "12", 4194304, 10**30])))
    text = json.dumps(record)
    if kind == "truncated":
        return text.encode()[: draw(st.integers(0, len(text)))]
    if kind == "garbage":
        return draw(st.binary(max_size=200))
    return text.encode()


@st.composite
def todo2_state_bytes(draw: st.DrawFn) -> bytes:
    """todo2 state files: well-formed, oddly typed (ids, assignees, todos of every JSON type), cut
    short, or not JSON at all."""
    kind = draw(st.sampled_from(["shaped", "odd", "truncated", "garbage"]))
    ids = st.sampled_from(["T-1", "T-2", "T-3"]) | json_scalars
    task = st.fixed_dictionaries(
        {"id": ids}, optional={"assignee": json_values, "name": st.text(max_size=10), "extra": json_values}
    )
    if kind == "odd":
        state = draw(json_values | st.fixed_dictionaries({"todos": json_values}))
    else:
        state = {"todos": draw(st.lists(task, max_size=5)), "lastModified": "2026-11-22T04:30:00Z"}
    text = json.dumps(state, indent=2)
    if kind == "truncated":
        return text.encode()[: draw(st.integers(0, len(text)))]
    if kind == "garbage":
        return draw(st.binary(max_size=200))
    return text.encode()


# --- properties ---------------------------------------------------------------------------------------


@contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ferrolock-fuzz-") as d:
        yield Path(d)


def check_state_text(text: str) -> None:
    """The STATE.md parser and its helpers accept any text."""
    state = StateManager().parse_state(text)
    assert isinstance(state, WorkflowState)
    decode_state(text.encode("utf-8", "surrogatepass"))
    try:
        added = _state_md_add_note(text, "note", "2026-11-22 04:30:00", "2026-11-22 04:30:00").data
    except ValueError as exc:  # `Wave 10**9/1`: a bar no file should hold
        added = None
        message = str(exc)
        assert "progress bar" in message
    assert added is None or "\n- note\n" in added.decode("utf-8")


def check_round_trip(state: WorkflowState) -> None:
    """What ``update`` writes reads back with every task, status, description and note (and commit:
    the format writes none for pending tasks, as the legacy one did)."""
    back = parse_workflow(state.to_markdown())
    assert sorted(back.tasks) == sorted(state.tasks)
    for task_id, task in state.tasks.items():
        got = back.tasks[task_id]
        assert (got.status, got.description) == (task.status, task.description)
        assert got.commit_hash == (None if task.status == "pending" else task.commit_hash)
    assert back.notes == state.notes


def check_fields_cannot_forge(state: WorkflowState, field: str, where: int) -> None:
    """Whatever text lands in a description, a note, an error or a metadata value (an agent's prompt,
    Markdown, line breaks of every kind), the file reads back with the same tasks and statuses, the
    same number of notes and the same metadata keys."""
    tasks = list(state.tasks.values())
    if tasks:
        task = tasks[where % len(tasks)]
        if where % 3 == 0:
            task.description = field
        elif where % 3 == 1 and task.status == "failed":
            task.error = field
        else:
            task.commit_hash = field
    state.notes.append(field if field.strip() else "blank")  # (a blank note was never readable back)
    state.metadata = {"owner": field, "team": "core"}
    back = parse_workflow(state.to_markdown())
    assert sorted(back.tasks) == sorted(state.tasks), "a field forged or hid a task"
    for task_id, task in state.tasks.items():
        assert back.tasks[task_id].status == task.status, f"a field changed the status of {task_id}"
    assert len(back.notes) == len(state.notes), "a field forged or hid a note"
    assert sorted(back.metadata) == ["owner", "team"], "a field forged metadata"


def check_state_files(state: bytes, backup: bytes | None, note: str) -> None:
    """``load_state`` and ``add_note`` over any STATE.md and STATE.backup: a state, or CorruptFileError
    with nothing changed; after a write, the new file is sound and the last good version is kept."""
    with scratch() as d:
        (d / "STATE.md").write_bytes(state)
        if backup is not None:
            (d / "STATE.backup").write_bytes(backup)
        manager = StateManager(d / "STATE.md", max_retries=1)
        with suppress(ferrolock.CorruptFileError):
            manager.load_state()
        try:
            manager.add_note(note)
        except ferrolock.CorruptFileError:
            assert (d / "STATE.md").read_bytes() == state, "a refused write changed STATE.md"
            assert _read(d / "STATE.backup") == backup, "a refused write changed STATE.backup"
            return
        new = (d / "STATE.md").read_bytes()
        text, reason = decode_state(new)
        assert text is not None, f"add_note wrote a corrupt STATE.md: {reason}"
        if decode_state(state)[0] is not None:
            assert _read(d / "STATE.backup") == state, "the previous good STATE.md is not the backup"
        else:
            assert (d / "STATE.corrupt").read_bytes() == state, "the corrupt STATE.md was not kept aside"
            assert _read(d / "STATE.backup") == backup, "a corrupt STATE.md replaced the backup"


#: How every holder record begins: a lock file holding anything else is somebody's data.
RECORD_PREFIX = b'{"pid":'


def check_holder_bytes(data: bytes) -> None:
    """Any lock-file content is at worst "no record". The next holder writes its record (and it is read
    correctly) into a file that holds nothing or what a holder writes (a record, torn or with an older
    tail); anything else is left exactly as it was."""
    with scratch() as d:
        path = d / "a.lock"
        path.write_bytes(data)
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            state, record = ferrolock.probe(path)
            assert state == "held"
            if record is not None:
                assert isinstance(record["pid"], int)
                assert isinstance(record["host"], str)
        finally:
            os.close(fd)
        recordable = len(data) <= 4096 and (not data or RECORD_PREFIX.startswith(data[:7]))
        with ferrolock.FileLock(path, timeout=0, purpose="fuzz") as lock:
            record = lock.holder()
            if recordable:
                assert record is not None
                assert (record["pid"], record["purpose"]) == (os.getpid(), "fuzz")
            else:
                assert record is None
                assert path.read_bytes() == data, "a holder record overwrote somebody's data"


def check_claim_bytes(data: bytes, nested: bool) -> None:
    """Any file among the claim records: scanning never fails, a claim and the conflict check agree,
    and a record that may be a live legacy claim is never deleted."""
    with scratch() as d:
        running = d / ".loops" / ".running"
        other = running / ("group/other.lock" if nested else "other.lock")
        other.parent.mkdir(parents=True)
        other.write_bytes(data)
        manager = ferrolock.LockManager(d / ".loops")
        scope = [str(d / "src")]
        listed = manager.list_locks()
        conflict = manager.find_conflict(scope)
        claimed = manager.acquire("me", scope)
        assert claimed == (conflict is None)
        if claimed:
            manager.release("me")
        if any(lock.pid != os.getpid() for lock in listed):
            assert other.exists(), "a record judged live was deleted"


def check_todo2_state(data: bytes, task_id: str) -> None:
    """Every todo2 call over any state file: its documented result shape, never an exception, the
    file untouched unless something was assigned, and then valid JSON with only that change."""
    from ferrolock.compat.todo2 import task_locking

    with scratch() as d:
        state = d / ".todo2" / "state.todo2.json"
        state.parent.mkdir()
        state.write_bytes(data)
        saved = os.environ.get("PROJECT_ROOT")
        os.environ["PROJECT_ROOT"] = str(d)
        try:
            ok, reason = task_locking.atomic_assign_task(task_id, "fuzzer", timeout=0)
            _check_todo2_write(state, data, [task_id] if ok else [])
            assert ok or isinstance(reason, str)
            data = state.read_bytes()
            result = task_locking.atomic_check_and_assign(task_id, "second", timeout=0)
            assert set(result) >= {"success", "assigned", "reason"}
            _check_todo2_write(state, data, [task_id] if result["assigned"] else [])
            data = state.read_bytes()
            batch = task_locking.atomic_batch_assign(["T-1", "T-2", "T-3"], "batch", timeout=0)
            assert batch["total"] == 3
            assert len(batch["assigned"]) + len(batch["failed"]) == 3
            _check_todo2_write(state, data, batch["assigned"])
        finally:
            if saved is None:
                del os.environ["PROJECT_ROOT"]
            else:
                os.environ["PROJECT_ROOT"] = saved


def _check_todo2_write(state: Path, before: bytes, assigned: list[str]) -> None:
    after = state.read_bytes()
    if not assigned:
        assert after == before, "a call that assigned nothing changed the state file"
        return
    old, new = json.loads(before), json.loads(after)
    assert state.with_suffix(".json.bak").read_bytes() == before, "the backup is not the previous version"
    assert {k: v for k, v in new.items() if k != "todos"} == {k: v for k, v in old.items() if k != "todos"}
    for was, now in zip(old["todos"], new["todos"], strict=True):
        if isinstance(was, dict) and was.get("id") in assigned:
            assert _without_assignment(now) == _without_assignment(was), "an assignment changed other fields"
        else:
            assert now == was, "a task that was not assigned changed"


def _without_assignment(task: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in task.items() if k not in ("assignee", "lastModified")}


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None
