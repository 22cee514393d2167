"""Crash points of the write paths that ``test_state_crash.py`` does not cover: the holder record a lock
writes after it wins, and the marker ``run_once`` writes after its setup.

Each case arms one fault point in a fresh interpreter (fault points are process-global, and a crash
kills the process) and then checks that what is left is old-or-new, that nothing blocks the next caller
(it gets the lock at once), that no dead process is reported as a holder, and that the next caller
sweeps whatever the crash left.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
from pathlib import Path

import ferrolock
import pytest
import state_helpers as h

pytestmark = pytest.mark.timeout(60)

HOLDER_POINTS = ["holder_record:write", "holder_record:torn"]
# Every step of the marker's atomic write (a new file: no chmod, no backup).
MARKER_POINTS = [
    "atomic_write:create_temp",
    "atomic_write:write",
    "atomic_write:fsync_temp",
    "atomic_write:rename",
    "atomic_write:fsync_dir",
]


def run_armed(point: str, action: str, body: str) -> tuple[int, str]:
    code = f"""
import os, ferrolock
from ferrolock import _ferrolock
_ferrolock._set_failpoint({point!r}, {action!r})
try:
{body}
except OSError as exc:
    print("OSError", exc.errno)
"""
    done = h.run_python(code)
    return done.returncode, (done.stdout + done.stderr).strip()


def leave_long_record(lock: Path) -> None:
    """A previous holder, since exited, with a long purpose: a torn shorter record lands on its bytes."""
    code = f"import ferrolock\nwith ferrolock.FileLock({str(lock)!r}, purpose='previous ' + 'x' * 200): pass"
    done = h.run_python(code)
    assert done.returncode == 0, done.stderr


def held_by_legacy_tool(lock: Path) -> int:
    """A holder that writes no record (a legacy ``fcntl.flock`` process): the file keeps what it had."""
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


@pytest.mark.parametrize("point", HOLDER_POINTS)
def test_a_crash_while_writing_the_holder_record_frees_the_lock_and_names_no_dead_holder(
    tmp_path: Path, point: str
) -> None:
    lock = tmp_path / "a.lock"
    leave_long_record(lock)
    code, output = run_armed(point, "crash", f"    ferrolock.FileLock({str(lock)!r}, purpose='crasher').acquire()")
    assert code == -signal.SIGKILL, output
    assert ferrolock.probe(lock) == ("free", None), "the kernel released the dead holder's lock"

    fd = held_by_legacy_tool(lock)
    try:
        state, holder = ferrolock.probe(lock)
        assert state == "held"
        assert holder is None, f"a dead process (or a mix of two records) reported as the holder: {holder}"
        status = h.run_python(f"from ferrolock.cli import main; main(['status', '--json', {str(tmp_path)!r}])")
        (report,) = json.loads(status.stdout)["locks"]
        assert (report["state"], report["holder"]) == ("held", None), "ferrolock status names a dead holder"
    finally:
        os.close(fd)

    with ferrolock.FileLock(lock, timeout=0, purpose="next") as next_holder:
        record = next_holder.holder()
        assert record is not None
        assert (record["pid"], record["purpose"]) == (os.getpid(), "next")


@pytest.mark.parametrize("point", HOLDER_POINTS)
def test_a_failed_holder_record_keeps_the_lock_and_leaves_no_stale_record(tmp_path: Path, point: str) -> None:
    """The record is advice: a write error (EIO, a full disk) must not fail the acquisition, and must not
    leave the previous holder's record (here: a live process's) in place to be reported as the holder."""
    lock = tmp_path / "a.lock"
    with ferrolock.FileLock(lock, purpose="previous, still running"):
        pass
    body = f"""    with ferrolock.FileLock({str(lock)!r}, purpose="unlucky") as held:
        state, holder = ferrolock.probe({str(lock)!r})
        print(state, holder and holder["purpose"], held.is_locked)"""
    code, output = run_armed(point, "error", body)
    assert code == 0, output
    assert "held None True" in output.splitlines(), output


@pytest.mark.parametrize("point", MARKER_POINTS)
def test_a_crash_while_writing_the_marker_leaves_no_marker_or_a_whole_one(tmp_path: Path, point: str) -> None:
    marker, lock, ran = tmp_path / "ws" / ".done", tmp_path / "setup.lock", tmp_path / "ran"
    body = f"""    ferrolock.run_once({str(marker)!r}, {str(lock)!r}, lambda: open({str(ran)!r}, "a").write("x"),
                       marker_text="complete marker")"""
    code, output = run_armed(point, "crash", body)
    assert code == -signal.SIGKILL, output
    assert ran.read_text() == "x"
    expected = "complete marker" if point == "atomic_write:fsync_dir" else None
    assert (marker.read_text() if marker.exists() else None) == expected

    # The next caller never waits for the dead one, runs the setup again only if there is no marker,
    # and sweeps what the crash left.
    again = ferrolock.run_once(marker, lock, lambda: ran.write_text(ran.read_text() + "y"), timeout=0)
    assert again is (expected is None)
    assert marker.read_text() == "complete marker" if expected else marker.exists()
    assert sorted(p.name for p in marker.parent.iterdir()) == [".done"], "litter beside the marker"
    assert ferrolock.probe(lock)[0] in ("free", "missing")


@pytest.mark.parametrize("point", MARKER_POINTS)
def test_a_failed_marker_write_fails_the_call_and_leaves_no_litter(tmp_path: Path, point: str) -> None:
    marker, lock = tmp_path / "ws" / ".done", tmp_path / "setup.lock"
    code, output = run_armed(point, "error", f"    ferrolock.run_once({str(marker)!r}, {str(lock)!r}, lambda: None)")
    assert code == 0, output
    assert output == "OSError 5", "the caller learns that the marker may not be there"
    names = sorted(p.name for p in marker.parent.iterdir())
    # After a failed directory fsync the rename has happened; otherwise nothing is left.
    assert names == ([".done"] if point == "atomic_write:fsync_dir" else [])
    assert ferrolock.probe(lock)[0] in ("free", "missing")


# --- scope claim records -------------------------------------------------------------------------------

# Every step of publishing a claim (temp file, lock, half the record, rename) and of giving it back.
CLAIM_POINTS = ["claim_record:lock", "claim_record:write", "claim_record:rename"]


def claim_in_child(loops: Path, point: str, action: str, release: bool = False) -> tuple[int, str]:
    body = f"""    manager = ferrolock.LockManager(ferrolock_path({str(loops)!r}))
    print("claimed", manager.acquire("crasher", [{str(loops.parent / "src")!r}]), flush=True)
    if {release!r}:
        manager.release("crasher")
        print("released", flush=True)"""
    return run_armed(point, action, "    from pathlib import Path as ferrolock_path\n" + body)


def running_names(loops: Path) -> list[str]:
    running = loops / ".running"
    return sorted(p.name for p in running.iterdir()) if running.exists() else []


@pytest.mark.parametrize("point", [*CLAIM_POINTS, "claim_record:remove"])
def test_a_crash_while_claiming_or_releasing_leaves_nothing_that_blocks(tmp_path: Path, point: str) -> None:
    loops = tmp_path / ".loops"
    code, output = claim_in_child(loops, point, "crash", release=point == "claim_record:remove")
    assert code == -signal.SIGKILL, output
    manager = ferrolock.LockManager(loops)
    src = [str(tmp_path / "src")]
    assert manager.find_conflict(src) is None, "a dead claimant's claim still conflicts"
    assert manager.acquire("next", src), "the next claimant had to wait for a dead one"
    assert [lock.loop_name for lock in manager.list_locks()] == ["next"]
    manager.release("next")
    assert running_names(loops) == [".acquire.lock"], "litter in the running directory"


@pytest.mark.parametrize("point", CLAIM_POINTS)
def test_a_failed_claim_is_no_claim_and_leaves_no_litter(tmp_path: Path, point: str) -> None:
    loops = tmp_path / ".loops"
    code, output = claim_in_child(loops, point, "error")
    assert code == 0, output
    assert output.splitlines()[-1] == "OSError 5", output
    assert running_names(loops) == [".acquire.lock"]
    assert ferrolock.LockManager(loops).acquire("next", [str(tmp_path / "src")])


def test_a_failed_release_leaves_a_record_nobody_honours(tmp_path: Path) -> None:
    loops = tmp_path / ".loops"
    code, output = claim_in_child(loops, "claim_record:remove", "error", release=True)
    assert code == 0, output
    assert output.splitlines()[-1] == "OSError 5", output
    manager = ferrolock.LockManager(loops)
    assert manager.find_conflict([str(tmp_path / "src")]) is None
    assert running_names(loops) == [".acquire.lock"], "the next scan removed the dead record"


# --- todo2 task assignments (the state file's atomic write, through the todo2 path) ------------------

TODO2_POINTS = [
    "atomic_write:create_temp",
    "atomic_write:write",
    "atomic_write:chmod",
    "atomic_write:fsync_temp",
    "atomic_write:backup_link",
    "atomic_write:backup_rename",
    "atomic_write:rename",
    "atomic_write:fsync_dir",
]


def todo2_state(root: Path) -> Path:
    state = root / ".todo2" / "state.todo2.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"todos": [{"id": f"T-{i}", "name": f"task {i}"} for i in range(1, 4)]}, indent=2))
    return state


def assignees(data: bytes) -> dict[str, object]:
    return {t["id"]: (t.get("assignee") or {}).get("name") for t in json.loads(data)["todos"]}


@pytest.mark.parametrize("action", ["crash", "error"])
@pytest.mark.parametrize("point", TODO2_POINTS)
def test_an_assignment_interrupted_anywhere_leaves_valid_json_old_or_new(
    tmp_path: Path, point: str, action: str
) -> None:
    state = todo2_state(tmp_path)
    before = state.read_bytes()
    body = f"""    os.environ["PROJECT_ROOT"] = {str(tmp_path)!r}
    from ferrolock.compat.todo2 import task_locking
    print(task_locking.atomic_assign_task("T-2", "crasher"))"""
    code, output = run_armed(point, action, body)
    assert code == (-signal.SIGKILL if action == "crash" else 0), output
    after = assignees(state.read_bytes())
    assert after in ({"T-1": None, "T-2": None, "T-3": None}, {"T-1": None, "T-2": "crasher", "T-3": None})
    backup = state.with_suffix(".json.bak")
    assert not backup.exists() or backup.read_bytes() in (before, state.read_bytes()), "the backup is not whole"
    if action == "error":
        assert output.startswith("(False, "), output
        assert after["T-2"] is None or point == "atomic_write:fsync_dir", "a failed write changed the file"

    from ferrolock.compat.todo2 import task_locking

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROJECT_ROOT", str(tmp_path))
        assert task_locking.atomic_assign_task("T-3", "next", timeout=0) == (True, None), "waited for a dead writer"
    assert assignees(state.read_bytes())["T-3"] == "next"
    litter = [p.name for p in state.parent.iterdir() if ".tmp-" in p.name or ".bak-" in p.name]
    assert litter == [], "the next writer swept what the crash left"


# --- every fault point in the core is covered above or in test_state_crash.py -------------------------


def test_every_fault_point_in_the_core_has_crash_tests() -> None:
    """A new step in a write path gets a fault point; this makes sure it also gets its crash tests."""
    import test_state_crash
    from ferrolock import _ferrolock

    points = set(_ferrolock._failpoints())
    covered = {p for p, *_ in test_state_crash.WRITE_STEPS + test_state_crash.REMOVE_STEPS}
    covered |= {*HOLDER_POINTS, *MARKER_POINTS, *CLAIM_POINTS, "claim_record:remove", *TODO2_POINTS}
    assert len(points) >= 16, "the fault points were not found"
    assert points - covered == set(), "fault points without a crash test"
    assert covered - points == set(), "crash tests of fault points that do not exist"


def test_an_unknown_fault_point_is_refused() -> None:
    """A typo must not arm nothing and let a crash test pass without crashing."""
    from ferrolock import _ferrolock

    with pytest.raises(ValueError, match="unknown fault point"):
        _ferrolock._set_failpoint("atomic_write:renmae", "crash")
    with pytest.raises(ValueError, match="unknown fault action"):
        _ferrolock._set_failpoint("atomic_write:rename", "explode")
