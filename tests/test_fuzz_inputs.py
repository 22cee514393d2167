"""Hostile and broken input, generated: every reader of an untrusted file (STATE.md and its backup,
holder records, scope-claim records, the todo2 state) against the properties in ``fuzz_properties``.

A fixed, derandomized budget keeps ``make test`` quick and repeatable; ``make torture`` runs the same
properties on fresh random inputs for as long as it is told (``torture/test_fuzz_campaign.py``).
"""

from __future__ import annotations

import fuzz_properties as fp
import pytest
from ferrolock._state_md import WorkflowState
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.timeout(120)

QUICK = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@QUICK
@given(fp.any_text | fp.mangled_state_md().map(lambda b: b.decode("utf-8", "replace")))
def test_the_state_md_parser_accepts_any_text(text: str) -> None:
    fp.check_state_text(text)


@QUICK
@given(fp.valid_state())
def test_state_md_round_trips_every_task_and_note(state: WorkflowState) -> None:
    fp.check_round_trip(state)


@QUICK
@given(
    fp.valid_state(),
    st.lists(st.sampled_from(fp.MARKDOWN_LINES) | fp.any_text, max_size=4).map("\n".join),
    st.integers(0, 30),
)
def test_no_field_can_forge_tasks_statuses_notes_or_metadata(state: WorkflowState, field: str, where: int) -> None:
    fp.check_fields_cannot_forge(state, field, where)


@QUICK
@given(fp.state_md_bytes, st.none() | fp.state_md_bytes, fp.one_line)
def test_state_manager_over_any_state_and_backup_keeps_the_last_good_version(
    state: bytes, backup: bytes | None, note: str
) -> None:
    fp.check_state_files(state, backup, note)


@QUICK
@given(st.binary(max_size=600) | fp.claim_record_bytes())
def test_any_lock_file_content_is_at_worst_no_holder_record(data: bytes) -> None:
    fp.check_holder_bytes(data)


@QUICK
@given(fp.claim_record_bytes(), st.booleans())
def test_any_claim_record_is_judged_without_crashing_or_deleting_a_live_claim(data: bytes, nested: bool) -> None:
    fp.check_claim_bytes(data, nested)


@QUICK
@given(fp.todo2_state_bytes(), st.sampled_from(["T-1", "T-2", "T-9"]))
def test_todo2_calls_over_any_state_file_return_their_shapes_and_lose_nothing(data: bytes, task_id: str) -> None:
    fp.check_todo2_state(data, task_id)
