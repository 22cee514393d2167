"""How ``task_locking`` holds its locks around a read-modify-write of ``.todo2/state.todo2.json``.

Every read-modify-write holds the state-file lock (``state.todo2.json.lock``), so no two of them
interleave, whatever tasks they touch. It also holds the per-task lock of each task it assigns, so a
legacy process that takes only that lock (the legacy ``atomic_assign_task``) is still excluded for
that task during a migration.

Lock order: **nothing is ever waited for while the state-file lock is held.** A single assignment waits
for its task lock first, then for the state-file lock (both within the one ``timeout``). A batch takes
the state-file lock, reads the file to learn which tasks it will assign, then tries each of their task
locks without waiting; a task whose lock is busy is reported as failed. So no cycle of waiters can
form (every waiter on a task lock holds nothing, or holds only other task locks it will never wait
for), and the state-file lock is only ever held for the length of one read-modify-write: a process
that sits on a task lock (``task_lock``, ``try_lock_task``) can delay assignments of that task only.

A batch locks only the task lock files that exist when it has the state-file lock: a lock that is held
has a file, so every current holder is excluded, and the batch costs one scan of ``.todo2/locks/``
instead of one file creation per task (about 0.1-0.2 ms each on a journaled disk: more than the whole
read-modify-write of a 1,000-task file). A legacy process that creates and takes a task's lock only
after that scan is not excluded for that task; it takes no state-file lock either, so it could
overwrite the batch's whole file regardless.

The locking, waiting, reading and atomic replacement are ferrolock's core (``FileLock``,
``StateFile``); this module only composes them and shapes the JSON the legacy way.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from ..._ferrolock import StateFile, remove_if_unheld, validate_name
from ...exceptions import CorruptFileError, LockError, Timeout
from .file_lock import FileLock, TaskLockTimeout, lock_for, state_lock_file, task_lock_file

__all__ = ["Session", "locked_state", "state_path"]

logger = logging.getLogger(__name__.rpartition(".")[0] + ".task_locking")


def state_path(root: Path) -> Path:
    """``<root>/.todo2/state.todo2.json``."""
    return root / ".todo2" / "state.todo2.json"


class Session:
    """One locked read-modify-write: the state as read under the lock, and the task locks it holds."""

    def __init__(self, root: Path, draft: Any, task_locks: list[FileLock]) -> None:
        self._root = root
        self._draft = draft
        # Released by `locked_state` after the edit has written and released the state-file lock.
        self._task_locks = task_locks
        # Names of the task lock files that existed when the state was read (see `claim_task`).
        self._lock_files: set[str] = set()

    def load(self, touching: Iterable[object]) -> dict[str, Any] | None:
        """The state read under the lock (``None`` if there is no state file).

        Also removes lock files nobody needs any more (see ``_tidy``), sparing the ``touching`` tasks.

        Raises:
            json.JSONDecodeError: the file is not JSON (the message the legacy code returned).
            CorruptFileError: the file is JSON but not an object.
        """
        data = self._draft.data
        if data is None:
            return None
        state = json.loads(data.decode("utf-8"))
        if not isinstance(state, dict):
            raise CorruptFileError(str(state_path(self._root)), "the top level is not a JSON object")
        self._tidy(state, {str(t) for t in touching})
        return state

    def save(self, state: dict[str, Any]) -> None:
        """Replace the file with ``state`` when the session ends (atomically, keeping the previous
        version as ``state.todo2.json.bak``), formatted exactly as the legacy ``json.dump(state, f,
        indent=2)``: ASCII escapes, no trailing newline."""
        self._draft.data = json.dumps(state, indent=2).encode("utf-8")

    def claim_task(self, task_id: object) -> str | None:
        """Make sure nobody holds ``task_id``'s lock until the session ends: take it without waiting,
        if its lock file exists (a lock that is held has a file; see the module docstring).

        Returns:
            ``None`` if nobody else holds it, otherwise why not (busy, or an unusable id).
        """
        try:
            if f"task_{validate_name('task id', str(task_id))}.lock" not in self._lock_files:
                return None  # (a string test: a batch of 1,000 would spend longer building paths)
            lock = lock_for(self._root, task_id, 0.0)
            if not lock.acquire(blocking=False):
                return f"Failed to acquire lock for task {task_id}"
        except (OSError, LockError) as e:  # InvalidName is a LockError
            return str(e)
        self._task_locks.append(lock)
        return None

    def _tidy(self, state: dict[str, Any], keep: set[str]) -> None:
        """Remove task lock files that nobody holds and whose task can no longer be claimed (assigned,
        or absent from the state), so lock files do not pile up. The tasks of the current operation
        keep theirs (the legacy layout leaves a task's lock file behind after an assignment; the next
        operation removes it).

        Runs under the state-file lock, so the state it judges by is current. A lock file whose task is
        still claimable stays, even when unheld: a legacy process may have it open, about to lock it,
        and would then lock an unlinked file while a ferrolock process locks a new one; for a task that
        is already assigned that split is harmless (both would find it assigned).
        """
        locks_dir = task_lock_file(self._root, "x").parent
        try:
            with os.scandir(locks_dir) as entries:
                lock_files = [
                    entry
                    for entry in entries
                    if entry.name.startswith("task_")
                    and entry.name.endswith(".lock")
                    and entry.is_file(follow_symlinks=False)
                ]
        except OSError:
            return  # no locks directory yet (or not a directory): nothing to tidy
        self._lock_files = {entry.name for entry in lock_files}
        todos = state.get("todos")
        candidates = [entry for entry in lock_files if entry.name[5:-5] not in keep]
        if not candidates or not isinstance(todos, list):
            return
        claimable = {str(t.get("id")) for t in todos if isinstance(t, dict) and not t.get("assignee")}
        for entry in candidates:
            if entry.name[5:-5] in claimable:
                continue
            try:
                remove_if_unheld(entry.path)
            except (OSError, LockError) as e:
                logger.warning(f"could not remove unused lock file {entry.path}: {e}")


@contextmanager
def locked_state(root: Path, timeout: float, task_id: object = None) -> Iterator[Session]:
    """Hold the locks of one read-modify-write (see the module docstring for the order), all within
    ``timeout`` seconds (``<= 0``: one attempt each). On a normal exit the saved state is written; if
    the block raises, nothing is. Every lock is released in every case.

    Raises:
        TaskLockTimeout: ``Failed to acquire lock for task <task_id>`` or ``... task state file``.
        ferrolock.InvalidName: ``task_id`` would escape ``.todo2/locks/``.
        OSError: a lock file cannot be opened or locked (not contention), or the state cannot be read.
    """
    deadline = time.monotonic() + max(timeout, 0.0)
    with ExitStack() as stack:
        if task_id:  # a falsy id means the state-file lock alone, as in the legacy `task_lock`
            lock = lock_for(root, task_id, timeout)
            if not lock.acquire(blocking=True):
                raise TaskLockTimeout(f"Failed to acquire lock for task {task_id}")
            stack.callback(lock.release)
        task_locks: list[FileLock] = []
        stack.callback(_release_all, task_locks)  # runs after the edit below has written and released
        state_file = StateFile(
            state_path(root),
            lock_path=state_lock_file(root),
            backup_path=state_path(root).with_suffix(".json.bak"),
            purpose="todo2 state file",
        )
        try:
            draft = stack.enter_context(state_file.edit(timeout=max(deadline - time.monotonic(), 0.0)))
        except Timeout:
            raise TaskLockTimeout("Failed to acquire lock for task state file") from None
        yield Session(root, draft, task_locks)


def _release_all(locks: list[FileLock]) -> None:
    for lock in locks:
        lock.release()
