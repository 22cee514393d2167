"""Shared fixtures. Cross-process helpers live in tests/process_helpers.py."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return tmp_path / "locks" / "a.lock"


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    # Lock objects release in their destructor; collect between tests so one test's leftovers never
    # hold a lock another test waits for (filelock does the same).
    yield
    gc.collect()
