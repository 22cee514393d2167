"""Which of py-filelock's tests the comparison runs, and why every other test is left out.

The comparison covers the public API of filelock's kernel lock (``FileLock``, ``UnixFileLock``, ``Timeout``)
and of its async lock (``AsyncFileLock``, ``AsyncUnixFileLock``): what a user who changes one import line
relies on. It leaves out SoftFileLock, the read-write locks, leases, Windows, and tests of filelock's own
internals (private modules and attributes, its abstract backends, mocks of the system calls its Python code
makes). Rules are tried in this order, and the first that matches gives the reason a test is left out:

1. ``FILE_RULES``: a whole test file is about something out of scope.
2. ``NAME_RULES``: one test (an ``fnmatch`` pattern on the node id), judged by reading it. A rule whose
   reason is ``KEEP`` selects the test even if a later rule would match (a test that mentions SoftFileLock
   only in passing, say).
3. A parametrization value is a filelock class other than the ones compared (``lock_type=SoftFileLock``).
4. ``FIXTURE_RULES``: the test uses a fixture that patches filelock's internals.
5. ``DECORATOR_RULES`` and ``SOURCE_RULES``: the test's decorators, or its own code (decorators left out,
   so a ``parametrize`` list naming SoftFileLock does not count), match a pattern that only tests of
   internals contain, such as ``mocker.patch("filelock._unix...")`` or a ``BaseFileLock`` subclass.

The rules are for the pinned commit in ``run.py``; after moving the pin, read the new tests against them.
This module is imported by the pytest plugin inside the suite's virtualenv, so it needs only the standard
library.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import Final

#: The public names whose objects ferrolock replaces, as filelock spells them.
COMPARED_NAMES: Final = ("FileLock", "UnixFileLock", "AsyncFileLock", "AsyncUnixFileLock", "Timeout")

#: A NAME_RULES reason that selects the test.
KEEP: Final = "keep"

_SOFT = "SoftFileLock and its relatives (existence-marker locks) are not compared"
_RW = "ReadWriteLock and SoftReadWriteLock are not compared"
_OS_MOCK = (
    "implementation detail: patches a system call wrapper that only filelock's Python code calls "
    "(ferrolock makes its system calls in Rust)"
)
_POLL = "implementation detail: asserts filelock's polling sleeps (ferrolock waits in the kernel and does not poll)"

FILE_RULES: Final[dict[str, str]] = {
    "tests/soft_rw/*": _RW,
    "tests/test_read_write*.py": _RW,
    "tests/test_async_read_write*.py": _RW,
    "tests/test_soft_*.py": _SOFT,
    "tests/test_strict_soft*.py": _SOFT,
    "tests/test_async_soft_contracts.py": _SOFT,
    "tests/test_marker_records.py": _SOFT,
    "tests/test_process_identity.py": "internals: filelock._identity (the soft locks' owner records)",
    "tests/test_util.py": "internals: filelock._util helpers",
    "tests/test_async_transition_gate.py": "internals: filelock._async's transition gate",
    "tests/test_subclass_options.py": "internals: option handling of BaseFileLock/BaseAsyncFileLock subclasses",
    "tests/test_unix_fallback.py": (
        "filelock's fallback to SoftFileLock when flock fails with ENOSYS, simulated by patching fcntl.flock "
        "(ferrolock has no soft fallback: it fails with the OS error)"
    ),
    "tests/test_fork_backends.py": "internals: descriptor bookkeeping of test backends built on BaseFileLock",
    "tests/test_fork_coordination.py": (
        "internals: filelock's at-fork machinery (callback registration order, audit hooks, descriptor "
        "transitions, BaseFileLock test backends)"
    ),
    "tests/test_fork_registries.py": "internals: filelock's per-class registries across fork and atexit",
}

NAME_RULES: Final[dict[str, str]] = {
    # Selected although a later rule would match.
    "tests/test_filelock.py::test_subclass_compatibility": KEEP,  # its SoftFileLock half is independent
    "tests/test_filelock.py::test_separate_lock_classes_keep_separate_registries": KEEP,  # FileLock's singleton
    "tests/test_filelock.py::test_filelock_and_descriptor_contend*": KEEP,  # lock_descriptor only as a probe
    # These two name SoftFileLock only in a Windows skip.
    "tests/test_filelock.py::test_threaded_shared_lock_obj[[]UnixFileLock]": KEEP,
    "tests/test_filelock.py::test_threaded_lock_different_lock_obj[[]UnixFileLock]": KEEP,
    # Its script builds a SoftFileLock only for the other parametrizations.
    "tests/test_fork_ownership.py::test_child_interpreter_exit_preserves_parent_lock[[]native]": KEEP,
    # Left out after reading.
    "tests/test_filelock.py::test_bad_lock_file[[]invalid_*": "Windows only (a character Windows forbids in names)",
    "tests/test_filelock.py::test_bad_lock_file[[]permission_*": "Windows only (a separator Windows refuses)",
    "tests/test_filelock.py::test_wrong_platform": "Windows: WindowsFileLock on Linux, and the private _release",
    "tests/test_filelock.py::test_poll_interval_used_by_context_manager*": _POLL,
    "tests/test_filelock.py::test_poll_interval_acquire_override*": _POLL,
    "tests/test_filelock.py::test_cancel_check_after_n_polls*": _POLL,
    "tests/test_filelock.py::test_import_succeeds_without_os_link": (
        "filelock's own import on a Python without os.link (StrictSoftFileLock)"
    ),
    "tests/test_filelock.py::test_lock_descriptor*": "lock_descriptor(), a separate function, is not compared",
    "tests/test_filelock.py::test_unlock_descriptor*": "unlock_descriptor(), a separate function, is not compared",
    "tests/test_default_mode.py::test_unset_file_mode_sentinel_value": "internals: the private _UNSET_FILE_MODE",
    "tests/test_default_mode.py::*[[]default*": (
        "passes filelock's private _UNSET_FILE_MODE sentinel (-1) as mode=; the 'explicit' twin and "
        "test_default_mode_respects_umask cover the public behaviour"
    ),
    "tests/test_fork_ownership.py::test_child_interpreter_exit_preserves_parent_lock[soft*]": _SOFT,
}

#: Fixture name -> reason.
FIXTURE_RULES: Final[dict[str, str]] = {
    "close_failure": (
        "implementation detail: simulates a failing close(2) by patching os.close for the descriptor "
        "filelock's Python code closes"
    ),
}

#: (pattern searched in the test's decorators, reason).
DECORATOR_RULES: Final[tuple[tuple[str, str], ...]] = ((r"^\s*@_WINDOWS_ONLY\b", "Windows only"),)

#: (pattern searched in the test's code from its ``def`` on, reason). The first match wins.
SOURCE_RULES: Final[tuple[tuple[str, str], ...]] = (
    (r"""["']filelock\._""", "implementation detail: patches a private filelock module"),
    (r"\bfilelock\._\w+", "internals: uses a private filelock module"),
    (r"\b(Async)?(Strict)?Soft(FileLock|ReadWriteLock|FileLease)\b", _SOFT),
    (r"\b(Async)?ReadWriteLock\b", _RW),
    (r"\bWindowsFileLock\b", "Windows only"),
    (r"\(\s*Base(Async)?FileLock\s*\)", "internals: implements filelock's abstract backend (a BaseFileLock subclass)"),
    (r"""mocker\.(patch|spy)\(\s*["'](os|fcntl)\.""", _OS_MOCK),
    (r"mocker\.spy\(\s*os\s*,", _OS_MOCK),
    (r"monkeypatch\.(setattr|delattr)\(\s*os\s*,", _OS_MOCK),
    (r"\b_fail_close_of\(|\b_close_after_commit\(", _OS_MOCK),
    (r"\._instances\b", "internals: reads filelock's private singleton registry"),
    (r"\b_registry\b", "internals: reads filelock's private deadlock registry"),
    (r"\._context\b", "internals: reads filelock's private per-thread lock context"),
    (r"\b(_append_exception_context|_raise_grouped_errors)\b", "internals: calls a private filelock helper"),
    (r"(?<!\bos)(?<!\bsys)\._[a-z]\w*\(", "internals: calls a private method"),
    (r"\block_descriptor\(", "lock_descriptor(), a separate function, is not compared"),
)

