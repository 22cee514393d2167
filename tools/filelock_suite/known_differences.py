"""The selected filelock tests that pass on filelock and, by decision, not on ferrolock: each with its reason.

``run.py --fail-on-gap`` fails on any other gap, and on an entry here that no longer fails (so this list
stays exact). The README's "Migrating from py-filelock" section and ``docs/filelock-gaps.md`` give the
same reasons to users.
"""

from __future__ import annotations

from typing import Final

__all__ = ["KNOWN_DIFFERENCES", "unexpected"]

_CLASS_NAME = (
    "asserts the class is named UnixFileLock/AsyncUnixFileLock (filelock's platform alias); ferrolock's classes "
    "are FileLock and AsyncFileLock on every platform"
)
_INHERITED = (
    "filelock raises RuntimeError('inherited across fork') when a forked child acquires a lock object it "
    "inherited; ferrolock gives the child a lock of its own (a fresh descriptor, so parent and child exclude "
    "each other), which keeps fork-started multiprocessing pools that share a module-level lock working"
)

#: test id -> why ferrolock differs.
KNOWN_DIFFERENCES: Final[dict[str, str]] = {
    "tests/test_filelock.py::test_preserve_lock_file_unix_keeps_pathname": _CLASS_NAME,
    "tests/test_async_filelock.py::test_preserve_lock_file_async_release_keeps_pathname": _CLASS_NAME,
    "tests/test_filelock.py::test_winner_truncates_stale_content": (
        "the winner writes a holder record (pid, host, since, purpose) instead of leaving the file empty: "
        "`ferrolock status`, Timeout messages and holder() read it; with on_acquired the file is truncated "
        "and left to the hook, as filelock does"
    ),
    "tests/test_async_filelock_acquire_cancellation.py::test_acquire_cancellation_before_executor_start_rolls_back": (
        "asserts lock_counter == 1 while the acquisition is still queued for the executor (filelock counts a "
        "claim before it has the lock); ferrolock's lock_counter counts held acquisitions only, so a pending "
        "one never reads as held (the test's end state, nothing held after the cancellation, holds on both)"
    ),
    "tests/test_fork_ownership.py::test_fork_from_on_acquired_invalidates_child_acquire": _INHERITED,
    "tests/test_fork_ownership.py::test_inherited_idle_lock_rejects_acquire[native]": _INHERITED,
    "tests/test_fork_ownership.py::test_inherited_idle_async_lock_rejects_acquire[native]": _INHERITED,
}


def unexpected(tests: list[dict[str, str]]) -> tuple[list[str], list[str]]:
    """(gaps not in the list, listed tests that no longer fail) among ``tests``, the rows of a report that
    ran both implementations. A listed test that was not run (narrowed with ``-k``) is neither."""
    gaps = [row["id"] for row in tests if row["filelock"] == "passed" and row["ferrolock"] != "passed"]
    new = [test for test in gaps if test not in KNOWN_DIFFERENCES]
    ran = {row["id"]: row for row in tests}
    closed = [
        test
        for test in KNOWN_DIFFERENCES
        if test in ran and ran[test]["filelock"] == "passed" and ran[test]["ferrolock"] == "passed"
    ]
    return new, closed
