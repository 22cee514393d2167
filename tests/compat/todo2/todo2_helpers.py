"""Helpers for the todo2 compat tests (also imported by ``bench/bench_todo2.py``): state files, the
legacy module extracted at run time, and spawn-importable workers.

The legacy code is never stored in this repository. When ``FERROLOCK_MIRRORS`` (or an explicit
argument) names a folder of ``<owner>+<repo>/repo`` bare mirrors, ``extract_legacy`` writes the three
legacy files into a temporary package so the same tests and benchmarks can run against them; without
mirrors those rows are skipped.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from types import ModuleType
from typing import Any, Final, NamedTuple

import pytest
from legacy_source import TODO2, read_legacy_file

LEGACY_PACKAGE: Final = "project_management_automation"
LEGACY_FILES: Final = ("file_lock.py", "task_locking.py", "project_root.py")
START_DEADLINE: Final = 30.0

#: ``impl`` parameters for a test of a fixed legacy weakness: the legacy code must fail it (strict), or
#: may fail it (a race, so not on every run).
LEGACY_FAILS = pytest.param("legacy", marks=pytest.mark.xfail(strict=True, reason="the legacy weakness this fixes"))
LEGACY_MAY_FAIL = pytest.param(
    "legacy", marks=pytest.mark.xfail(strict=False, reason="the legacy weakness this fixes (a race: not every run)")
)


class Impl(NamedTuple):
    """One implementation under test: its two modules."""

    name: str
    file_lock: ModuleType
    task_locking: ModuleType


def extract_legacy(dest: Path, mirrors: str | None = None) -> Path | None:
    """Write the legacy ``utils/{file_lock,task_locking,project_root}.py`` into a package under
    ``dest`` (with empty ``__init__`` files, so none of the legacy package's other imports run).

    Returns:
        The directory to put on ``sys.path``, or ``None`` if no mirror is available.
    """
    sources = {name: read_legacy_file(TODO2, name, mirrors) for name in LEGACY_FILES}
    if any(source is None for source in sources.values()):
        return None
    utils = dest / LEGACY_PACKAGE / "utils"
    utils.mkdir(parents=True, exist_ok=True)
    (dest / LEGACY_PACKAGE / "__init__.py").write_text("")
    (utils / "__init__.py").write_text("")
    for name, source in sources.items():
        (utils / name).write_bytes(source or b"")
    return dest


def load_impl(name: str, legacy_path: str | None = None) -> Impl:
    """``"ferrolock"`` or ``"legacy"`` (with the directory ``extract_legacy`` returned)."""
    if name == "ferrolock":
        prefix = "ferrolock.compat.todo2"
    else:
        assert legacy_path is not None
        if legacy_path not in sys.path:
            sys.path.insert(0, legacy_path)
        prefix = f"{LEGACY_PACKAGE}.utils"
    return Impl(name, importlib.import_module(f"{prefix}.file_lock"), importlib.import_module(f"{prefix}.task_locking"))


def task(task_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": task_id, "name": f"task {task_id}", "status": "Todo", **extra}


def write_state(root: Path, todos: list[dict[str, Any]], **top: Any) -> Path:
    """``<root>/.todo2/state.todo2.json`` in the layout todo2 itself writes (``indent=2``)."""
    state = {"todos": todos, "lastModified": "2025-01-01T00:00:00.000Z", "project": {"name": "p"}, **top}
    path = root / ".todo2" / "state.todo2.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2))
    return path


def padded_todos(ids: list[str], padding: int) -> list[dict[str, Any]]:
    """``ids`` plus ``padding`` filler tasks with a description, so the file is big enough that writes
    take long enough to overlap (as a real todo2 state file with history does)."""
    filler = [task(f"F-{i}", description="x" * 400, tags=["a", "b"]) for i in range(padding)]
    return [task(i) for i in ids] + filler


def load_state(root: Path) -> dict[str, Any]:
    return json.loads((root / ".todo2" / "state.todo2.json").read_text())  # type: ignore[no-any-return]


def assignees(root: Path) -> dict[str, str]:
    """Task id -> assignee name, for the assigned tasks."""
    return {t["id"]: t["assignee"]["name"] for t in load_state(root)["todos"] if t.get("assignee")}


# --- workers (spawned processes) -----------------------------------------------------------------


class Where(NamedTuple):
    """Which implementation a worker imports, and the project root it works in."""

    impl: str
    legacy_path: str | None
    root: str

    def modules(self) -> Impl:
        # Both implementations log failures with a traceback; the results carry the message, and a
        # race of legacy workers would otherwise flood the terminal.
        logging.getLogger().addHandler(logging.NullHandler())
        os.environ["PROJECT_ROOT"] = self.root
        return load_impl(self.impl, self.legacy_path)


def assign_worker(where: Where, task_id: str, name: str, start: Event, out: Queue[Any]) -> None:
    """``atomic_assign_task(task_id, name)`` once ``start`` is set; puts ``(name, result)``."""
    modules = where.modules()
    start.wait(START_DEADLINE)
    out.put((name, modules.task_locking.atomic_assign_task(task_id, name, timeout=60.0)))


def batch_worker(where: Where, task_ids: list[str], name: str, start: Event, out: Queue[Any]) -> None:
    """``atomic_batch_assign(task_ids, name)`` once ``start`` is set; puts ``(name, result)``."""
    modules = where.modules()
    start.wait(START_DEADLINE)
    out.put((name, modules.task_locking.atomic_batch_assign(task_ids, name, timeout=60.0)))


def read_until(path: str, stop: Event, reads: Synchronized[int], torn: Synchronized[int]) -> None:
    """Read and parse ``path`` without any lock until ``stop``; count reads and unparseable reads."""
    while not stop.is_set():
        try:
            with open(path, "rb") as fh:
                json.loads(fh.read())
        except FileNotFoundError:
            torn.value += 1  # the legacy writer never removes the file; neither may ferrolock
        except ValueError:
            torn.value += 1
        reads.value += 1
        time.sleep(0.0005)


def hold_and_fork(impl: str, legacy_path: str | None, path: str, child_done: Event, release: Event) -> None:
    """Take ``path`` with the implementation's ``FileLock``, fork a child that releases the inherited
    object every way it can (``release()``, ``del`` plus garbage collection), then hold until told."""
    import gc

    lock = load_impl(impl, legacy_path).file_lock.FileLock(Path(path), timeout=1.0)
    if not lock.acquire():
        raise SystemExit("could not take the lock")
    pid = os.fork()
    if pid == 0:
        try:
            lock.release()
            del lock
            gc.collect()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    child_done.set()
    release.wait(START_DEADLINE * 4)
    lock.release()
