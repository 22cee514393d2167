"""``ferrolock.compat.blackbox5``: the legacy surface, files and bytes.

The byte-for-byte comparisons run against the legacy module when it is available (``FERROLOCK_MIRRORS``,
see ``legacy_blackbox5.py``); a hand-written golden file from the spec runs always, and so do the golden
files the legacy module wrote (``test_golden_render.py``).
"""

from __future__ import annotations

import dataclasses
import queue
import random
import threading
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

import ferrolock
import golden_cases
import legacy_blackbox5 as legacy
import pytest
from ferrolock.compat import blackbox5
from ferrolock.compat.blackbox5 import StateManager, TaskState, WorkflowState

# Every test here bounds its own time (a marker on a test overrides this default).
pytestmark = pytest.mark.timeout(60)

LEGACY = legacy.legacy_module()
needs_legacy = pytest.mark.skipif(LEGACY is None, reason="legacy module not available (set FERROLOCK_MIRRORS)")

T0 = datetime(2025, 1, 15, 10, 0, 0)
T1 = datetime(2025, 1, 15, 12, 30, 5)

GOLDEN = """# Workflow: Release 1.2

**Workflow ID:** `wf_42`
**Status:** Wave 2/4
**Started:** 2025-01-15 10:00:00
**Updated:** 2025-01-15 12:30:05

---

**Progress:** `██████████░░░░░░░░░░` 50%

## ✅ Completed (2 tasks)

### Wave 1
- [x] **plan**: Write the plan
  - Commit: `abc123`
  - Files: PLAN.md, a.py, b.py (+1 more)

### Wave 2
- [x] **code**: Write the code


## 🔄 In Progress (1 tasks)

- [~] **test**: Test it


## 📋 Pending (2 tasks)

### Wave 3
- [ ] **ship**: Ship it

### Wave 4
- [ ] **tell**: Tell everyone


## ❌ Failed (1 tasks)

- [ ] **lint**: Lint it
  - Error: 3 warnings


## Notes

- started late

## Metadata

- **owner:** ops
- **retries:** 2
"""


def golden_state() -> WorkflowState:
    tasks = {
        "plan": TaskState("plan", "Write the plan", "completed", 1, ["PLAN.md", "a.py", "b.py", "c.py"], "abc123"),
        "code": TaskState("code", "Write the code", "completed", 2),
        "test": TaskState("test", "Test it", "in_progress", 2),
        "ship": TaskState("ship", "Ship it", "pending", 3),
        "lint": TaskState("lint", "Lint it", "failed", 2, error="3 warnings"),
        "tell": TaskState("tell", "Tell everyone", "pending", 4),
    }
    return WorkflowState("wf_42", "Release 1.2", 2, 4, tasks, T0, T1, ["started late"], {"owner": "ops", "retries": 2})


def test_the_rendering_matches_the_format_in_the_spec() -> None:
    assert golden_state().to_markdown() == GOLDEN


def test_parsing_the_golden_file_gives_the_state_back() -> None:
    state = StateManager().parse_state(GOLDEN)
    expected = golden_state()
    assert state is not None
    assert (state.workflow_id, state.workflow_name, state.current_wave, state.total_waves) == (
        "wf_42",
        "Release 1.2",
        2,
        4,
    )
    assert (state.started_at, state.updated_at) == (T0, T1)
    assert state.notes == ["started late"]
    assert state.metadata == {"owner": "ops", "retries": "2"}, "metadata values come back as text"
    for task_id, want in expected.tasks.items():
        got = state.tasks[task_id]
        assert (got.description, got.status, got.commit_hash, got.error) == (
            want.description,
            want.status,
            want.commit_hash,
            want.error,
        )
    assert state.tasks["plan"].files_modified == ["PLAN.md", "a.py", "b.py", "..."]
    assert state.tasks["test"].wave_id == 2, "in-progress tasks get the current wave"
    assert state.to_markdown() == GOLDEN


def test_surface_and_defaults(tmp_path: Path) -> None:
    m = StateManager()
    assert m.state_path == Path("STATE.md")
    assert (m._lock_file, m._backup_path) == (Path("STATE.lock"), Path("STATE.backup"))
    assert (m._max_retries, m._retry_delay) == (3, 0.5)
    m = StateManager(tmp_path / "run" / "STATE.md", max_retries=5, retry_delay=0.1)
    assert m._lock_file == tmp_path / "run" / "STATE.lock"
    assert [f.name for f in dataclasses.fields(TaskState)] == [
        "task_id",
        "description",
        "status",
        "wave_id",
        "files_modified",
        "commit_hash",
        "error",
    ]
    assert [f.name for f in dataclasses.fields(WorkflowState)][-2:] == ["notes", "metadata"]
    assert ferrolock.StateManager is not StateManager
    assert issubclass(StateManager, ferrolock.StateManager)
    assert blackbox5.TaskState is ferrolock.TaskState


