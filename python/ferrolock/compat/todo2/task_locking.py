"""Drop-in for todo2/exarp's ``project_management_automation.utils.task_locking``: atomic task claims.

``atomic_assign_task``, ``atomic_check_and_assign`` and ``atomic_batch_assign`` keep the legacy
signatures, return values and messages, set the same ``assignee`` fields with the same timestamp text
(``datetime.utcnow().isoformat() + "Z"``, produced without the deprecated call), leave the top-level
``lastModified`` alone, keep the previous file as ``state.todo2.json.bak`` and write
``state.todo2.json`` byte for byte as the legacy ``json.dump(state, f, indent=2)`` did, so other todo2
tools keep reading it. ``find_project_root`` is looked up here at call time, so patching
``task_locking.find_project_root`` redirects this module (and now its lock files too).

Differences from the legacy module (each fixes a lost update, a torn file or a misleading result):

The claims are ferrolock's ``TaskQueue`` (the lock order, waiting, tidy-up and atomic writes are the
core's, see ``src/tasks/``); this module supplies todo2's file shape (``_format``) and the legacy
results and messages.

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
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..._ferrolock import ClaimResult, TaskQueue
from ..._fleet import fleet_lock, left
from ...exceptions import Timeout
from ._format import Assignee, Todo2Format
from .file_lock import locks_dir, state_file_lock, state_path, task_lock
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

#: rw for everyone, minus the umask: the legacy task lock files' mode (see ``file_lock``).
_TASK_LOCK_MODE = 0o666


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
        result, _ = _claim(task_id, Assignee(assignee_name, assignee_type, hostname, assigned_by), timeout)
    except Exception as e:
        logger.error(f"Error in atomic_assign_task: {e}", exc_info=True)
        return (False, str(e))
    if result.outcome == "claimed":
        logger.info(f"Atomically assigned task {task_id} to {assignee_type}:{assignee_name}")
        return (True, None)
    if result.outcome == "taken":
        return (False, f"Task already assigned to {_describe(result.owner)}")
    return (False, _failure(task_id, result, not_found=f"Task {task_id} not found"))


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
    who = Assignee(assignee_name, assignee_type, hostname, "atomic_check_and_assign")
    try:
        result, fmt = _claim(task_id, who, timeout)
    except Exception as e:
        logger.error(f"Error in atomic_check_and_assign: {e}", exc_info=True)
        return {"success": False, "assigned": False, "reason": str(e)}
    if result.outcome == "claimed":
        return {
            "success": True,
            "assigned": True,
            "reason": "Task assigned successfully",
            "assignee": fmt.written[str(task_id)],
        }
    if result.outcome == "taken":
        return {
            "success": True,
            "assigned": False,
            "reason": "Task already assigned",
            "existing_assignee": result.owner,
        }
    reason = _failure(task_id, result, not_found=f"Task {task_id} not found")
    return {"success": False, "assigned": False, "reason": reason}


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
    who = Assignee(assignee_name, assignee_type, hostname, "atomic_batch_assign")
    queue = None
    try:
        root = find_project_root()
        queue = _queue(root, Todo2Format(state_path(root), _utc_stamp, {str(t): t for t in task_ids}))
        started = time.monotonic()
        with ExitStack() as fleet:
            _enter_fleet_locks(fleet, queue, None, max(timeout, 0.0), started)
            results = queue.claim_many([str(t) for t in task_ids], by=who, timeout=left(max(timeout, 0.0), started))
    except Exception as e:
        logger.error(f"Error in atomic_batch_assign: {e}", exc_info=True)
        return _batch_failure(task_ids, _lock_message(e, queue, None))
    if not results and not Path(queue.path).exists():
        return _batch_failure(task_ids, "State file not found")
    assigned: list[str] = []
    failed: list[dict[str, Any]] = []
    for task_id, result in zip(task_ids, results, strict=True):
        if result.outcome == "claimed":
            assigned.append(task_id)
        elif result.outcome == "no_queue":
            return _batch_failure(task_ids, "State file not found")
        elif result.outcome == "taken":
            failed.append({"task_id": task_id, "reason": f"Already assigned to {_name(result.owner)}"})
        else:
            failed.append({"task_id": task_id, "reason": _failure(task_id, result, not_found="Task not found")})
    return {"success": len(failed) == 0, "assigned": assigned, "failed": failed, "total": len(task_ids)}


def _queue(root: Path, fmt: Todo2Format) -> TaskQueue:
    """The project's todo2 queue: ``state.todo2.json`` with its ``.lock`` and ``.bak``, and
    ``.todo2/locks/task_<id>.lock``, the lock files legacy processes use."""
    return TaskQueue(
        state_path(root),
        locks_dir=locks_dir(root),
        format=fmt,
        purpose="todo2",
        task_lock_mode=_TASK_LOCK_MODE,
        # The legacy contract: a thread that holds a task's lock (task_lock) and assigns it waits for
        # the timeout, then fails with the lock message; it does not fail at once.
        detect_deadlock=False,
    )


def _claim(task_id: object, who: Assignee, timeout: float) -> tuple[ClaimResult, Todo2Format]:
    """Claim one task. A falsy id takes only the state-file lock, as the legacy ``task_lock(None)``.

    Raises:
        RuntimeError: ``Failed to acquire lock for task <id>`` or ``... task state file``.
    """
    root = find_project_root()
    key = str(task_id)
    fmt = Todo2Format(state_path(root), _utc_stamp, {key: task_id})
    queue = _queue(root, fmt)
    wait = max(timeout, 0.0)  # the legacy lock made one attempt for a timeout of zero or less
    started = time.monotonic()
    with ExitStack() as fleet:
        _enter_fleet_locks(fleet, queue, key if task_id else None, wait, started)
        try:
            if task_id:
                result = queue.claim(key, by=who, timeout=left(wait, started))
            else:
                result = queue.claim_many([key], by=who, timeout=left(wait, started))[0]
        except Timeout as e:
            raise RuntimeError(_lock_message(e, queue, task_id)) from None
    return result, fmt


def _enter_fleet_locks(fleet: ExitStack, queue: TaskQueue, task: str | None, wait: float, started: float) -> None:
    """On a fleet (``FERROLOCK_URL``), hold the coordinator locks standing for the task's lock file
    (if ``task``) and the state file's, in the order the file locks are taken.

    Raises:
        RuntimeError: the legacy lock message, if one stayed busy.
    """
    for lock_file, what in ([(queue.task_lock_path(task), task)] if task else []) + [(queue.lock_path, None)]:
        gate = fleet_lock(lock_file, "todo2")
        if gate is None:
            return
        try:
            fleet.enter_context(gate.acquire(timeout=left(wait, started)))
        except Timeout:
            target = "state file" if what is None else what
            raise RuntimeError(f"Failed to acquire lock for task {target}") from None


def _lock_message(error: Exception, queue: TaskQueue | None, task_id: object) -> str:
    """The legacy text for a lock that stayed busy: it names the task, or the state file."""
    if not isinstance(error, Timeout) or queue is None:
        return str(error)
    if error.lock_file == queue.lock_path or not task_id:
        return "Failed to acquire lock for task state file"
    return f"Failed to acquire lock for task {task_id}"


def _failure(task_id: object, result: ClaimResult, not_found: str) -> str:
    if result.outcome == "no_queue":
        return "State file not found"
    if result.outcome == "missing":
        return not_found
    if result.outcome == "busy":
        return f"Failed to acquire lock for task {task_id}"
    return result.reason or result.outcome


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


def _name(assignee: object) -> object:
    return assignee.get("name", "unknown") if isinstance(assignee, dict) else assignee


def _describe(assignee: object) -> str:
    kind = assignee.get("type", "unknown") if isinstance(assignee, dict) else "unknown"
    return f"{kind}:{_name(assignee)}"
