"""Drop-in replacement for BlackBox5's ``state_manager`` module (``STATE.md`` workflow progress).

Change ``from state_manager import StateManager, TaskState, WorkflowState`` to
``from ferrolock.compat.blackbox5 import StateManager, TaskState, WorkflowState``. Everything else stays:
the constructor ``StateManager(state_path=None, max_retries=3, retry_delay=0.5)``, the methods
(``update``, ``initialize``, ``add_note``, ``load_state``, ``parse_state``, ``get_resume_info``, ``clear``,
``validate_markdown`` and the private ``_lock_state``, ``_write_state_atomic``, ``_max_retries``,
``_retry_delay``, ``_lock_file``, ``_backup_path``), the ``TaskState`` / ``WorkflowState`` dataclasses, the
files (``STATE.md``, ``STATE.lock``, ``STATE.backup``, ``STATE.tmp``), the ``STATE.md`` bytes, and the
``RuntimeError`` whose message contains "locked by another process". The lock is the same ``flock`` on
``STATE.lock``, so legacy processes and ferrolock processes exclude each other during a migration.

Differences from BlackBox5 ``state_manager`` (each fixes a legacy bug):

1. Contended writers wait in the kernel for the whole retry budget (``retry_delay`` doubling over
   ``max_retries`` attempts: about 1.5 s by default) and proceed the moment the lock is free; the legacy
   code slept between three non-blocking attempts, so 40 concurrent ``add_note`` calls kept only 13-20
   notes. ``max_retries <= 1`` makes one attempt (the legacy code silently did nothing with 0).
2. ``started_at`` survives updates: timestamps are read back (the legacy parser never could, so every
   update reset "Started" to now and ``get_resume_info()['started_at']`` was wrong). ``updated_at`` is
   likewise the recorded time, at the file's one-second resolution, instead of the time of the load.
3. ``add_note`` keeps the ``## Metadata`` section, and ``update(metadata=None)`` keeps the existing
   metadata (pass ``{}`` to clear it); the legacy parser dropped metadata, so both lost it. Metadata
   values read back from the file are strings.
4. No task is lost on a round trip: pending tasks of the current or an earlier wave are written (under
   their ``### Wave N`` header) instead of dropped; a task whose description contains ``## Completed``
   no longer switches sections and vanishes; lines in ``## Notes`` and ``## Metadata`` are never taken
   for tasks. ``files_modified`` reads back as a list (with ``"..."`` for each file the format only
   counted as ``(+N more)``), and in-progress and failed tasks read back with the current wave.
5. Every writer works under the lock, ``clear()`` included; ``clear()`` keeps the cleared state as
   ``STATE.backup`` (the legacy code deleted it with no lock and no way back).
6. Writes are durable (fsync of the file and the directory) and the backup is a hard link swapped in
   atomically, so a crash at any point leaves ``STATE.md`` and ``STATE.backup`` complete; the legacy
   ``shutil.copy2`` backup could be half-written.
7. A corrupt ``STATE.md`` (empty, not UTF-8, or without a title or status line) is detected:
   ``load_state`` recovers it from ``STATE.backup`` with a warning, or raises
   ``ferrolock.CorruptFileError`` if the backup is unusable too; writers keep it as ``STATE.corrupt``
   and never let it replace the good backup. The legacy code parsed it to an empty workflow and wrote
   that over it.
8. The lock error (``StateLocked``, a ``RuntimeError`` and a ``ferrolock.Timeout``) names the holder and
   no longer tells users to delete ``STATE.lock``: flock locks cannot go stale, and deleting a held lock
   file breaks mutual exclusion.
9. ``_lock_state(timeout=0.0)`` accepts a timeout and is re-entrant on one thread, so a writer can be
   called while the lock is held (the legacy lock refused its own thread: "locked by another process").
   It yields the ``ferrolock.StateFile`` rather than the open lock file.
10. Reusing a task id within one ``update`` logs a warning (the later entry still replaces the earlier).
11. A line break inside a field (a task description, typically an agent's multi-line prompt, a note, an
    error, a metadata value) is written as a space. The legacy code wrote it verbatim, so the next read
    found forged tasks, statuses (``  - Error:`` marks a task failed), sections and metadata.
12. A task's status comes from its own checkbox at the start of its line; the legacy parser took
    ``- [x]`` anywhere in the line, so a description mentioning it marked the task completed.
13. A progress bar too long to draw (``Wave 10**9/1``: a billion cells) raises ``ValueError`` instead of
    exhausting memory, and a detail (commit, error) whose value is truthy but formats to an empty text is
    not written (the legacy code wrote an empty ``Commit:`` line).
"""

from __future__ import annotations

# Module-level names of the legacy module, kept so that code and tests that patch or import them
# (``patch("state_manager.datetime")``, ``state_manager.logger``) keep working.
import errno  # noqa: F401
import fcntl  # noqa: F401
import logging
import re  # noqa: F401
import shutil  # noqa: F401
import time  # noqa: F401
from contextlib import contextmanager  # noqa: F401
from dataclasses import dataclass, field  # noqa: F401
from datetime import datetime
from pathlib import Path  # noqa: F401
from typing import Any, Dict, List, Optional, Tuple  # noqa: F401, UP035

from .._state_manager import StateLocked
from .._state_manager import StateManager as _StateManager
from .._state_md import TaskState, WorkflowState

__all__ = ["StateLocked", "StateManager", "TaskState", "WorkflowState"]

logger = logging.getLogger(__name__)


class StateManager(_StateManager):
    __doc__ = _StateManager.__doc__

    @property
    def _log(self) -> logging.Logger:
        return logger  # looked up at call time, so a patched ``logger`` is used

    def _now(self) -> datetime:
        return datetime.now()  # likewise ``datetime``
