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


def read_legacy_file(repo: str, commit: str, path: str, mirrors: str | None = None) -> bytes | None:
    """The bytes of ``path`` at ``commit`` in the mirror of ``repo`` (``owner+name``), or ``None`` if no
    mirror is available or it lacks that file."""
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


def extract_legacy_module(
    repo: str, commit: str, path: str, *, into: Path, name: str, mirrors: str | None = None
) -> ModuleType | None:
    """The single-file legacy module ``path`` written to ``<into>/<name>.py`` and imported as ``name``,
    or ``None`` without a mirror."""
    source = read_legacy_file(repo, commit, path, mirrors)
    if source is None:
        return None
    target = into / f"{name}.py"
    target.write_bytes(source)
    return load_module_from_file(target, name)
