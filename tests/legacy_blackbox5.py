"""The legacy BlackBox5 ``state_manager`` module, for tests that show ferrolock fixes what it got wrong.

Nothing legacy is stored in this repository: the one file is extracted at run time from a bare git mirror
of ``Lordsisodia/blackbox5`` found under ``$FERROLOCK_MIRRORS`` (the folder holding
``<owner>+<repo>/repo``), into a temporary directory. Without the mirror, ``legacy_module()`` returns
``None`` and the legacy variants of the tests skip.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from legacy_source import BLACKBOX5, load_module_from_file, read_legacy_file

MODULE_NAME = "legacy_blackbox5_state_manager"


def legacy_source_dir() -> Path | None:
    """A directory holding the legacy file as ``legacy_blackbox5_state_manager.py``, or ``None``."""
    return _extract()


@functools.cache
def _extract() -> Path | None:
    source = read_legacy_file(BLACKBOX5)
    if source is None:
        return None
    directory = Path(tempfile.mkdtemp(prefix="ferrolock-legacy-"))
    (directory / f"{MODULE_NAME}.py").write_bytes(source)
    return directory


def legacy_module() -> ModuleType | None:
    """The legacy module, imported from the extracted file (once per process), or ``None``."""
    directory = _extract()
    if directory is None:
        return None
    return load_module_from_file(directory / f"{MODULE_NAME}.py", MODULE_NAME)


def impls(legacy_failure: str) -> list[Any]:
    """Parameters ``"ferrolock"`` and ``"legacy"`` for a test of a legacy weakness: the legacy variant
    skips without a mirror and must fail (strict xfail) with one, which proves the test can fail."""
    return [
        pytest.param("ferrolock", id="ferrolock"),
        pytest.param(
            "legacy",
            id="legacy",
            marks=[
                pytest.mark.skipif(legacy_module() is None, reason="legacy module not available (FERROLOCK_MIRRORS)"),
                pytest.mark.xfail(strict=True, reason=f"legacy: {legacy_failure}"),
            ],
        ),
    ]
