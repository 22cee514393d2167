"""Fuzz campaigns: the properties of ``tests/fuzz_properties.py`` on fresh random inputs, in batches,
for as long as the torture run allows each one (``make test`` runs them on a fixed quick budget).

A failure prints hypothesis's minimal example and the seed to reproduce it; the figures count every
input tried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import fuzz_properties as fp
import pytest
from conftest import storm_seconds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

BATCH = settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))

CAMPAIGNS: dict[str, tuple[Callable[..., None], tuple[st.SearchStrategy[Any], ...]]] = {
    "STATE.md parser (any text)": (
        fp.check_state_text,
        (fp.any_text | fp.mangled_state_md().map(lambda b: b.decode("utf-8", "replace")),),
    ),
    "STATE.md round trip": (fp.check_round_trip, (fp.valid_state(),)),
    "STATE.md fields cannot forge structure": (
        fp.check_fields_cannot_forge,
        (
            fp.valid_state(),
            st.lists(st.sampled_from(fp.MARKDOWN_LINES) | fp.any_text, max_size=4).map("\n".join),
            st.integers(0, 30),
        ),
    ),
    "StateManager over corrupt STATE.md and backup": (
        fp.check_state_files,
        (fp.state_md_bytes, st.none() | fp.state_md_bytes, fp.one_line),
    ),
    "holder records": (fp.check_holder_bytes, (st.binary(max_size=600) | fp.claim_record_bytes(),)),
    "scope claim records": (fp.check_claim_bytes, (fp.claim_record_bytes(), st.booleans())),
    "todo2 state file": (fp.check_todo2_state, (fp.todo2_state_bytes(), st.sampled_from(["T-1", "T-2", "T-9"]))),
}


@pytest.fixture(autouse=True)
def _quiet_loggers() -> Iterator[None]:
    # Corrupt inputs make the state code log a warning per example; the campaign only counts them.
    logger = logging.getLogger("ferrolock")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


@pytest.mark.parametrize("name", list(CAMPAIGNS))
def test_fuzz_campaign(name: str, report: Callable[..., None]) -> None:
    check, strategies = CAMPAIGNS[name]
    tried = 0

    @BATCH
    @given(st.tuples(*strategies))
    def batch(args: tuple[Any, ...]) -> None:
        nonlocal tried
        tried += 1
        check(*args)

    deadline = time.monotonic() + storm_seconds()
    batches = 0
    while time.monotonic() < deadline:
        batch()
        batches += 1
    assert tried >= batches, "hypothesis generated nothing"
    report(f"fuzz: {name}", seconds=storm_seconds(), inputs=tried, failures=0)
