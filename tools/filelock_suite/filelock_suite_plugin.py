"""pytest plugin for the filelock-suite comparison (loaded with ``-p filelock_suite_plugin``).

It deselects every test that ``selection`` leaves out, recording the reason; names parametrizations the same
way in both runs (``ferrolock.FileLock`` is ``UnixFileLock`` in a test id, as filelock's class is); checks
that the ferrolock run really runs on ferrolock; and writes one JSON file with each selected test's outcome
to ``$FILELOCK_SUITE_RESULTS``.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any

import ferrolock_filelock_shim as shim
import filelock
import pytest
import selection

_RESULTS: dict[str, dict[str, Any]] = {}
_EXCLUDED: list[dict[str, str]] = []
_OWNER_PID = os.getpid()


def _compared() -> tuple[object, ...]:
    """filelock's own compared objects, and ferrolock's replacements when the shim is active."""
    originals = shim.ORIGINALS or {name: getattr(filelock, name) for name in selection.COMPARED_NAMES}
    return (*originals.values(), *shim.REPLACEMENTS.values())


def pytest_configure(config: pytest.Config) -> None:
    if not shim.active():
        return
    import ferrolock

    if filelock.FileLock is not ferrolock.FileLock or filelock.Timeout is not ferrolock.Timeout:
        pytest.exit("the ferrolock run is not using ferrolock's FileLock and Timeout", returncode=3)
    config.stash[_ferrolock_key] = str(Path(ferrolock.__file__).parent)


_ferrolock_key = pytest.StashKey[str]()


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    del config, argname
    return shim.original_name(val)


def _source(item: pytest.Item) -> str:
    function = getattr(item, "function", None)
    if function is None:
        return ""
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return ""


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    del session
    compared = _compared()
    selected: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = dict(callspec.params) if callspec is not None else {}
        fixtures = list(getattr(item, "fixturenames", ()))
        reason = selection.exclusion_reason(item.nodeid, params, fixtures, _source(item), compared)
        if reason is None:
            selected.append(item)
        else:
            deselected.append(item)
            _EXCLUDED.append({"id": item.nodeid, "reason": reason})
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    items[:] = selected


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if os.getpid() != _OWNER_PID:  # a forked child that came back through pytest's hooks
        return
    entry = _RESULTS.setdefault(report.nodeid, {"outcome": "passed", "message": "", "duration": 0.0})
    entry["duration"] = round(entry["duration"] + report.duration, 4)
    if report.when == "call" and hasattr(report, "wasxfail"):
        entry["outcome"] = "xfailed" if report.skipped else "xpassed"
        entry["message"] = str(report.wasxfail)
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"
        entry["message"] = _message(report)
    elif report.failed and entry["outcome"] not in {"failed", "error"}:
        # A failure in setup or teardown is an error, one in the test itself a failure; the first one counts.
        entry["outcome"] = "failed" if report.when == "call" else "error"
        entry["message"] = _message(report)


def _message(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (file, line, reason)
        return str(longrepr[2])
    crash = getattr(longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(longrepr)
    return " ".join(text.split())[:400]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.getpid() != _OWNER_PID:
        return
    target = os.environ.get("FILELOCK_SUITE_RESULTS")
    if not target:
        return
    payload = {
        "implementation": "ferrolock" if shim.active() else "filelock",
        "implementation_path": session.config.stash.get(_ferrolock_key, str(Path(filelock.__file__).parent)),
        "filelock_version": filelock.__version__,
        "exitstatus": int(exitstatus),
        "results": _RESULTS,
        "excluded": _EXCLUDED,
    }
    Path(target).write_text(json.dumps(payload, indent=1, sort_keys=True), encoding="utf-8")
