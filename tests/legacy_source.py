"""Where tests and benchmarks find the legacy modules ferrolock replaces.

Their code is never stored in this repository. When ``FERROLOCK_MIRRORS`` (or an explicit argument) names
a folder of bare git mirrors laid out as ``<owner>+<repo>/repo``, a file is read from the pinned commit at
run time; without one, callers skip their legacy comparisons (CI has no mirrors).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Final, NamedTuple


class Legacy(NamedTuple):
    """Where one legacy module lives: its mirror (``owner+name``), the commit its compat spec was written
    from, and its file (for todo2, the folder of its three files)."""

    repo: str
    commit: str
    path: str


LOGIST: Final = Legacy("jjurach+logist", "fd06cdd849c0095f5db3b0867d43a4b21aee2c3f", "src/logist/core/locking.py")
BLACKBOX5: Final = Legacy(
    "Lordsisodia+blackbox5", "3edb7e110cdbafc4e4152146e5b301cf7d361cde", "2-engine/01-core/state/state_manager.py"
)
LITTLE_LOOPS: Final = Legacy(
    "BrennonTWilliams+little-loops",
    "a12b9397defccd53f12deafd9553884467465f24",
    "scripts/little_loops/fsm/concurrency.py",
)
TODO2: Final = Legacy(
    "davidl71+project-management-automation",
    "2f21c87e1c962a5d02c07bb0dedfd7af084637f6",
    "project_management_automation/utils",
)


def read_legacy_file(legacy: Legacy, name: str | None = None, mirrors: str | None = None) -> bytes | None:
    """The bytes of ``legacy``'s file (or of the file ``name`` in its folder) at its pinned commit, or
    ``None`` if no mirror is available or it lacks that file."""
    repo, commit, path = legacy
    if name is not None:
        path = f"{path}/{name}"
    mirrors = mirrors or os.environ.get("FERROLOCK_MIRRORS")
    if not mirrors:
        return None
    git_dir = Path(mirrors) / repo / "repo"
    if not (git_dir / "HEAD").exists():
        return None
    try:
        shown = subprocess.run(
            ["git", f"--git-dir={git_dir}", "show", f"{commit}:{path}"],
            capture_output=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return shown.stdout if shown.returncode == 0 else None


def load_module_from_file(path: str | Path, name: str) -> ModuleType:
    """Import the Python file at ``path`` as module ``name`` (once per process: a second call returns the
    module already loaded), so the tests can run a legacy module, extracted from its mirror, side by side
    with ferrolock's compat module."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def extract_legacy_module(legacy: Legacy, *, into: Path, name: str, mirrors: str | None = None) -> ModuleType | None:
    """The single-file legacy module written to ``<into>/<name>.py`` and imported as ``name``, or
    ``None`` without a mirror."""
    source = read_legacy_file(legacy, mirrors=mirrors)
    if source is None:
        return None
    target = into / f"{name}.py"
    target.write_bytes(source)
    return load_module_from_file(target, name)
