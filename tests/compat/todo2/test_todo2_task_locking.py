"""``ferrolock.compat.todo2.task_locking`` in one process: the legacy results, messages and bytes on
disk (checked against the legacy code itself when it is available), and each fixed weakness (those
tests also run against the legacy code, where they must fail)."""

from __future__ import annotations

import fcntl
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from ferrolock import _ferrolock
from ferrolock.compat.todo2 import task_locking
from ferrolock.compat.todo2.file_lock import try_lock_task
from process_helpers import START_DEADLINE, wait_until_blocked
from todo2_helpers import LEGACY_FAILS, Impl, load_impl, load_state, task, write_state

STATE = Path(".todo2") / "state.todo2.json"
BACKUP = Path(".todo2") / "state.todo2.json.bak"
STATE_LOCK = Path(".todo2") / "state.todo2.json.lock"
LOCKS = Path(".todo2") / "locks"


def _hold(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _task(root: Path, task_id: str) -> dict[str, Any]:
    return next(t for t in load_state(root)["todos"] if t["id"] == task_id)


# --- the legacy surface ----------------------------------------------------------------------------

EXPECTED_SIGNATURES = {
    "atomic_assign_task": (
        "(task_id, assignee_name, assignee_type='agent', hostname=None, assigned_by='auto', timeout=5.0)"
    ),
    "atomic_check_and_assign": "(task_id, assignee_name, assignee_type='agent', hostname=None, timeout=5.0)",
    "atomic_batch_assign": "(task_ids, assignee_name, assignee_type='agent', hostname=None, timeout=10.0)",
    "find_project_root": "(start_path=None)",
    "task_lock": "(task_id=None, timeout=10.0)",
    "state_file_lock": "(timeout=10.0)",
}


def _unannotated(module: object, name: str) -> str:
    sig = inspect.signature(getattr(module, name))
    return str(inspect.Signature([p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]))


@pytest.mark.parametrize("name", sorted(EXPECTED_SIGNATURES))
def test_signatures_match_the_legacy_module(name: str, legacy_path: str | None) -> None:
    assert _unannotated(task_locking, name) == EXPECTED_SIGNATURES[name]
    if legacy_path is not None:
        assert _unannotated(load_impl("legacy", legacy_path).task_locking, name) == EXPECTED_SIGNATURES[name]


class _FixedClock(datetime):
    """Stands in for ``datetime`` in both implementations: the legacy ``utcnow()`` and our ``now(tz)``."""

    moment = datetime(2025, 12, 10, 23, 6, 2, 37123)

    @classmethod
    def utcnow(cls) -> datetime:  # type: ignore[override]
        return cls.moment

    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return cls.moment.replace(tzinfo=tz)


_AWKWARD_STATE = [
    task("T-1", lastModified="2025-01-01T00:00:00.000Z", assignee=None),
    task("T-2", name="名前 — ü 🚀", notes='quote " backslash \\ newline \n tab \t', weight=1.5, big=1e100),
    task("T-3", assignee={"type": "human", "name": "alice"}, empty_list=[], empty_obj={}, flag=True),
    {"id": "T-4", "nested": {"deep": [1, [2, {"three": None}]]}, "lastModified": "x"},
]


def _run_all(impl: Impl) -> list[Any]:
    return [
        impl.task_locking.atomic_assign_task("T-1", "ağent", hostname="box"),
        impl.task_locking.atomic_check_and_assign("T-2", "b"),
        impl.task_locking.atomic_check_and_assign("T-3", "c"),
        impl.task_locking.atomic_batch_assign(["T-4", "T-3", "T-404", "T-4"], "bot"),
    ]


def _expected_bytes() -> bytes:
    """What the legacy code writes for ``_run_all`` on ``_AWKWARD_STATE``, computed by hand."""
    state = json.loads(
        json.dumps({"todos": _AWKWARD_STATE, "lastModified": "2025-01-01T00:00:00.000Z", "project": {"name": "p"}})
    )
    stamp = "2025-12-10T23:06:02.037123Z"
    for tid, name, by, host in (
        ("T-1", "ağent", "auto", "box"),
        ("T-2", "b", "atomic_check_and_assign", None),
        ("T-4", "bot", "atomic_batch_assign", None),
    ):
        t = next(t for t in state["todos"] if t["id"] == tid)
        t["assignee"] = {"type": "agent", "name": name, "hostname": host, "assigned_at": stamp, "assigned_by": by}
        t["lastModified"] = stamp
    return json.dumps(state, indent=2).encode()


@pytest.mark.parametrize("impl", ["ferrolock", "legacy"], indirect=True)
def test_results_and_file_bytes_are_the_legacy_ones(
    impl: Impl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same results, and the same bytes in the state file and its backup, for awkward content: non-ASCII
    text (escaped), a null assignee (assignable, key kept in place), floats, empty containers."""
    monkeypatch.setattr(impl.task_locking, "datetime", _FixedClock)
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    write_state(tmp_path, _AWKWARD_STATE)
    (tmp_path / STATE).write_text((tmp_path / STATE).read_text() + "\n")  # todo2 may end with a newline
    results = _run_all(impl)
    assert results == [
        (True, None),
        {
            "success": True,
            "assigned": True,
            "reason": "Task assigned successfully",
            "assignee": _task(tmp_path, "T-2")["assignee"],
        },
        {
            "success": True,
            "assigned": False,
            "reason": "Task already assigned",
            "existing_assignee": {"type": "human", "name": "alice"},
        },
        {
            "success": False,
            "assigned": ["T-4"],
            "failed": [
                {"task_id": "T-3", "reason": "Already assigned to alice"},
                {"task_id": "T-404", "reason": "Task not found"},
                {"task_id": "T-4", "reason": "Already assigned to bot"},
            ],
            "total": 4,
        },
    ]
    written = (tmp_path / STATE).read_bytes()
    assert written == _expected_bytes()
    assert written.isascii()
    assert not written.endswith(b"\n")
    assert list(json.loads(written)["todos"][0]) == ["id", "name", "status", "lastModified", "assignee"]


def test_the_backup_is_the_previous_version_and_only_writes_make_one(root: Path) -> None:
    before = (root / STATE).read_bytes()
    assert task_locking.atomic_check_and_assign("T-3", "x")["assigned"] is False
    assert task_locking.atomic_batch_assign(["T-3"], "x")["assigned"] == []
    assert not (root / BACKUP).exists(), "nothing was written, so nothing was backed up"
    assert task_locking.atomic_assign_task("T-1", "a") == (True, None)
    assert (root / BACKUP).read_bytes() == before
    between = (root / STATE).read_bytes()
    assert task_locking.atomic_assign_task("T-2", "b") == (True, None)
    assert (root / BACKUP).read_bytes() == between
    assert (root / STATE_LOCK).exists()
    assert (root / LOCKS / "task_T-2.lock").exists()


def test_timestamps_are_utc_with_microseconds_and_no_deprecation_warning(root: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert task_locking.atomic_assign_task("T-1", "a") == (True, None)
    t = _task(root, "T-1")
    for stamp in (t["assignee"]["assigned_at"], t["lastModified"]):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", stamp)
        utc_now = datetime.now(timezone.utc).replace(tzinfo=None)
        assert abs(datetime.fromisoformat(stamp[:-1]) - utc_now) < timedelta(minutes=5)
    assert _task(root, "T-2").get("lastModified") is None
    assert load_state(root)["lastModified"] == "2025-01-01T00:00:00.000Z", "the top level is not bumped"


def test_a_whole_second_is_written_without_microseconds_as_utcnow_isoformat_did(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_FixedClock, "moment", datetime(2025, 12, 10, 23, 6, 2))
    monkeypatch.setattr(task_locking, "datetime", _FixedClock)
    assert task_locking._utc_stamp() == "2025-12-10T23:06:02Z" == _FixedClock.moment.isoformat() + "Z"


@pytest.mark.parametrize("impl", ["ferrolock", "legacy"], indirect=True)
def test_messages_for_missing_and_corrupt_state(impl: Impl, root: Path) -> None:
    tl = impl.task_locking
    (root / STATE).write_text("{ not json")
    expected = "Expecting property name enclosed in double quotes: line 1 column 3 (char 2)"
    assert tl.atomic_assign_task("T-1", "a") == (False, expected)
    assert tl.atomic_check_and_assign("T-1", "a") == {"success": False, "assigned": False, "reason": expected}
    assert tl.atomic_batch_assign(["T-1"], "a")["failed"] == [{"task_id": "T-1", "reason": expected}]
    assert (root / STATE).read_text() == "{ not json", "a corrupt file is reported, never replaced"
    (root / STATE).unlink()
    assert tl.atomic_check_and_assign("T-1", "a") == {
        "success": False,
        "assigned": False,
        "reason": "State file not found",
    }
    assert tl.atomic_batch_assign(["T-1", "T-2"], "a") == {
        "success": False,
        "assigned": [],
        "failed": [
            {"task_id": "T-1", "reason": "State file not found"},
            {"task_id": "T-2", "reason": "State file not found"},
        ],
        "total": 2,
    }
    assert not (root / STATE).exists()


@pytest.mark.parametrize("impl", ["ferrolock", "legacy"], indirect=True)
def test_an_empty_batch_succeeds_without_writing(impl: Impl, root: Path) -> None:
    before = (root / STATE).read_bytes()
    assert impl.task_locking.atomic_batch_assign([], "a") == {"success": True, "assigned": [], "failed": [], "total": 0}
    assert (root / STATE).read_bytes() == before


def test_garbage_in_the_state_is_reported_or_kept_never_lost(root: Path) -> None:
    """The legacy code crashed into ``AttributeError`` messages here; ferrolock reports the corrupt
    file plainly, skips entries that cannot be tasks and keeps them as they were."""
    (root / STATE).write_text("[1, 2]")
    ok, reason = task_locking.atomic_assign_task("T-1", "a")
    assert ok is False
    assert reason is not None
    assert "is corrupt: the top level is not a JSON object" in reason
    assert (root / STATE).read_text() == "[1, 2]"
    write_state(root, ["junk", 7, task("T-1"), task("T-2", assignee="carol")])
    assert task_locking.atomic_assign_task("T-2", "a") == (False, "Task already assigned to unknown:carol")
    assert task_locking.atomic_batch_assign(["T-2", "T-1"], "a")["failed"] == [
        {"task_id": "T-2", "reason": "Already assigned to carol"}
    ]
    assert load_state(root)["todos"][:2] == ["junk", 7]


# --- fixed weaknesses: each test fails on the legacy code -----------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("impl", ["ferrolock", LEGACY_FAILS], indirect=True)
def test_a_single_assignment_waits_for_the_state_file_lock(impl: Impl, root: Path) -> None:
    """Legacy: a single assignment took only the task's lock, so it rewrote the whole file while a batch
    (or anyone) held the state-file lock. (The characterization suite pins that legacy behaviour; it is
    the one expected difference.)"""
    before = (root / STATE).read_bytes()
    fd = _hold(root / STATE_LOCK)
    results: list[Any] = []
    worker = threading.Thread(
        target=lambda: results.append(impl.task_locking.atomic_assign_task("T-1", "a", timeout=20))
    )
    worker.start()
    try:
        wait_until_blocked(os.getpid(), deadline=5.0)
        assert not results
        assert (root / STATE).read_bytes() == before
    finally:
        os.close(fd)
        worker.join(START_DEADLINE)
    assert results == [(True, None)]
    assert _task(root, "T-1")["assignee"]["name"] == "a"


def test_a_state_file_lock_timeout_names_the_state_file(root: Path) -> None:
    fd = _hold(root / STATE_LOCK)
    try:
        assert task_locking.atomic_assign_task("T-1", "a", timeout=0.1) == (
            False,
            "Failed to acquire lock for task state file",
        )
    finally:
        os.close(fd)
    assert "assignee" not in _task(root, "T-1")


@pytest.mark.parametrize("impl", ["ferrolock", LEGACY_FAILS], indirect=True)
def test_a_reader_that_opened_the_old_file_still_reads_it_whole(impl: Impl, root: Path) -> None:
    """Legacy: ``open(state_file, "w")`` truncated and rewrote the file in place, so a reader that had
    it open (or opened it mid-write) got an empty or partial file."""
    before = (root / STATE).read_bytes()
    with open(root / STATE, "rb") as reader:
        assert impl.task_locking.atomic_assign_task("T-1", "a") == (True, None)
        assert reader.read() == before
    assert _task(root, "T-1")["assignee"]["name"] == "a"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("impl", ["ferrolock", LEGACY_FAILS], indirect=True)
def test_a_batch_never_assigns_a_task_whose_lock_someone_holds(impl: Impl, root: Path) -> None:
    """Legacy: the batch took only the state-file lock, so it assigned a task while a single-task
    assignment (or a ``task_lock`` user) held that task's lock. ferrolock tries the task's lock without
    waiting (it holds the state-file lock) and reports the task as failed."""
    fd = _hold(root / LOCKS / "task_T-2.lock")
    try:
        result = impl.task_locking.atomic_batch_assign(["T-1", "T-2"], "bot", timeout=5.0)
    finally:
        os.close(fd)
    assert result == {
        "success": False,
        "assigned": ["T-1"],
        "failed": [{"task_id": "T-2", "reason": "Failed to acquire lock for task T-2"}],
        "total": 2,
    }
    assert "assignee" not in _task(root, "T-2")


@pytest.mark.parametrize("impl", ["ferrolock", LEGACY_FAILS], indirect=True)
def test_a_lock_error_that_is_not_contention_is_reported_as_itself(impl: Impl, root: Path) -> None:
    """Legacy: a directory where the task's lock file belongs was reported as ``Failed to acquire lock
    for task T-1``, as if another agent held the task."""
    (root / LOCKS / "task_T-1.lock").mkdir(parents=True)
    ok, reason = impl.task_locking.atomic_assign_task("T-1", "a", timeout=30.0)
    assert ok is False
    assert reason is not None
    assert "directory" in reason
    assert str(root / LOCKS) in reason


@pytest.mark.parametrize("impl", ["ferrolock", LEGACY_FAILS], indirect=True)
def test_a_task_id_that_would_escape_the_locks_directory_is_rejected(impl: Impl, root: Path) -> None:
    """Legacy: ``atomic_assign_task("../../../escaped", ...)`` created ``.todo2/locks/task_..`` and a lock
    file outside ``.todo2/locks/``."""
    before = _tree(root)
    ok, reason = impl.task_locking.atomic_assign_task("../../../escaped", "a")
    assert ok is False
    assert reason is not None
    assert reason.startswith("invalid task id")
    assert impl.task_locking.atomic_check_and_assign("a/b", "a")["reason"].startswith("invalid task id")
    assert _tree(root) == before


@pytest.mark.parametrize("impl", ["ferrolock", LEGACY_FAILS], indirect=True)
def test_task_lock_files_do_not_pile_up(impl: Impl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Legacy: one ``task_<id>.lock`` per task ever touched, forever."""
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    ids = [f"T-{i}" for i in range(30)]
    write_state(tmp_path, [task(i) for i in ids])
    for i in ids:
        assert impl.task_locking.atomic_assign_task(i, "a") == (True, None)
    assert impl.task_locking.atomic_assign_task("T-404", "a") == (False, "Task T-404 not found")
    assert impl.task_locking.atomic_batch_assign(ids[:5], "b")["assigned"] == []
    assert sorted(p.name for p in (tmp_path / LOCKS).iterdir()) == []


def test_a_batch_creates_no_lock_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A held lock always has a file, so the batch only needs to try the files that exist: one scan of
    ``.todo2/locks/`` instead of one file creation per task."""
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    ids = [f"T-{i}" for i in range(50)]
    write_state(tmp_path, [task(i) for i in ids])
    held = try_lock_task("T-7")  # someone works on T-7: the batch must leave it alone
    assert held is not None
    result = task_locking.atomic_batch_assign(ids, "bot")
    held.release()
    assert result["failed"] == [{"task_id": "T-7", "reason": "Failed to acquire lock for task T-7"}]
    assert len(result["assigned"]) == 49
    assert sorted(p.name for p in (tmp_path / LOCKS).iterdir()) == ["task_T-7.lock"]


def test_lock_files_that_may_still_matter_are_kept(root: Path) -> None:
    """Never removed: a lock file someone holds, the lock file of a task that can still be claimed (a
    legacy process may be about to lock it), and the one of the task just assigned (legacy layout)."""
    held = _hold(root / LOCKS / "task_T-3.lock")  # T-3 is assigned, but someone holds its lock
    try:
        lock = try_lock_task("T-2")
        assert lock is not None
        lock.release()
        assert task_locking.atomic_assign_task("T-1", "a") == (True, None)
        assert sorted(p.name for p in (root / LOCKS).iterdir()) == ["task_T-1.lock", "task_T-2.lock", "task_T-3.lock"]
    finally:
        os.close(held)
    assert task_locking.atomic_assign_task("T-2", "b") == (True, None)
    assert sorted(p.name for p in (root / LOCKS).iterdir()) == ["task_T-2.lock"]


# --- crashes and write errors (ferrolock's fault points) -------------------------------------------

_CRASH_CHILD = textwrap.dedent(
    """
    import os, sys
    os.environ["PROJECT_ROOT"] = sys.argv[1]
    from ferrolock import _ferrolock
    from ferrolock.compat.todo2 import task_locking
    _ferrolock._set_failpoint(sys.argv[2], "crash")
    print(task_locking.atomic_assign_task("T-1", "crashed"), flush=True)
    """
)

WRITE_STEPS = [
    "atomic_write:create_temp",
    "atomic_write:write",
    "atomic_write:fsync_temp",
    "atomic_write:backup_link",
    "atomic_write:backup_rename",
    "atomic_write:rename",
    "atomic_write:fsync_dir",
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("step", WRITE_STEPS)
def test_a_crash_at_any_write_step_leaves_a_whole_file_and_frees_the_locks(root: Path, step: str) -> None:
    before = (root / STATE).read_bytes()
    child = subprocess.run(
        [sys.executable, "-c", _CRASH_CHILD, str(root), step], capture_output=True, text=True, timeout=60, check=False
    )
    assert child.returncode == -9, child.stderr
    after = json.loads((root / STATE).read_bytes())
    crashed_after_rename = _task(root, "T-1").get("assignee") is not None
    assert crashed_after_rename == (step == "atomic_write:fsync_dir")
    if not crashed_after_rename:
        assert (root / STATE).read_bytes() == before
    if (root / BACKUP).exists():
        assert (root / BACKUP).read_bytes() == before
    assert after["todos"][2]["assignee"] == {"type": "human", "name": "alice"}
    # The dead writer's locks went with it; the next writer gets them at once and sweeps its leftovers.
    expected = (False, "Task already assigned to agent:crashed") if crashed_after_rename else (True, None)
    assert task_locking.atomic_assign_task("T-1", "next", timeout=5.0) == expected
    assert task_locking.atomic_assign_task("T-2", "next", timeout=5.0) == (True, None)
    assert sorted(p.name for p in (root / ".todo2").iterdir()) == [
        "locks",
        "state.todo2.json",
        "state.todo2.json.bak",
        "state.todo2.json.lock",
    ]


@pytest.fixture
def failpoint() -> Iterator[None]:
    yield
    _ferrolock._set_failpoint(None)


@pytest.mark.parametrize("step", ["atomic_write:write", "atomic_write:fsync_temp", "atomic_write:rename"])
def test_a_write_error_is_reported_and_changes_nothing(root: Path, failpoint: None, step: str) -> None:
    before = (root / STATE).read_bytes()
    _ferrolock._set_failpoint(step, "error")
    ok, reason = task_locking.atomic_assign_task("T-1", "a")
    assert ok is False
    assert reason is not None
    assert "Input/output error" in reason
    assert (root / STATE).read_bytes() == before
    if (root / BACKUP).exists():  # the backup step comes before the rename: a complete old version
        assert (root / BACKUP).read_bytes() == before
    assert [p.name for p in (root / ".todo2").iterdir() if p.name.startswith(".")] == [], "no temporary files"
    _ferrolock._set_failpoint(None)
    assert task_locking.atomic_assign_task("T-1", "a") == (True, None)


# --- the project root, resolved once per call ------------------------------------------------------


@pytest.mark.parametrize("impl", ["ferrolock", LEGACY_FAILS], indirect=True)
def test_patching_find_project_root_moves_the_lock_files_too(
    impl: Impl, root: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Legacy: ``task_locking.find_project_root`` (the documented patch point) chose the state file,
    but the lock files came from ``file_lock``'s own lookup, so the locks guarded another project."""
    other = tmp_path_factory.mktemp("other")
    shutil.copytree(root / ".todo2", other / ".todo2")
    monkeypatch.setattr(impl.task_locking, "find_project_root", lambda: other)
    assert impl.task_locking.atomic_assign_task("T-1", "a") == (True, None)
    assert _task(other, "T-1")["assignee"]["name"] == "a"
    assert (other / LOCKS / "task_T-1.lock").exists()
    assert not (root / LOCKS).exists(), "no lock files in the project that was not touched"


def test_a_symlinked_locks_directory_does_not_point_the_tidy_up_elsewhere(
    root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Someone who can write ``.todo2/`` plants ``locks`` as a link to another directory: the tidy-up
    (which removes unheld lock files of assigned tasks) must not remove that directory's files. (The
    previous adapter listed the directory through the link and removed them.)"""
    victim = tmp_path_factory.mktemp("victim")
    (victim / "task_T-3.lock").write_text("someone else's file")
    (root / LOCKS).symlink_to(victim, target_is_directory=True)
    task_locking.atomic_batch_assign(["T-2"], "bot")
    assert (victim / "task_T-3.lock").read_text() == "someone else's file"
