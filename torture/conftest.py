"""Torture runs: how long each storm lasts comes from FERROLOCK_TORTURE_SECONDS (``make torture`` sets a
long run, ``make torture-ci`` a bounded one). Every storm reports its figures to torture/figures.jsonl
so the README's reliability section can quote them."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

FIGURES = Path(os.environ.get("FERROLOCK_TORTURE_FIGURES", Path(__file__).parent / "figures.jsonl"))


def storm_seconds() -> float:
    return float(os.environ.get("FERROLOCK_TORTURE_SECONDS", "5"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every storm is bounded: its own duration plus generous set-up and verification time.
    for item in items:
        item.add_marker(pytest.mark.timeout(storm_seconds() * 3 + 180))


@pytest.fixture
def report() -> Any:
    """Append one JSON line of figures for the README (operations, kills, losses, ...)."""

    def write(name: str, **figures: Any) -> None:
        with FIGURES.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"storm": name, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **figures}))
            fh.write("\n")

    return write
