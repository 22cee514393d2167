"""Drop-in for todo2/exarp's ``project_management_automation.utils.task_locking``: atomic task claims.

``atomic_assign_task``, ``atomic_check_and_assign`` and ``atomic_batch_assign`` keep the legacy
signatures, return values and messages, set the same ``assignee`` fields with the same timestamp text
(``datetime.utcnow().isoformat() + "Z"``, produced without the deprecated call), leave the top-level
``lastModified`` alone, keep the previous file as ``state.todo2.json.bak`` and write
``state.todo2.json`` byte for byte as the legacy ``json.dump(state, f, indent=2)`` did, so other todo2
tools keep reading it. ``find_project_root`` is looked up here at call time, so patching
``task_locking.find_project_root`` redirects this module (and now its lock files too).

Differences from the legacy module (each fixes a lost update, a torn file or a misleading result):

* **Every read-modify-write holds the state-file lock** (``.todo2/state.todo2.json.lock``) as well as the
  lock of each task it assigns. The legacy single-task functions held only the task's lock while
  rewriting the whole file, so concurrent assignments of *different* tasks overwrote each other (12
  processes kept 3-5 of 12 assignments) and read torn JSON. Consequence: a single assignment now waits
  for a holder of the state-file lock and, if ``timeout`` runs out, returns ``(False, "Failed to acquire
  lock for task state file")`` (the legacy code ignored that lock and went ahead).
* Lock order: a single assignment waits for its task lock, then the state-file lock, within one
  ``timeout``; a batch takes the state-file lock and then tries, without waiting, the lock of each task
  it would assign whose lock file exists (a held lock always has one), so nothing ever waits while
  holding the state-file lock (no deadlock, no convoy). A batch task whose lock is held elsewhere
  (someone is assigning or working on it right now) fails with the reason ``Failed to acquire lock for
  task <id>`` instead of being assigned over that holder.
* The state file is replaced atomically (temporary file, ``fsync``, ``rename``, directory ``fsync``), so
  readers that take no lock see the old file or the new, never an empty or partial one, and a crash
  leaves a complete file. The ``.bak`` backup is a hard link to the previous version (complete, never
  half-written). The file therefore gets a new inode on each write (same permission bits; a hard link
  to the old file keeps the old content).
* A batch is one read-modify-write with an index of the tasks (the legacy batch searched the whole list
  once per id). It is still not all-or-nothing: the assignable subset is written, as before.
* Lock errors other than contention (a directory or symlink at a lock path, no permission) are reported
  as the error itself (``(False, "[Errno 21] ...")``) instead of ``Failed to acquire lock ...``.
* Task ids that would escape ``.todo2/locks/`` (``/``, NUL, ``.``, ``..``) are rejected with ``(False,
  "invalid task id ...")`` before any file is created.
* Task lock files do not pile up: each operation removes (while nobody holds them) the lock files of
  tasks that are assigned or gone; the lock file of the task just assigned stays until the next
  operation, as in the legacy layout.
* Garbage in the state file is reported, never written back worse: a top level that is not a JSON
  object is reported as corrupt; entries of ``todos`` that are not objects are skipped (and kept); an
  assignee that is not an object is reported as ``unknown:<value>``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from . import _claims
from .file_lock import state_file_lock, task_lock
from .project_root import find_project_root

__all__ = [
    "atomic_assign_task",
    "atomic_batch_assign",
    "atomic_check_and_assign",
    "find_project_root",
    "state_file_lock",
    "task_lock",
]

logger = logging.getLogger(__name__)


def atomic_assign_task(  # noqa: PLR0917 (the legacy signature)
    task_id: str,
    assignee_name: str,
    assignee_type: str = "agent",
    hostname: str | None = None,
    assigned_by: str = "auto",
    timeout: float = 5.0,
) -> tuple[bool, str | None]:
    """Assign ``task_id`` unless it is already assigned, under its task lock and the state-file lock.

    Returns:
        ``(True, None)``; or ``(False, reason)`` with reason ``"State file not found"``,
        ``"Task <id> not found"``, ``"Task already assigned to <type>:<name>"``,
        ``"Failed to acquire lock for task <id>"`` / ``"... task state file"`` (timeout), or the error.
    """
    try:
        with _claims.locked_state(find_project_root(), timeout, task_id) as session:
            state = session.load([task_id])
            if state is None:
                return (False, "State file not found")
            task = _find_task(state, task_id)
            if task is None:
                return (False, f"Task {task_id} not found")
            existing = task.get("assignee")
            if existing:
                return (False, f"Task already assigned to {_describe(existing)}")
            _assign(task, assignee_name, assignee_type, hostname, assigned_by)
            session.save(state)
        logger.info(f"Atomically assigned task {task_id} to {assignee_type}:{assignee_name}")
        return (True, None)
    except Exception as e:
        logger.error(f"Error in atomic_assign_task: {e}", exc_info=True)
        return (False, str(e))


def atomic_check_and_assign(
    task_id: str,
    assignee_name: str,
    assignee_type: str = "agent",
    hostname: str | None = None,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Assign ``task_id`` if it is free, with ``assigned_by="atomic_check_and_assign"``.

    Returns:
        ``{"success", "assigned", "reason"}`` plus ``"assignee"`` (assigned now) or
        ``"existing_assignee"`` (already assigned: ``success`` is still ``True``).
    """
    try:
        with _claims.locked_state(find_project_root(), timeout, task_id) as session:
            state = session.load([task_id])
            if state is None:
                return {"success": False, "assigned": False, "reason": "State file not found"}
            task = _find_task(state, task_id)
            if task is None:
                return {"success": False, "assigned": False, "reason": f"Task {task_id} not found"}
            existing = task.get("assignee")
            if existing:
                return {
                    "success": True,
                    "assigned": False,
                    "reason": "Task already assigned",
                    "existing_assignee": existing,
                }
            _assign(task, assignee_name, assignee_type, hostname, "atomic_check_and_assign")
            session.save(state)
        return {
            "success": True,
            "assigned": True,
            "reason": "Task assigned successfully",
            "assignee": task["assignee"],
        }
    except Exception as e:
        logger.error(f"Error in atomic_check_and_assign: {e}", exc_info=True)
        return {"success": False, "assigned": False, "reason": str(e)}


