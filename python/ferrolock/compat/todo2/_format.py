"""todo2's ``.todo2/state.todo2.json`` as a ``ferrolock.TaskQueue`` format: the legacy file's shape, and
nothing else (the locking, waiting, tidy-up and atomic writes are the queue's).

The file is ``{"todos": [{"id": ..., "assignee": {...}, ...}, ...], ...}`` written by
``json.dump(state, f, indent=2)`` (ASCII escapes, no trailing newline). A task is claimed when its
``assignee`` is truthy; claiming sets ``assignee`` and the task's ``lastModified`` and leaves
everything else (the top-level ``lastModified`` included) as it was. Entries of ``todos`` that are not
objects cannot be tasks: they are skipped and kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...exceptions import CorruptFileError

__all__ = ["Assignee", "Todo2Format"]


@dataclass(frozen=True)
class Assignee:
    """Who claims: the fields of todo2's ``assignee`` object."""

    name: str
    kind: str
    hostname: str | None
    assigned_by: str


class Todo2Format:
    """The format, for one operation.

    Args:
        path: The state file (named in errors).
        stamp: The timestamp text for ``assigned_at`` and ``lastModified``.
        ids: Task id as text -> the id as the caller gave it: the legacy code compared ``t.get("id")``
            with the caller's value, so an ``int`` id matches only an ``int`` in the file.
    """

    def __init__(self, path: Path, stamp: Callable[[], str], ids: dict[str, object] | None = None) -> None:
        self._path = path
        self._stamp = stamp
        self._ids = ids or {}
        self._index: tuple[int, dict[Any, dict[str, Any]]] | None = None
        #: Task id -> the ``assignee`` object this operation wrote.
        self.written: dict[str, dict[str, Any]] = {}

    def decode(self, data: bytes) -> dict[str, Any]:
        """The state (``json.JSONDecodeError`` is raised as the legacy code reported it)."""
        state = json.loads(data.decode("utf-8"))
        if not isinstance(state, dict):
            raise CorruptFileError(str(self._path), "the top level is not a JSON object")
        return state

    def encode(self, state: dict[str, Any]) -> bytes:
        """Exactly the legacy ``json.dump(state, f, indent=2)``."""
        return json.dumps(state, indent=2).encode("utf-8")

    def lookup(self, state: dict[str, Any], task_id: str) -> tuple[str, Any]:
        task = self._find(state, task_id)
        if task is None:
            return ("missing", None)
        existing = task.get("assignee")
        return ("claimed", existing) if existing else ("free", None)

    def unclaimed(self, state: dict[str, Any]) -> list[str] | None:
        todos = state.get("todos")
        if not isinstance(todos, list):
            return None  # nothing can be judged: no lock file is removed
        return [str(t.get("id")) for t in todos if isinstance(t, dict) and not t.get("assignee")]

    def claim(self, state: dict[str, Any], task_id: str, who: Assignee) -> None:
        task = self._find(state, task_id)
        assert task is not None  # the queue looked it up first, under the same lock
        assignee = {
            "type": who.kind,
            "name": who.name,
            "hostname": who.hostname,
            "assigned_at": self._stamp(),
            "assigned_by": who.assigned_by,
        }
        task["assignee"] = assignee
        task["lastModified"] = self._stamp()
        self.written[task_id] = assignee

    def release(self, state: dict[str, Any], task_id: str, who: Assignee, force: bool) -> tuple[str, Any]:
        task = self._find(state, task_id)
        if task is None:
            return ("missing", None)
        existing = task.get("assignee")
        if not existing:
            return ("not_claimed", None)
        mine = isinstance(existing, dict) and (existing.get("type"), existing.get("name")) == (who.kind, who.name)
        if not (mine or force):
            return ("claimed_by_other", existing)
        task["assignee"] = None
        task["lastModified"] = self._stamp()
        return ("released", None)

    def tasks(self, state: dict[str, Any]) -> list[tuple[str, Any]]:
        return [(str(t.get("id")), t.get("assignee") or None) for t in _todos(state)]

    def _find(self, state: dict[str, Any], task_id: str) -> dict[str, Any] | None:
        """The first task whose ``id`` equals the caller's id (found through an index of the state, built
        once per document: a batch of 1,000 ids over 50,000 tasks would otherwise search 50 million)."""
        if self._index is None or self._index[0] != id(state):
            index: dict[Any, dict[str, Any]] = {}
            for task in _todos(state):
                try:
                    index.setdefault(task.get("id"), task)
                except TypeError:
                    continue  # an unhashable id: no caller's id can equal it
            self._index = (id(state), index)
        wanted = self._ids.get(task_id, task_id)
        try:
            return self._index[1].get(wanted)
        except TypeError:
            return None


def _todos(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The task objects of ``state["todos"]``."""
    todos = state.get("todos", [])
    return [t for t in todos if isinstance(t, dict)] if isinstance(todos, list) else []
