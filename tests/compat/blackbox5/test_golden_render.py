"""``STATE.md`` bytes against golden files the legacy module wrote (``golden_render.json``; how to regenerate
it is in ``golden_cases.py``). These run everywhere, CI included; with ``FERROLOCK_MIRRORS`` set, the last
test also checks that the golden file is still what the legacy module writes for the cases."""

from __future__ import annotations

import json
import random
import re
from decimal import Decimal
from pathlib import Path

import golden_cases
import legacy_blackbox5 as legacy
import pytest
from ferrolock._state_md import decode_state, validate_markdown
from ferrolock.compat import blackbox5
from ferrolock.compat.blackbox5 import StateManager, TaskState, WorkflowState

pytestmark = pytest.mark.timeout(60)

GOLDEN: dict[str, str] = json.loads(golden_cases.GOLDEN_FILE.read_text(encoding="utf-8"))
OURS = golden_cases.render_cases(blackbox5)
LEGACY = legacy.legacy_module()


def test_every_case_has_a_golden_output() -> None:
    calls = {f"call_{i}_{method}" for i, (method, _) in enumerate(golden_cases.CALLS)}
    assert set(GOLDEN) == set(OURS) | calls, "a case was added or removed: regenerate golden_render.json"


@pytest.mark.parametrize("name", sorted(OURS))
def test_rendering_is_the_legacy_bytes(name: str) -> None:
    assert OURS[name] == GOLDEN[name]


def test_update_and_initialize_write_the_legacy_bytes() -> None:
    ours = golden_cases.call_outputs(blackbox5)
    for name, text in ours.items():
        assert text == GOLDEN[name], name


def test_a_file_list_with_a_non_string_among_the_first_three_is_refused_like_the_legacy_join() -> None:
    task = TaskState("t", "d", "completed", 1, ["a.py", 7])
    with pytest.raises(TypeError, match="expected str instance, int found"):
        task.to_markdown()
    state = WorkflowState("wf", "n", 1, 2, {"t": task}, golden_cases.T0, golden_cases.T1)
    with pytest.raises(TypeError, match="expected str instance, int found"):
        state.to_markdown()
    # Beyond the third entry nothing is shown, and nothing is checked (as in the legacy code).
    TaskState("t", "d", "completed", 1, ["a", "b", "c", 4]).to_markdown()


def test_values_python_cannot_compare_or_divide_raise_what_the_legacy_code_raised() -> None:
    state = WorkflowState("wf", "n", 1, "two", {}, golden_cases.T0, golden_cases.T1)
    with pytest.raises(TypeError, match="'>' not supported"):
        state.to_markdown()
    tasks = {"a": TaskState("a", "A", "completed", 1), "b": TaskState("b", "B", "completed", "2")}
    state = WorkflowState("wf", "n", 1, 2, tasks, golden_cases.T0, golden_cases.T1)
    with pytest.raises(TypeError, match="'<' not supported"):
        state.to_markdown()


@pytest.mark.parametrize(("current", "total"), [(10**400, 1), (float("inf"), 1.0), (Decimal("1e30"), 1)])
def test_an_absurd_progress_bar_is_a_clear_error_not_a_memory_error(current: object, total: object) -> None:
    state = WorkflowState("wf", "n", current, total, {}, golden_cases.T0, golden_cases.T1)  # type: ignore[arg-type]
    with pytest.raises((ValueError, OverflowError), match=r"progress|too large|infinity"):
        state.to_markdown()


@pytest.mark.skipif(LEGACY is None, reason="legacy module not available (set FERROLOCK_MIRRORS)")
def test_the_golden_file_is_what_the_legacy_module_writes(tmp_path: Path) -> None:
    assert golden_cases.render_cases(LEGACY) == {name: GOLDEN[name] for name in OURS}
    assert golden_cases.call_outputs(LEGACY) == {name: GOLDEN[name] for name in GOLDEN if name.startswith("call_")}
    assert StateManager is blackbox5.StateManager


def _legacy_validate(content: str) -> list[str]:
    """The legacy ``validate_markdown``, as the legacy module wrote it (regular expressions)."""
    errors = []
    if not re.search(r"^# Workflow:", content, re.MULTILINE):
        errors.append("Missing '# Workflow:' header")
    if not re.search(r"Wave\s+\d+/\d+", content):
        errors.append("Missing 'Wave X/Y' status line")
    if not re.search(r"^## ", content, re.MULTILINE):
        errors.append("Missing sections (## Completed, ## In Progress, etc.)")
    invalid = re.findall(r"^- \[[^x~ ]\]", content, re.MULTILINE)
    if invalid:
        errors.append(f"Invalid checkbox format in {len(invalid)} lines")
    for needle, message in (
        ("Workflow ID:", "Missing Workflow ID"),
        ("Started:", "Missing Started timestamp"),
        ("Updated:", "Missing Updated timestamp"),
    ):
        if needle not in content:
            errors.append(message)
    return errors


def test_validation_gives_the_legacy_warnings_for_text_and_bytes() -> None:
    pieces = ["# Workflow: x", "Wave", " ", "\u00a0", "\t", "1", "22", "/", "3", "\n", "\r", "## ", "- [", "z",
              "x", "~", "]", "Workflow ID:", "Started:", "Updated:", "é", "🎉", "Wave 2/4", "  - [q] x"]  # fmt: skip
    rnd = random.Random(7)
    for _ in range(3000):
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 25)))
        assert validate_markdown(text) == _legacy_validate(text), repr(text)
        assert validate_markdown(text.encode()) == _legacy_validate(text), repr(text)
    assert StateManager().validate_markdown(GOLDEN["call_1_update"]) == []


def test_undecodable_bytes_are_worded_as_pythons_decoder_words_them() -> None:
    rnd = random.Random(11)
    alphabet = [b"# Workflow: a\n", b"Wave 1/2", b"\xc3\xa9", b"\xe2\x9c\x85", b"\xff", b"\xc3", b"\xe2\x9c", b"\x80",
                b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"x"]  # fmt: skip
    for _ in range(3000):
        data = b"".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 8)))
        text, reason = decode_state(data)
        python_error = _decode_error(data)
        if python_error is not None:
            assert (text, reason) == (None, f"not valid UTF-8 ({python_error})"), data
        else:
            assert text == (data.decode() if reason is None else None), data


def _decode_error(data: bytes) -> str | None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"{exc.reason} at byte {exc.start}"
    return None
