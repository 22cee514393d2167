"""Bad environments, part 2: permissions. Files and directories belong to another user (uid 65534), or
are read-only or unreadable, and the caller is an unprivileged process (uid 65533).

The tests run as root: each case prepares the files, then runs the operation in a child that imports
ferrolock first (the interpreter's own files are private to root here) and then drops to uid 65533.
Each case: a ``PermissionError`` naming the file (or, where a lock only needs to be read, the lock
works), and nothing of the other user's changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create other users' files and drop privileges"),
]

OTHER = 65534  # owns the files
ME = 65533  # runs the operation

PREAMBLE = f"""
import errno, json, os, sys, traceback
from pathlib import Path
import ferrolock
from ferrolock.compat.blackbox5 import StateManager
from ferrolock.compat.todo2 import task_locking
base = Path(sys.argv[1])
os.environ["PROJECT_ROOT"] = str(base)
os.setgroups([]); os.setgid({ME}); os.setuid({ME})
def report(call):
    try:
        print("ok", json.dumps(call()))
    except OSError as e:
        print(type(e).__name__, e.errno, e.filename is not None)
"""


@pytest.fixture
def base() -> Iterator[Path]:
    # pytest's tmp_path lies under directories private to root; use a world-traversable one.
    path = Path(tempfile.gettempdir()) / f"ferrolock-perm-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path.mkdir(mode=0o755)
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def owned(path: Path, mode: int, content: bytes | None = None) -> Path:
    """Create ``path`` (a file with ``content``, else a directory) owned by the other user."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if content is None:
        path.mkdir(exist_ok=True)
    else:
        path.write_bytes(content)
    os.chown(path, OTHER, OTHER)
    os.chmod(path, mode)
    return path


def run_unprivileged(base: Path, call: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PREAMBLE + f"report(lambda: {call})", str(base)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Everything but lock files (a communal, writable lock file gets its holder's record: that is
    what it is for; the other user's own lock files are checked by name)."""
    return {
        str(p): (p.stat().st_mode, p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
        if not p.name.endswith(".lock")
    }


RECORD = b'{"pid":1,"host":"elsewhere","since":"2026-11-22T04:30:00Z","purpose":"theirs","version":1}\n'
STATE_MD = b"# Workflow: Theirs\n\n**Workflow ID:** `wf`\n**Status:** Wave 1/2\n\n## Notes\n\n- keep me\n"
TODO2 = json.dumps({"todos": [{"id": "T-1"}]}, indent=2).encode()

# name: (prepare(base), the call in the child, the expected first words of its report)
CASES: dict[str, tuple[Callable[[Path], object], str, list[str]]] = {
    # Its owner could delete it while we hold it (two holders): refused, see test_hostile_lock_files.py.
    "their lock file, readable, in a sticky shared directory: refused": (
        lambda b: (os.chmod(b, 0o1777), owned(b / "a.lock", 0o644, RECORD)),
        "ferrolock.FileLock(base / 'a.lock').acquire(timeout=0) and None",
        ["UntrustedPathError", "13", "True"],
    ),
    "their lock file, readable, in a directory only they can write: the lock works read-only": (
        lambda b: (owned(b / "d", 0o755), owned(b / "d" / "a.lock", 0o644, RECORD)),
        "ferrolock.FileLock(base / 'd' / 'a.lock').acquire(timeout=0) and None",
        ["ok", "null"],
    ),
    "their lock file, private": (
        lambda b: owned(b / "a.lock", 0o600, RECORD),
        "ferrolock.FileLock(base / 'a.lock').acquire(timeout=0)",
        ["PermissionError", "13", "True"],
    ),
    "a lock in their private directory": (
        lambda b: owned(b / "d", 0o700),
        "ferrolock.FileLock(base / 'd' / 'a.lock').acquire(timeout=0)",
        ["PermissionError", "13", "True"],
    ),
    "a new lock in their read-only directory": (
        lambda b: owned(b / "d", 0o555),
        "ferrolock.FileLock(base / 'd' / 'a.lock').acquire(timeout=0)",
        ["PermissionError", "13", "True"],
    ),
    "a writable state file in their read-only directory": (
        lambda b: (
            owned(b / "d", 0o755),
            owned(b / "d" / "s.txt", 0o666, b"v1"),
            owned(b / "d" / "s.txt.lock", 0o666, b""),
        ),
        "ferrolock.StateFile(base / 'd' / 's.txt').write(b'v2')",
        ["PermissionError", "13", "True"],
    ),
    "their private STATE.md: load_state": (
        lambda b: (os.chmod(b, 0o1777), owned(b / "STATE.md", 0o600, STATE_MD)),
        "StateManager(base / 'STATE.md').load_state()",
        ["PermissionError", "13", "True"],
    ),
    "their private STATE.md: add_note": (
        lambda b: (os.chmod(b, 0o1777), owned(b / "STATE.md", 0o600, STATE_MD)),
        "StateManager(base / 'STATE.md', max_retries=1).add_note('mine')",
        ["PermissionError", "13", "True"],
    ),
    "their todo2 state": (
        lambda b: owned(b / ".todo2" / "state.todo2.json", 0o644, TODO2) and owned(b / ".todo2", 0o755),
        "task_locking.atomic_assign_task('T-1', 'me', timeout=0)",
        ["ok", "[false,"],
    ),
    "their scope-claim directory": (
        lambda b: (owned(b / ".loops", 0o755), owned(b / ".loops" / ".running", 0o755)),
        "ferrolock.LockManager(base / '.loops').acquire('mine', [str(base)])",
        ["PermissionError", "13", "True"],
    ),
    "their jobs directory": (
        lambda b: owned(b / "jobs", 0o755),
        "ferrolock.JobLockManager(base / 'jobs').lock_job_directory('j', timeout=0)",
        ["PermissionError", "13", "True"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_other_users_files_and_closed_directories(base: Path, case: str) -> None:
    prepare, call, expected = CASES[case]
    prepare(base)
    before = snapshot(base)
    out = run_unprivileged(base, call)
    assert out[: len(expected)] == expected or (out[0] == "ok" and out[1].startswith(expected[1])), out
    assert snapshot(base) == before, "something of the other user's changed"
    if (base / "a.lock").exists():
        assert (base / "a.lock").read_bytes() == RECORD, "the other user's lock file was written"
    assert not [p for p in base.rglob("*") if ".tmp-" in p.name or ".bak-" in p.name], "litter"
