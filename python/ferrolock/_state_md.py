"""BlackBox5's ``STATE.md`` format: the ``TaskState`` and ``WorkflowState`` dataclasses, rendering,
parsing and validation.

Rendering and parsing run in the Rust core (``src/workflow/``), which is linear in the file size. The
dataclasses may hold values of any type (the legacy code formatted each with an f-string); for the rare
shapes the native renderer does not read (``str`` subclasses, non-``int`` wave numbers, huge numbers),
``_render_reference`` below renders the same bytes in Python.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._ferrolock import _parse_workflow, _render_workflow, _workflow_bad_checkboxes, _workflow_corruption

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

_CHECKBOX = {"completed": "[x]", "in_progress": "[~]", "pending": "[ ]", "failed": "[ ]"}


def _line(value: Any) -> str:
    """``value`` formatted on one line: each line break becomes a space, as the Rust renderer writes
    it (``text::one_line``), so a multi-line field cannot forge tasks, statuses or sections."""
    text = f"{value}"
    parts = text.splitlines()
    return text if parts == [text] else " ".join(parts)


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
        lines = [f"- {_CHECKBOX.get(self.status, '[ ]')} **{_line(self.task_id)}**: {_line(self.description)}"]
        if self.commit_hash:
            lines.append(f"  - Commit: `{_line(self.commit_hash)}`")
        if self.files_modified:
            # (a non-str entry still raises TypeError in join, as in the legacy code)
            shown = ", ".join(_line(f) if isinstance(f, str) else f for f in self.files_modified[:3])
            if len(self.files_modified) > 3:
                shown += f" (+{len(self.files_modified) - 3} more)"
            lines.append(f"  - Files: {shown}")
        if self.error:
            lines.append(f"  - Error: {_line(self.error)}")
        return "\n".join(lines)


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
        earlier wave are written instead of silently dropped."""
        started = self.started_at.strftime(TIMESTAMP_FORMAT)
        updated = self.updated_at.strftime(TIMESTAMP_FORMAT)
        text = _render_workflow(self, started, updated)
        return text if text is not None else _render_reference(self, started, updated)


def _render_reference(ws: WorkflowState, started: str, updated: str) -> str:
    """The format in Python, for values the native renderer does not read."""
    lines = [
        f"# Workflow: {_line(ws.workflow_name)}",
        "",
        f"**Workflow ID:** `{_line(ws.workflow_id)}`",
        f"**Status:** Wave {ws.current_wave}/{ws.total_waves}",
        f"**Started:** {started}",
        f"**Updated:** {updated}",
        "",
        "---",
        "",
    ]
    if ws.total_waves > 0:
        progress = ws.current_wave / ws.total_waves
        filled = int(progress * 20)
        lines += [f"**Progress:** `{'█' * filled}{'░' * (20 - filled)}` {int(progress * 100)}%", ""]
    by_status: dict[str, list[TaskState]] = {s: [] for s in ("completed", "in_progress", "pending", "failed")}
    for task in ws.tasks.values():
        if task.status in by_status:
            by_status[task.status].append(task)

    completed = by_status["completed"]
    if completed:
        lines += [f"## ✅ Completed ({len(completed)} tasks)", ""]
        waves = _by_wave(completed)
        for wave in sorted(waves):
            if len(waves) > 1:
                lines.append(f"### Wave {wave}")
            for task in waves[wave]:
                lines += [task.to_markdown(), ""]
        lines.append("")
    _flat_section(lines, "## 🔄 In Progress", by_status["in_progress"])
    pending = by_status["pending"]
    if pending:
        lines += [f"## 📋 Pending ({len(pending)} tasks)", ""]
        waves = _by_wave(pending)
        for wave in sorted(waves):  # every wave: the legacy code dropped those up to the current one
            lines.append(f"### Wave {wave}")
            lines += [f"- [ ] **{_line(task.task_id)}**: {_line(task.description)}" for task in waves[wave]]
            lines.append("")
        lines.append("")
    _flat_section(lines, "## ❌ Failed", by_status["failed"])
    if ws.notes:
        lines.extend(["## Notes", "", *(f"- {_line(note)}" for note in ws.notes), ""])
    if ws.metadata:
        lines.extend(["## Metadata", "", *(f"- **{_line(k)}:** {_line(v)}" for k, v in ws.metadata.items()), ""])
    return "\n".join(lines)


def _by_wave(tasks: list[TaskState]) -> dict[Any, list[TaskState]]:
    waves: dict[Any, list[TaskState]] = {}
    for task in tasks:
        waves.setdefault(task.wave_id, []).append(task)
    return waves


def _flat_section(lines: list[str], title: str, tasks: list[TaskState]) -> None:
    if tasks:
        lines += [f"{title} ({len(tasks)} tasks)", ""]
        for task in tasks:
            lines += [task.to_markdown(), ""]
        lines.append("")


def parse_workflow(content: str, now: Callable[[], datetime] = datetime.now, *, tasks: bool = True) -> WorkflowState:
    """Parse ``STATE.md`` content (never fails on odd content: it gives the legacy defaults). A missing
    timestamp becomes ``now()``, as in the legacy parser. ``tasks=False`` skips building the task
    objects (for callers that only need the header, notes and metadata)."""
    parsed = _parse_workflow(content, tasks=tasks)
    name, workflow_id, current, total, started, updated, raw_tasks, notes, metadata = parsed
    return WorkflowState(
        workflow_id=workflow_id,
        workflow_name=name,
        current_wave=current,
        total_waves=total,
        tasks={raw[0]: TaskState(*raw) for raw in raw_tasks},
        started_at=datetime.fromisoformat(started) if started else now(),
        updated_at=datetime.fromisoformat(updated) if updated else now(),
        notes=notes,
        metadata=metadata,
    )


def decode_state(data: bytes) -> tuple[str | None, str | None]:
    """``(text, None)`` for usable ``STATE.md`` content, ``(None, reason)`` for content that cannot be a
    ``STATE.md`` at all (empty, not UTF-8, nothing a parser could recover)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not valid UTF-8 ({exc.reason} at byte {exc.start})"
    reason = _workflow_corruption(text)
    return (None, reason) if reason else (text, None)


def corruption(data: bytes) -> str | None:
    """Why ``data`` cannot be a ``STATE.md`` at all, or ``None``."""
    return decode_state(data)[1]


_HEADER = re.compile(r"^# Workflow:", re.MULTILINE)
_STATUS = re.compile(r"Wave\s+\d+/\d+")
_SECTION = re.compile(r"^## ", re.MULTILINE)


def validate_markdown(content: str) -> list[str]:
    """The legacy warnings, in the legacy order and wording (an empty list for a valid file)."""
    errors = []
    if not _HEADER.search(content):
        errors.append("Missing '# Workflow:' header")
    if not _STATUS.search(content):
        errors.append("Missing 'Wave X/Y' status line")
    if not _SECTION.search(content):
        errors.append("Missing sections (## Completed, ## In Progress, etc.)")
    # ``re.findall(r'^- \[[^x~ ]\]', content, re.MULTILINE)``, counted in Rust: the one check that
    # reads the whole file.
    invalid = _workflow_bad_checkboxes(content)
    if invalid:
        errors.append(f"Invalid checkbox format in {invalid} lines")
    if "Workflow ID:" not in content:
        errors.append("Missing Workflow ID")
    if "Started:" not in content:
        errors.append("Missing Started timestamp")
    if "Updated:" not in content:
        errors.append("Missing Updated timestamp")
    return errors
