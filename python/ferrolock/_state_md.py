"""BlackBox5's ``STATE.md`` format: the ``TaskState`` and ``WorkflowState`` dataclasses, rendering,
parsing and validation.

Rendering and parsing happen in the Rust core (``src/state_md/``), in one pass over the file. The
dataclasses may hold values of any kind (the legacy code formatted each with an f-string): the binding
converts each with Python's own semantics (``format(value)``, truthiness, ``dict`` grouping and
``sorted()`` of wave values, ``", ".join`` of the file list) before handing it to the one renderer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._ferrolock import (
    _parse_state_md,
    _render_state_md,
    _render_task,
    _state_md_corruption,
    _state_md_decode,
    _state_md_validate,
)

__all__ = [
    "TIMESTAMP_FORMAT",
    "TaskState",
    "WorkflowState",
    "corruption",
    "decode_state",
    "parse_workflow",
    "validate_markdown",
]

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass
class TaskState:
    """State of a single task (one ``- [ ] **id**: description`` line and its detail lines)."""

    task_id: str
    description: str
    status: str  # pending, in_progress, completed, failed
    wave_id: int
    files_modified: list[str] = field(default_factory=list)
    commit_hash: str | None = None
    error: str | None = None

    def to_markdown(self) -> str:
        """The task line, then ``Commit``, ``Files`` (first three, then a count) and ``Error`` lines."""
        return _render_task(self)


@dataclass
class WorkflowState:
    """A whole ``STATE.md``: header, tasks by status, notes and metadata."""

    workflow_id: str
    workflow_name: str
    current_wave: int
    total_waves: int
    tasks: dict[str, TaskState]
    started_at: datetime
    updated_at: datetime
    notes: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_markdown(self) -> str:
        """The ``STATE.md`` content: the legacy bytes, except that pending tasks of the current or an
        earlier wave are written instead of silently dropped, and a line break inside a field is written
        as a space.

        Raises:
            TypeError: a value the legacy code could not format either (an entry of ``files_modified``
                that is not a ``str``; wave numbers that cannot be compared or divided).
            ValueError: the progress bar would be absurdly long (``Wave 10**9/1``).
        """
        return _render_state_md(
            self, self.started_at.strftime(TIMESTAMP_FORMAT), self.updated_at.strftime(TIMESTAMP_FORMAT)
        )


def parse_workflow(
    content: str | bytes, now: Callable[[], datetime] = datetime.now, *, tasks: bool = True
) -> WorkflowState:
    """Parse ``STATE.md`` content, text or UTF-8 bytes (never fails on odd content: it gives the legacy
    defaults). A missing timestamp becomes ``now()``, as in the legacy parser. ``tasks=False`` skips
    the task lines (for callers that only need the header, notes and metadata).

    Raises:
        ValueError: ``content`` is bytes that are not UTF-8.
    """
    parsed = _parse_state_md(content, tasks=tasks, task_class=TaskState if tasks else None)
    return WorkflowState(
        workflow_id=parsed.workflow_id,
        workflow_name=parsed.workflow_name,
        current_wave=parsed.current_wave,
        total_waves=parsed.total_waves,
        tasks=parsed.tasks,
        started_at=datetime.fromisoformat(parsed.started) if parsed.started else now(),
        updated_at=datetime.fromisoformat(parsed.updated) if parsed.updated else now(),
        notes=parsed.notes,
        metadata=parsed.metadata,
    )


def decode_state(data: bytes) -> tuple[str | None, str | None]:
    """``(text, None)`` for usable ``STATE.md`` content, ``(None, reason)`` for content that cannot be a
    ``STATE.md`` at all (empty, not UTF-8, nothing a parser could recover)."""
    return _state_md_decode(data)


def corruption(data: bytes) -> str | None:
    """Why ``data`` cannot be a ``STATE.md`` at all, or ``None``."""
    return _state_md_corruption(data)


def validate_markdown(content: str | bytes) -> list[str]:
    """The legacy warnings, in the legacy order and wording (an empty list for a valid file)."""
    return _state_md_validate(content)
