"""Bad environments, part 1: hostile ids and paths, and special files where lock and state files belong,
across every API that turns an id into a path or opens a lock or state file.

Each case: a clear error (an ``InvalidName``, or an ``OSError`` with ``errno`` and ``filename``), no
hang (cases that could block run in a child with a deadline), nothing created outside the base
directory, and nothing a symlink points to touched.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ferrolock
import pytest
import state_helpers as h
from ferrolock.compat.todo2 import file_lock as todo2_lock
from ferrolock.compat.todo2 import task_locking

pytestmark = pytest.mark.timeout(60)

HOSTILE_IDS = {
    "empty": "",
    "dot": ".",
    "dotdot": "..",
    "escape": "../escape",
    "deep escape": "a/../../escape",
    "absolute": "/abs/escape",
    "nested": "a/b",
    "nul": "a\0b",
    "long": "x" * 256,
    "huge": "x" * 100_000,
}


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def todo2_root(tmp_path: Path) -> Path:
    state = tmp_path / "base" / ".todo2" / "state.todo2.json"
    state.parent.mkdir(parents=True)
    state.write_text('{"todos": [{"id": "T-1"}]}')
    return tmp_path / "base"


# Each API: (turns a hostile id into a call that must refuse it). Scope names may nest (`group/loop`),
# and todo2 treats an empty task id as "the state file lock", as the legacy code did.
ID_APIS: dict[str, tuple[Callable[[Path, str], object], set[str]]] = {
    "job lock": (lambda base, job: ferrolock.JobLockManager(base).lock_job_directory(job, timeout=0), set()),
    "scope claim": (lambda base, name: ferrolock.LockManager(base / ".loops").acquire(name, [str(base)]), {"nested"}),
    "todo2 task lock": (lambda base, task: todo2_lock.lock_for(base, task, 0).acquire(blocking=False), {"empty"}),
}


@pytest.mark.parametrize("api", list(ID_APIS))
@pytest.mark.parametrize("kind", list(HOSTILE_IDS))
def test_hostile_ids_are_refused_and_create_nothing_outside(tmp_path: Path, api: str, kind: str) -> None:
    call, allowed = ID_APIS[api]
    if kind in allowed:
        pytest.skip(f"{kind!r} is a valid {api} name")
    base = tmp_path / "base"
    base.mkdir()
    with pytest.raises(ferrolock.InvalidName) as info:
        call(base, HOSTILE_IDS[kind])
    assert "invalid" in str(info.value)
    assert all(base in p.parents or p == base for p in files_under(tmp_path)), "a file outside the base"
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize("kind", ["dotdot", "escape", "absolute", "nul", "huge"])
def test_todo2_calls_report_hostile_task_ids_as_failures(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = todo2_root(tmp_path)
    before = (root / ".todo2" / "state.todo2.json").read_bytes()
    monkeypatch.setenv("PROJECT_ROOT", str(root))
    ok, reason = task_locking.atomic_assign_task(HOSTILE_IDS[kind], "mallory", timeout=0)
    assert not ok
    assert "invalid task id" in str(reason)
    batch = task_locking.atomic_batch_assign([HOSTILE_IDS[kind], "T-1"], "mallory", timeout=0)
    assert batch["assigned"] == ["T-1"], "one bad id does not sink the batch"
    assert json_task(root, "T-1")["assignee"]["name"] == "mallory"
    assert before != (root / ".todo2" / "state.todo2.json").read_bytes()
    assert all(root in p.parents for p in files_under(tmp_path) if p != root)


def json_task(root: Path, task_id: str) -> dict[str, Any]:
    todos = json.loads((root / ".todo2" / "state.todo2.json").read_text())["todos"]
    return next(t for t in todos if t["id"] == task_id)


@pytest.mark.parametrize("length", [256, 5000])
def test_over_long_paths_give_enametoolong_with_the_filename(tmp_path: Path, length: int) -> None:
    path = tmp_path / ("x" * length) if length < 4096 else tmp_path / "/".join(["d" * 200] * (length // 200))
    for call in (
        lambda: ferrolock.FileLock(path).acquire(timeout=0),
        lambda: ferrolock.StateFile(path).write(b"x"),
        lambda: ferrolock.atomic_write(path, b"x"),
    ):
        with pytest.raises(OSError, match="too long") as info:
            call()
        assert info.value.errno == errno.ENAMETOOLONG
        assert info.value.filename is not None


# --- special files where a lock file belongs ------------------------------------------------------------


def plant(path: Path, kind: str, victim: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "symlink":
        path.symlink_to(victim)
    elif kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)


# Each API: (where its lock file is under `base`, code run in a child that takes that lock).
LOCK_APIS = {
    "FileLock": ("a.lock", "ferrolock.FileLock(base / 'a.lock').acquire(timeout=0)"),
    "JobLockManager": ("j/.lock", "ferrolock.JobLockManager(base).lock_job_directory('j', timeout=0)"),
    "StateFile": ("s.lock", "ferrolock.StateFile(base / 's.txt', lock_path=base / 's.lock').write(b'x')"),
    "StateManager": (
        "STATE.lock",
        "from ferrolock.compat.blackbox5 import StateManager\n"
        "StateManager(base / 'STATE.md', max_retries=1).initialize('w', 'W', 1, [])",
    ),
    "run_once": ("once.lock", "ferrolock.run_once(base / 'done', base / 'once.lock', lambda: print('SETUP RAN'))"),
    "LockManager": (
        ".loops/.running/.acquire.lock",
        "ferrolock.LockManager(base / '.loops').acquire('l', [str(base)])",
    ),
    "todo2": (
        ".todo2/state.todo2.json.lock",
        "import os; os.environ['PROJECT_ROOT'] = str(base)\n"
        "from ferrolock.compat.todo2 import task_locking\n"
        "print(task_locking.atomic_assign_task('T-1', 'x', timeout=0))",
    ),
}


@pytest.mark.parametrize("kind", ["symlink", "directory", "fifo"])
@pytest.mark.parametrize("api", list(LOCK_APIS))
def test_special_files_at_lock_paths_give_a_clear_error(tmp_path: Path, api: str, kind: str) -> None:
    base = todo2_root(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    before = victim.stat()
    where, code = LOCK_APIS[api]
    plant(base / where, kind, victim)
    done = h.run_python(
        "import ferrolock\nfrom pathlib import Path\n"
        f"base = Path({str(base)!r})\n"
        f"try:\n    {code.replace(chr(10), chr(10) + '    ')}\n"
        "except OSError as e:\n    print('OSError', e.errno, e.filename is not None)\n",
        timeout=20,  # a FIFO opened for blocking I/O would hang here
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert "SETUP RAN" not in out
    if api == "todo2":  # the legacy contract: failures are returned, not raised
        assert out.startswith("(False, "), out
    else:
        assert out.split()[0] == "OSError", out
        assert out.split()[2] == "True", "the error names the file"
    assert victim.read_text() == "precious"
    assert victim.stat().st_mtime_ns == before.st_mtime_ns


# --- special files where a state file belongs -------------------------------------------------------------

STATE_APIS = {
    "StateFile.read": ("s.txt", "ferrolock.StateFile(base / 's.txt').read()"),
    "StateFile.edit": ("s.txt", "ferrolock.StateFile(base / 's.txt').edit().__enter__()"),
    "StateFile.write": ("s.txt", "ferrolock.StateFile(base / 's.txt').write(b'x')"),
    "StateManager.load_state": (
        "STATE.md",
        "from ferrolock.compat.blackbox5 import StateManager\nStateManager(base / 'STATE.md').load_state()",
    ),
    "StateManager.add_note": (
        "STATE.md",
        "from ferrolock.compat.blackbox5 import StateManager\nStateManager(base / 'STATE.md').add_note('n')",
    ),
    "todo2 assignment": (
        ".todo2/state.todo2.json",
        "import os; os.environ['PROJECT_ROOT'] = str(base)\n"
        "from ferrolock.compat.todo2 import task_locking\n"
        "print(task_locking.atomic_assign_task('T-1', 'x', timeout=0))",
    ),
}


@pytest.mark.parametrize("kind", ["directory", "fifo"])
@pytest.mark.parametrize("api", list(STATE_APIS))
def test_special_files_at_state_paths_give_a_clear_error_without_hanging(tmp_path: Path, api: str, kind: str) -> None:
    """A FIFO at a state file's path hung every reader before the fix (``fs::read`` opened it for
    blocking I/O), and an edit hung while holding the lock, so every writer hung behind it."""
    base = tmp_path / "base"
    base.mkdir()
    where, code = STATE_APIS[api]
    target = base / where
    if target.parent != base:
        target.parent.mkdir(parents=True)
    plant(target, kind, tmp_path)
    done = h.run_python(
        "import ferrolock\nfrom pathlib import Path\n"
        f"base = Path({str(base)!r})\n"
        f"try:\n    {code.replace(chr(10), chr(10) + '    ')}\n"
        "except OSError as e:\n    print('OSError', e.errno, e.filename is not None)\n",
        timeout=20,
    )
    assert done.returncode == 0, done.stderr
    if api == "todo2 assignment":
        assert done.stdout.startswith("(False, "), done.stdout
    else:
        assert done.stdout.split() == ["OSError", str(errno.EISDIR if kind == "directory" else errno.EINVAL), "True"]
    lock = target.with_name(target.name + ".lock") if api.startswith("StateFile") else None
    if lock is not None and lock.exists():
        assert ferrolock.probe(lock)[0] == "free", "the failed edit left its lock held"
