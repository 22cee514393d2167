"""The todo2 project-root lookup (``project_management_automation.utils.project_root``).

Same precedence as the legacy function: ``PROJECT_ROOT`` (or, only when that is unset,
``WORKSPACE_PATH``) if the path exists; otherwise the nearest directory holding one of the marker files,
searching up from ``start_path``, or from the working directory and then from the directory that holds
the installed package; failing all of that, the working directory.

Difference from the legacy function: the result is cached per working directory instead of once per
process, so a ``chdir`` after the first lookup is honoured (the legacy cache kept the first answer for
the life of the process).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["MARKERS", "find_project_root"]

#: Files or directories whose presence marks a project root, in the legacy order.
MARKERS = (".git", ".todo2", "CMakeLists.txt", "go.mod", "pyproject.toml")

# Working directory -> root found from it. A lookup walks the tree with a handful of stat calls per
# level; callers ask for the root on every operation, so the answer is remembered, but per directory.
_root_by_cwd: dict[Path, Path] = {}


def find_project_root(start_path: Path | str | None = None) -> Path:
    """Return the project root (see the module docstring for the precedence)."""
    env_root = os.getenv("PROJECT_ROOT") or os.getenv("WORKSPACE_PATH")
    if env_root:
        env_path = Path(env_root)
        if env_path.exists():
            return env_path.resolve()
    if start_path is not None:
        return _search_up(Path(start_path)) or Path(start_path).resolve()
    cwd = Path.cwd()
    cached = _root_by_cwd.get(cwd)
    if cached is not None:
        return cached
    # The legacy module searched from its own package's parent directory (the checkout or
    # site-packages it was installed in); the analogue here is the directory that holds `ferrolock`.
    package_home = Path(__file__).resolve().parents[3]
    root = _search_up(cwd) or _search_up(package_home) or cwd
    _root_by_cwd[cwd] = root
    return root


def _search_up(path: Path) -> Path | None:
    """The nearest directory at or above ``path`` holding a marker (the filesystem root is not
    checked, as in the legacy code)."""
    current = path.resolve()
    while current != current.parent:
        if any((current / marker).exists() for marker in MARKERS):
            return current
        current = current.parent
    return None
