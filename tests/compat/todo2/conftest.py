"""Fixtures of the todo2 compat tests: a project root with a state file, and each implementation
(ferrolock's, and the legacy one when mirrors are available) so a test of a fixed legacy weakness can
show that it fails on the legacy code."""

from __future__ import annotations

from pathlib import Path

import pytest
from todo2_helpers import Impl, extract_legacy, load_impl, task, write_state


@pytest.fixture(scope="session")
def legacy_path(tmp_path_factory: pytest.TempPathFactory) -> str | None:
    """Where the legacy package was extracted, or ``None`` without ``FERROLOCK_MIRRORS``."""
    found = extract_legacy(tmp_path_factory.mktemp("legacy"))
    return None if found is None else str(found)


@pytest.fixture
def impl(request: pytest.FixtureRequest, legacy_path: str | None) -> Impl:
    """The implementation named by the test's ``impl`` parameter (default: ferrolock)."""
    name = getattr(request, "param", "ferrolock")
    if name == "legacy" and legacy_path is None:
        pytest.skip("legacy code not available (set FERROLOCK_MIRRORS to a folder of bare mirrors)")
    return load_impl(name, legacy_path)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root with three tasks (T-3 already assigned), selected through ``PROJECT_ROOT``."""
    write_state(
        tmp_path,
        [
            task("T-1", lastModified="2025-01-01T00:00:00.000Z"),
            task("T-2"),
            task("T-3", assignee={"type": "human", "name": "alice"}),
        ],
    )
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    monkeypatch.delenv("WORKSPACE_PATH", raising=False)
    return tmp_path
