"""Inputs have one meaning in every API: identifiers, timeouts, modes and arguments of the wrong type are
refused with an error that says what was expected, before anything is touched."""

from __future__ import annotations

import pytest
from ferrolock import InvalidName, _ferrolock

pytestmark = pytest.mark.timeout(60)


def test_validate_name_refuses_an_unknown_label() -> None:
    """An unknown label was silently reported as "name"."""
    with pytest.raises(ValueError, match=r'^invalid kind of name "job-id"') as info:
        _ferrolock.validate_name("job-id", "ok")
    assert not isinstance(info.value, InvalidName)
    assert '"job id"' in str(info.value), "the message lists the known labels"


@pytest.mark.parametrize("label", ["job id", "task id", "loop name", "instance id"])
def test_invalid_name_messages_name_the_right_thing(label: str) -> None:
    with pytest.raises(InvalidName, match=rf'^invalid {label} "\.\./x"'):
        _ferrolock.validate_name(label, "../x")
    assert _ferrolock.validate_name(label, "ok-1") == "ok-1"
