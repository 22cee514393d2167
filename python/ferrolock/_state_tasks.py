"""Task lists from the argument dicts of ``StateManager.update`` and ``initialize``, by the legacy rules:
the id is ``task_id``, else ``agent_id``, else a default; the description is ``description``, else
``task``, else the first 100 characters of ``prompt``; a current-wave task's ``result`` decides its status.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ._state_md import TaskState

__all__ = ["TaskList"]


class TaskList:
    """Tasks in insertion order, keyed by id (the legacy dict: a repeated id replaces the earlier task
    in place; ferrolock reports it through ``on_duplicate``)."""

    def __init__(self, on_duplicate: Callable[[Any], None]) -> None:
        self.tasks: dict[Any, TaskState] = {}
        self._on_duplicate = on_duplicate

    def add(self, task: TaskState) -> None:
        if task.task_id in self.tasks:
            self._on_duplicate(task.task_id)
        self.tasks[task.task_id] = task

    def add_completed(self, dicts: Iterable[dict[str, Any]]) -> None:
        for d in dicts:
            self.add(
                TaskState(
                    task_id=d.get("task_id", d.get("agent_id", "unknown")),
                    description=_description(d),
                    status="completed",
                    wave_id=d.get("wave_id", 0),
                    commit_hash=d.get("commit_hash"),
                    files_modified=_files(d.get("result", {})),
                    error=d.get("error"),
                )
            )

    def add_current(self, dicts: Iterable[dict[str, Any]], wave_id: int, commit_hash: str | None) -> None:
        for d in dicts:
            result = d.get("result")
            if not result:
                status = "in_progress"
            elif result.get("success"):
                status = "completed"
            else:
                status = "failed" if result.get("error") else "in_progress"
            task_commit = d.get("commit_hash")
            if status == "completed" and not task_commit and commit_hash:
                task_commit = commit_hash  # the wave's commit, for tasks that name none
            self.add(
                TaskState(
                    task_id=d.get("task_id", d.get("agent_id", "unknown")),
                    description=_description(d),
                    status=status,
                    wave_id=wave_id,
                    commit_hash=task_commit,
                    files_modified=_files(result),
                    error=d.get("error") or (result.get("error") if result else None),
                )
            )

    def add_pending(self, waves: Iterable[Iterable[dict[str, Any]]], first_wave: int) -> None:
        for wave_num, wave in enumerate(waves, start=first_wave):
            for d in wave:
                task_id = d.get("task_id", d.get("agent_id", f"wave{wave_num}_task{len(self.tasks) + 1}"))
                self.add(TaskState(task_id, _description(d), "pending", wave_num))


def _description(d: dict[str, Any]) -> Any:
    return d.get("description") or d.get("task") or d.get("prompt", "Unknown")[:100]


def _files(result: dict[str, Any] | None) -> Any:
    if not result:
        return []
    return result.get("files_modified", result.get("files_created", []))