@pytest.mark.timeout(30)
def test_files_on_disk_are_the_legacy_ones(tmp_path: Path) -> None:
    m = StateManager(tmp_path / "STATE.md")
    m.initialize("wf", "Files", 1, [[{"task_id": "a"}]])
    m.add_note("n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["STATE.backup", "STATE.lock", "STATE.md"]
    with m._lock_state() as state_file:
        assert isinstance(state_file, ferrolock.StateFile)
        assert state_file.temp_path == str(tmp_path / "STATE.tmp")


@pytest.mark.timeout(30)
def test_lock_state_is_one_attempt_and_re_entrant(tmp_path: Path) -> None:
    a = StateManager(tmp_path / "STATE.md")
    b = StateManager(tmp_path / "STATE.md")
    with a._lock_state(), a._lock_state():  # re-entrant on one thread
        errors: queue.Queue[BaseException] = queue.Queue()

        def contend() -> None:
            try:
                with b._lock_state():
                    pass
            except RuntimeError as exc:
                errors.put(exc)

        t = threading.Thread(target=contend)
        t.start()
        t.join(10)
        assert "locked by another process" in str(errors.get_nowait())


@pytest.mark.timeout(30)
def test_two_managers_of_one_file_on_one_thread_fail_fast_with_the_legacy_message(tmp_path: Path) -> None:
    outer = StateManager(tmp_path / "STATE.md")
    inner = StateManager(tmp_path / "STATE.md", max_retries=3, retry_delay=5.0)
    inner.initialize("wf", "Nested", 1, [[{"task_id": "a"}]])
    with outer._lock_state(), pytest.raises(RuntimeError, match="locked by another process"):
        inner.add_note("would wait for its own thread")  # no 15 s budget spent: it cannot succeed
    inner.add_note("fine once the outer block is done")
    assert inner.load_state().notes == ["fine once the outer block is done"]


@pytest.mark.timeout(30)
def test_the_module_datetime_can_be_patched(tmp_path: Path) -> None:
    fixed = datetime(2030, 5, 6, 7, 8, 9)
    with mock.patch.object(blackbox5, "datetime", wraps=datetime) as patched:
        patched.now.return_value = fixed
        m = StateManager(tmp_path / "STATE.md")
        m.initialize("wf", "Clock", 1, [[{"task_id": "a"}]])
    assert "**Started:** 2030-05-06 07:08:09" in m.state_path.read_text(encoding="utf-8")


@pytest.mark.timeout(60)
def test_threads_adding_notes_lose_none(tmp_path: Path) -> None:
    m = StateManager(tmp_path / "STATE.md", max_retries=5, retry_delay=0.1)
    m.initialize("wf", "Threads", 1, [[{"task_id": "a"}]])
    threads = [threading.Thread(target=m.add_note, args=(f"note {i}",)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(m.load_state().notes) == sorted(f"note {i}" for i in range(12))


def test_validate_markdown_messages_in_order() -> None:
    m = StateManager()
    assert m.validate_markdown(GOLDEN) == []
    assert m.validate_markdown("- [z] x\n") == [
        "Missing '# Workflow:' header",
        "Missing 'Wave X/Y' status line",
        "Missing sections (## Completed, ## In Progress, etc.)",
        "Invalid checkbox format in 1 lines",
        "Missing Workflow ID",
        "Missing Started timestamp",
        "Missing Updated timestamp",
    ]


def test_parse_state_keeps_the_legacy_defaults_and_never_raises() -> None:
    m = StateManager()
    state = m.parse_state("Invalid content without proper headers")
    assert state is not None
    assert (state.workflow_name, state.workflow_id, state.current_wave, state.total_waves) == (
        "Unknown",
        "unknown",
        0,
        0,
    )
    assert m.parse_state(b"bytes are not text") is None  # type: ignore[arg-type]
    assert m.parse_state("# Minimal Workflow\n**Status:** Wave 1/2\n").workflow_name == "Minimal Workflow"


@needs_legacy
def test_rendering_is_byte_identical_to_the_legacy_module() -> None:
    rnd = random.Random(5)
    for _ in range(500):
        ours = golden_cases.random_state(rnd, blackbox5)
        theirs = LEGACY.WorkflowState(  # type: ignore[union-attr]
            **{
                **vars(ours),
                "tasks": {k: LEGACY.TaskState(**vars(t)) for k, t in ours.tasks.items()},  # type: ignore[union-attr]
            }
        )
        assert ours.to_markdown() == theirs.to_markdown()
        for task in ours.tasks.values():
            assert task.to_markdown() == LEGACY.TaskState(**vars(task)).to_markdown()  # type: ignore[union-attr]


@needs_legacy
@pytest.mark.timeout(60)
def test_update_and_initialize_write_the_legacy_bytes(tmp_path: Path) -> None:
    """Same calls, same files (the timestamps pinned: the legacy parser could not read them back)."""
    calls: list[tuple[str, dict[str, Any]]] = [
        ("initialize", {"workflow_id": "wf", "workflow_name": "Calls", "total_waves": 3,
                        "all_waves": [[{"task_id": "a", "description": "A"}, {"agent_id": "b", "task": "B"}],
                                      [{"prompt": "P" * 150}]], "metadata": {"v": 1}}),
        ("update", {"workflow_id": "wf", "workflow_name": "Calls", "wave_id": 1, "total_waves": 3,
                    "completed_tasks": [{"task_id": "a", "description": "A", "wave_id": 1,
                                         "result": {"files_created": ["x.py", "y.py"]}}],
                    "current_wave_tasks": [{"agent_id": "b", "task": "B", "result": {"success": True}},
                                           {"task_id": "c", "prompt": "C", "result": {"error": "E"}},
                                           {"task_id": "d", "description": "D", "result": {}}],
                    "pending_waves": [[{"description": "no id"}], [{"task_id": "z", "description": "Z"}]],
                    "commit_hash": "deadbeef", "notes": ["n1"], "metadata": {"v": 2}}),
    ]  # fmt: skip
    for method, kwargs in calls:
        outputs = []
        for module, directory in ((blackbox5, tmp_path / "ours"), (LEGACY, tmp_path / "legacy")):
            with mock.patch.object(module, "datetime", wraps=datetime) as patched:
                patched.now.return_value = T0
                getattr(module.StateManager(directory / "STATE.md"), method)(**kwargs)  # type: ignore[union-attr]
            outputs.append((directory / "STATE.md").read_text(encoding="utf-8"))
        assert outputs[0] == outputs[1], method