def atomic_batch_assign(
    task_ids: list[str],
    assignee_name: str,
    assignee_type: str = "agent",
    hostname: str | None = None,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Assign every free task of ``task_ids`` in one read-modify-write, with
    ``assigned_by="atomic_batch_assign"``. Not all-or-nothing: the free ones are assigned.

    Returns:
        ``{"success": no failures, "assigned": [ids], "failed": [{"task_id", "reason"}], "total"}``.
    """
    try:
        with _claims.locked_state(find_project_root(), timeout) as session:
            state = session.load(task_ids)
            if state is None:
                return _batch_failure(task_ids, "State file not found")
            by_id = _index(state)
            assigned: list[str] = []
            failed: list[dict[str, Any]] = []
            for task_id in task_ids:
                task = _lookup(by_id, task_id)
                if task is None:
                    failed.append({"task_id": task_id, "reason": "Task not found"})
                    continue
                existing = task.get("assignee")
                if existing:
                    failed.append({"task_id": task_id, "reason": f"Already assigned to {_name(existing)}"})
                    continue
                busy = session.claim_task(task_id)
                if busy is not None:
                    failed.append({"task_id": task_id, "reason": busy})
                    continue
                _assign(task, assignee_name, assignee_type, hostname, "atomic_batch_assign")
                assigned.append(task_id)
            if assigned:
                session.save(state)
        return {"success": len(failed) == 0, "assigned": assigned, "failed": failed, "total": len(task_ids)}
    except Exception as e:
        logger.error(f"Error in atomic_batch_assign: {e}", exc_info=True)
        return _batch_failure(task_ids, str(e))


def _batch_failure(task_ids: list[str], reason: str) -> dict[str, Any]:
    return {
        "success": False,
        "assigned": [],
        "failed": [{"task_id": tid, "reason": reason} for tid in task_ids],
        "total": len(task_ids),
    }


def _utc_stamp() -> str:
    """``datetime.utcnow().isoformat() + "Z"`` (microseconds, or none when they are 0), without the
    call deprecated since Python 3.12."""
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat() + "Z"


def _assign(task: dict[str, Any], name: str, kind: str, hostname: str | None, assigned_by: str) -> None:
    task["assignee"] = {
        "type": kind,
        "name": name,
        "hostname": hostname,
        "assigned_at": _utc_stamp(),
        "assigned_by": assigned_by,
    }
    task["lastModified"] = _utc_stamp()


def _todos(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The task objects of ``state["todos"]`` (entries that are not objects cannot be a task)."""
    todos = state.get("todos", [])
    return [t for t in todos if isinstance(t, dict)] if isinstance(todos, list) else []


def _find_task(state: dict[str, Any], task_id: object) -> dict[str, Any] | None:
    """The first task whose ``id`` equals ``task_id``."""
    return next((t for t in _todos(state) if t.get("id") == task_id), None)


def _index(state: dict[str, Any]) -> dict[Any, dict[str, Any]]:
    """Tasks by id, first occurrence winning (as a linear search finds it)."""
    by_id: dict[Any, dict[str, Any]] = {}
    for task in _todos(state):
        try:
            by_id.setdefault(task.get("id"), task)
        except TypeError:
            continue  # an unhashable id: no string task id can equal it
    return by_id


def _lookup(by_id: dict[Any, dict[str, Any]], task_id: object) -> dict[str, Any] | None:
    try:
        return by_id.get(task_id)
    except TypeError:
        return None


def _name(assignee: object) -> object:
    return assignee.get("name", "unknown") if isinstance(assignee, dict) else assignee


def _describe(assignee: object) -> str:
    kind = assignee.get("type", "unknown") if isinstance(assignee, dict) else "unknown"
    return f"{kind}:{_name(assignee)}"
