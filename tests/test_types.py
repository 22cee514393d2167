"""The types that cross the native boundary: holder records are ``HolderRecord`` dicts, ``probe()``
returns a ``LockProbe`` named tuple, outcomes are ``Literal`` strings, paths are ``str`` or
``os.PathLike[str]``. Checked at run time, and against the stubs by mypy (a snippet that must type-check
and one whose every line must be rejected)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import ferrolock
import pytest
from ferrolock import HolderRecord, LockProbe, _ferrolock


def test_probe_returns_a_named_tuple_that_still_unpacks(tmp_path: Path) -> None:
    """probe() returned a bare tuple: callers had to remember which index was which."""
    path = tmp_path / "a.lock"
    assert ferrolock.probe(path) == ("missing", None)
    with ferrolock.FileLock(path, purpose="typed"):
        found = ferrolock.probe(path)
        assert isinstance(found, LockProbe)
        assert found.state == "held"
        assert found.holder is not None
        assert found.holder["purpose"] == "typed"
        state, holder = found
        assert (state, holder) == (found.state, found.holder)
    assert ferrolock.probe(path) == LockProbe(state="free", holder=None)


def test_holder_records_have_exactly_the_typed_keys(tmp_path: Path) -> None:
    path = tmp_path / "a.lock"
    with ferrolock.FileLock(path, purpose="p") as lock:
        record = lock.holder()
        assert record is not None
        assert set(record) == set(HolderRecord.__annotations__)
        assert record["pid"] == os.getpid()
        with pytest.raises(ferrolock.Timeout) as info:
            ferrolock.FileLock(path, detect_deadlock=False).acquire(timeout=0)
    assert info.value.holder == record
    job = ferrolock.JobLock(tmp_path / "j.lock")
    with job:
        job_record = job.holder()
        assert job_record is not None
        assert set(job_record) == set(HolderRecord.__annotations__)


def test_scope_entry_paths_are_str(tmp_path: Path) -> None:
    scopes = _ferrolock.ScopeDir(tmp_path / ".running")
    assert scopes.acquire("job", "job", [str(tmp_path / "src")])
    (entry,) = scopes.live_claims()
    assert entry.path == str(tmp_path / ".running" / "job.lock")


ACCEPTED = """
    import os
    from pathlib import Path
    from typing import Literal, assert_type

    import ferrolock
    from ferrolock import HolderRecord, LockProbe

    lock = ferrolock.FileLock(Path("x.lock"))
    record = lock.holder()
    if record is not None:
        assert_type(record, HolderRecord)
        assert_type(record["pid"], int)
        assert_type(record["purpose"], str | None)
    found = ferrolock.probe(os.fsdecode(b"x.lock"))
    assert_type(found, LockProbe)
    assert_type(found.state, Literal["missing", "free", "held"])
    state, holder = found
    assert_type(holder, HolderRecord | None)
    assert_type(ferrolock.remove_if_unheld(Path("x.lock")), Literal["removed", "held", "missing"])
    try:
        ferrolock.StateFile(Path("s"), lock_path=Path("s.lock")).write(bytearray(b"x"))
    except ferrolock.Timeout as exc:
        if exc.holder is not None:
            assert_type(exc.holder["host"], str)
    ferrolock.run_once(Path("m"), "m.lock", lambda: None, also_lock=[Path("other.lock")])
    ferrolock.atomic_write(Path("a"), "text", backup=Path("a.bak"))
"""

REJECTED = """
    import ferrolock

    def check(record: ferrolock.HolderRecord) -> None:
        record["nope"]  # rejected

    ferrolock.FileLock(5)  # rejected
    ferrolock.FileLock(b"x.lock")  # rejected
    ferrolock.probe(5)  # rejected
    ferrolock.StateFile("s").write(5)  # rejected
    ferrolock.JobLock(["x"])  # rejected
"""


def _mypy(source: str, tmp_path: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), "--python-version", "3.11", str(snippet)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=tmp_path,
    )


@pytest.mark.timeout(300)
def test_the_stubs_type_the_boundary(tmp_path: Path) -> None:
    cache = tmp_path / "mypy-cache"  # shared by the two runs
    accepted = _mypy(ACCEPTED, tmp_path, cache)
    assert accepted.returncode == 0, accepted.stdout
    rejected = _mypy(REJECTED, tmp_path, cache)
    errors = {int(line.split(":")[1]) for line in rejected.stdout.splitlines() if ": error:" in line}
    lines = textwrap.dedent(REJECTED).splitlines()
    expected = {n for n, line in enumerate(lines, 1) if line.endswith("# rejected")}
    assert len(expected) == 6
    assert errors >= expected, rejected.stdout