_DECORATORS: Final = tuple((re.compile(pattern, re.MULTILINE), reason) for pattern, reason in DECORATOR_RULES)
_CODE: Final = tuple((re.compile(pattern), reason) for pattern, reason in SOURCE_RULES)
_DEF_LINE: Final = re.compile(r"^(async\s+)?def\s", re.MULTILINE)


def file_reason(path: str) -> str | None:
    """The reason a whole test file (path relative to the suite's root, with ``/``) is left out."""
    for pattern, reason in FILE_RULES.items():
        if fnmatchcase(path, pattern):
            return f"file: {reason}"
    return None


def name_reason(nodeid: str) -> str | None:
    """``KEEP``, the reason one test is left out by name, or ``None`` when no name rule matches."""
    for pattern, reason in NAME_RULES.items():
        if fnmatchcase(nodeid, pattern):
            return KEEP if reason == KEEP else f"name: {reason}"
    return None


def parameter_reason(params: dict[str, object], compared: tuple[object, ...]) -> str | None:
    """The reason a parametrization is left out: one of its values is a filelock class not compared."""
    for name, value in params.items():
        module = getattr(value, "__module__", "") or ""
        if isinstance(value, type) and module.split(".")[0] == "filelock" and value not in compared:
            return f"parametrization: {name}={value.__name__}, which is not compared"
    return None


def fixture_reason(fixtures: list[str]) -> str | None:
    """The reason a test that uses one of ``FIXTURE_RULES``'s fixtures is left out."""
    for fixture, reason in FIXTURE_RULES.items():
        if fixture in fixtures:
            return f"fixture {fixture}: {reason}"
    return None


def source_reason(source: str) -> str | None:
    """The reason a test whose decorators match ``DECORATOR_RULES``, or whose code (from its ``def`` line on)
    matches ``SOURCE_RULES``, is left out, naming what matched."""
    definition = _DEF_LINE.search(source)
    split = definition.start() if definition else 0
    for text, rules in ((source[:split], _DECORATORS), (source[split:], _CODE)):
        for pattern, reason in rules:
            found = pattern.search(text)
            if found:
                return f"source ({found.group(0).strip()!r}): {reason}"
    return None


def exclusion_reason(
    nodeid: str,
    params: dict[str, object],
    fixtures: list[str],
    source: str,
    compared: tuple[object, ...],
) -> str | None:
    """Why the test ``nodeid`` is left out, or ``None`` if it is selected (rules in the module's order)."""
    path = nodeid.split("::", 1)[0]
    reason = file_reason(path)
    if reason is not None:
        return reason
    by_name = name_reason(nodeid)
    if by_name == KEEP:
        return None
    if by_name is not None:
        return by_name
    return parameter_reason(params, compared) or fixture_reason(fixtures) or source_reason(source)
