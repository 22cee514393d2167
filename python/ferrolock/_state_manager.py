"""``StateManager``: BlackBox5's ``STATE.md`` manager on ferrolock's ``StateFile``.

Same constructor, methods, files (``STATE.md``, ``STATE.lock``, ``STATE.backup``, ``STATE.tmp``) and
bytes as the legacy module, with the mechanism in the Rust core: every writer (including ``clear()``)
works under the lock, a contended writer waits in the kernel for the whole retry budget and proceeds the
moment the lock is free, writes are durable and the backup is a hard link, and a corrupt ``STATE.md`` is
reported (and recovered from ``STATE.backup``) instead of being replaced by an empty state. The
differences from the legacy module are listed in ``ferrolock.compat.blackbox5``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from ._ferrolock import RenderedStateMd, StateFile, _render_update, _state_md_add_note
from ._fleet import fleet_lock, left
from ._state_md import (
    TIMESTAMP_FORMAT,
    WorkflowState,
    corruption,
    parse_workflow,
    validate_markdown,
)
from ._types import HolderRecord
from .exceptions import CorruptFileError, Timeout, WouldDeadlock

__all__ = ["StateLocked", "StateManager"]

_LOGGER = logging.getLogger("ferrolock.state")


class _Unchecked:
    """Marks "the caller did not check the current file"."""


_UNCHECKED = _Unchecked()

# Callers of the legacy module tell "someone else holds it" apart by this text; it must stay.
LOCKED_TEXT = "locked by another process"
# More attempts than this would only overflow the exponential budget.
_MAX_ATTEMPTS = 60


class StateLocked(Timeout, RuntimeError):
    """``STATE.md`` stayed locked for the whole retry budget.

    A ``RuntimeError`` whose message contains "locked by another process", as the legacy module raised,
    and a ``ferrolock.Timeout`` (so also a ``TimeoutError``) whose ``holder`` names the process holding
    the lock.
    """


class StateManager:
    """Manages a ``STATE.md`` file: human-readable workflow progress, updated under a lock.

    Args:
        state_path: The ``STATE.md`` path (default ``./STATE.md``). The lock, backup and temporary files
            sit beside it with the suffixes ``.lock``, ``.backup`` and ``.tmp``.
        max_retries: Lock attempts, as in the legacy module. The waits between them (``retry_delay``,
            doubling) add up to the retry budget, which is spent waiting in the kernel: a writer
            proceeds the moment the lock is free and gives up when the budget is spent (about 1.5 s with
            the defaults).
        retry_delay: The first wait; each further one doubles.
    """

    # Tests and callers reassign these, as with the legacy module.
    _max_retries: int
    _retry_delay: float

    def __init__(self, state_path: Path | None = None, max_retries: int = 3, retry_delay: float = 0.5) -> None:
        if not state_path:
            state_path = Path("STATE.md")
        self.state_path = state_path if isinstance(state_path, Path) else Path(state_path)
        self._lock_file = self.state_path.with_suffix(".lock")
        self._backup_path = self.state_path.with_suffix(".backup")
        self._max_retries = max_retries
        self._retry_delay = retry_delay
        self._file_guard = threading.Lock()
        self._file: tuple[tuple[Path, Path, Path], StateFile] | None = None

    # --- hooks the compat module overrides (legacy tests patch module-level names) -----------------

    @property
    def _log(self) -> logging.Logger:
        return _LOGGER

    def _now(self) -> datetime:
        return datetime.now()

    # --- locking ------------------------------------------------------------------------------------

    def _state_file(self) -> StateFile:
        """The ``StateFile`` for the current paths (rebuilt if a caller reassigned ``state_path``,
        ``_lock_file`` or ``_backup_path``)."""
        key = (self.state_path, self._lock_file, self._backup_path)
        with self._file_guard:
            if self._file is None or self._file[0] != key:
                state_file = StateFile(
                    self.state_path,
                    lock_path=self._lock_file,
                    backup_path=self._backup_path,
                    temp_path=self.state_path.with_suffix(".tmp"),
                    purpose=f"StateManager {self.state_path}",
                )
                self._file = (key, state_file)
            return self._file[1]

    @contextmanager
    def _lock_state(self, timeout: float = 0.0) -> Iterator[StateFile]:
        """Hold ``STATE.lock`` exclusively (``flock``, so legacy processes are excluded too).

        Waits in the kernel up to ``timeout`` seconds (the legacy method made one attempt, which is
        still the default). Re-entrant on one thread. Yields the ``StateFile``.

        Raises:
            StateLocked: another process (or thread) held the lock throughout.
        """
        state_file = self._state_file()
        # On a fleet (FERROLOCK_URL), the coordinator lock standing for STATE.lock comes first.
        gate = fleet_lock(self._lock_file, "blackbox5 STATE.md")
        started = time.monotonic()
        if gate is not None:
            try:
                gate.acquire(timeout=timeout)
            except Timeout as exc:
                raise self._locked_error(exc.holder) from None
        try:
            held = state_file.locked(timeout=timeout if gate is None else left(timeout, started))
            try:
                held.__enter__()
            except Timeout as exc:
                raise self._locked_error(exc.holder) from None
            except WouldDeadlock:
                # This thread holds the lock through another StateManager (or StateFile) on the same
                # file. The legacy code failed here too, after its retries, with the same message.
                raise self._locked_error(None, " (by this thread, through another StateManager)") from None
            self._log.debug("Acquired lock on %s", self.state_path)
            try:
                yield state_file
            finally:
                held.__exit__(None, None, None)
                self._log.debug("Released lock on %s", self.state_path)
        finally:
            if gate is not None:
                gate.release()

    def _locked_error(self, holder: HolderRecord | None, detail: str = "") -> StateLocked:
        if holder:
            detail = f" (held by pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')})"
        message = (
            f"STATE.md is {LOCKED_TEXT}{detail}. The kernel releases the lock when its holder exits, so it "
            f"is never stale; do not delete {self._lock_file}, that would break mutual exclusion."
        )
        return StateLocked(str(self._lock_file), holder, message)

    @contextmanager
    def _writer_lock(self) -> Iterator[StateFile]:
        """The lock for a writer: ``max_retries`` attempts, the waits between them spent in the kernel.

        The attempts call ``_lock_state`` one by one, as the legacy retry loop did, so a patched
        ``_lock_state`` sees the same calls; but each wait is a blocking wait that ends the moment the
        lock is free, instead of a sleep.
        """
        attempts = max(1, min(int(self._max_retries), _MAX_ATTEMPTS))
        with ExitStack() as stack:
            for attempt in range(attempts):
                last = attempt == attempts - 1
                wait = 0.0 if last else max(float(self._retry_delay) * (2**attempt), 0.0)
                try:
                    state_file = stack.enter_context(self._lock_state(timeout=wait))
                except RuntimeError as exc:
                    if LOCKED_TEXT not in str(exc):
                        raise
                    if not last:
                        continue
                    self._log.error("Could not acquire lock after %d attempts", attempts)
                    raise
                break
            yield state_file

    # --- reading ------------------------------------------------------------------------------------

    def validate_markdown(self, content: str) -> list[str]:
        """The legacy format warnings, in the legacy order and wording; empty for a valid file."""
        return validate_markdown(content)

    def parse_state(self, content: str) -> WorkflowState | None:
        """Parse ``STATE.md`` content. Never raises: returns ``None`` if the content cannot be parsed at
        all (not a string); odd content gives defaults (name ``Unknown``), as in the legacy module."""
        errors = self.validate_markdown(content) if isinstance(content, str) else []
        if errors:
            self._log.warning("STATE.md validation errors: %s", errors)
        try:
            if not isinstance(content, str):  # the legacy parser split it as text
                raise TypeError(f"STATE.md content must be str, not {type(content).__name__}")
            return parse_workflow(content, self._now)
        except Exception as exc:  # the legacy contract: log and return None
            self._log.error("Failed to parse STATE.md: %s", exc, exc_info=True)
            return None

    def load_state(self) -> WorkflowState | None:
        """The current state, or ``None`` if there is no ``STATE.md``. Takes no lock (every write is an
        atomic rename).

        An empty or unreadable ``STATE.md`` (see ``CorruptFileError``) is recovered from
        ``STATE.backup`` with a warning; if the backup is unusable too, ``CorruptFileError`` is raised.
        """
        state_file = self._state_file()
        data = state_file.read()
        if data is None:
            return None
        return self._parse_data(self._usable(data, state_file)[0])

    def _parse_data(self, data: bytes) -> WorkflowState | None:
        """``parse_state`` for the file's bytes, which are parsed without first becoming a Python
        ``str``."""
        errors = validate_markdown(data)
        if errors:
            self._log.warning("STATE.md validation errors: %s", errors)
        try:
            return parse_workflow(data, self._now)
        except Exception as exc:  # the legacy contract: log and return None
            self._log.error("Failed to parse STATE.md: %s", exc, exc_info=True)
            return None

    def _usable(self, data: bytes, state_file: StateFile) -> tuple[bytes, str | None]:
        """``(data, None)``; or, if ``data`` is corrupt, ``(the backup's content, why data is corrupt)``,
        with a warning.

        Raises:
            CorruptFileError: ``data`` is corrupt and the backup is missing or corrupt too.
        """
        reason = corruption(data)
        if reason is None:
            return data, None
        backup = state_file.read_backup()
        backup_reason = corruption(backup) if backup is not None else "there is no backup"
        if backup is None or backup_reason is not None:
            raise CorruptFileError(
                str(self.state_path), f"{reason}; and {self._backup_path} is unusable: {backup_reason}"
            )
        self._log.warning("%s is corrupt (%s); using %s instead", self.state_path, reason, self._backup_path)
        return backup, reason

    def get_resume_info(self) -> dict[str, Any] | None:
        """Where to resume: the wave after the current one, or the current one if a task failed."""
        state = self.load_state()
        if not state:
            return None
        tasks = list(state.tasks.values())
        failed = [t.task_id for t in tasks if t.status == "failed"]
        return {
            "workflow_id": state.workflow_id,
            "workflow_name": state.workflow_name,
            "current_wave": state.current_wave,
            "resume_wave": state.current_wave if failed else state.current_wave + 1,
            "total_waves": state.total_waves,
            "completed_tasks": [t.task_id for t in tasks if t.status == "completed"],
            "failed_tasks": failed,
            "pending_tasks": [t.task_id for t in tasks if t.status == "pending"],
            "started_at": state.started_at.isoformat(),
            "updated_at": state.updated_at.isoformat(),
        }

    # --- writing ------------------------------------------------------------------------------------

    def _write_state_atomic(self, workflow_state: WorkflowState) -> None:
        """Render, validate (warnings are only logged) and write atomically under the lock, keeping the
        previous ``STATE.md`` as ``STATE.backup`` (a hard link)."""
        content = workflow_state.to_markdown()
        self._write(content, self.validate_markdown(content))

    def _write(self, content: str | bytes, warnings: list[str], corrupt: str | _Unchecked | None = _UNCHECKED) -> None:
        """Log the validation ``warnings`` (the legacy writer only logged them too) and write under the
        lock. ``corrupt`` is why the current ``STATE.md`` is corrupt (``None``: it is fine), when the
        caller checked it under the lock."""
        if warnings:
            self._log.warning("Markdown validation warnings: %s", warnings)
        with self._writer_lock() as state_file:
            if isinstance(corrupt, _Unchecked):
                current = state_file.read()
                corrupt = corruption(current) if current is not None else None
            if corrupt is not None:
                self._set_aside(corrupt, state_file)
            state_file.write(content, timeout=0)
        self._log.debug("Written state to %s", self.state_path)

    def _set_aside(self, reason: str, state_file: StateFile) -> None:
        """A corrupt ``STATE.md`` must not become the backup (it would replace the last good version):
        it is kept as ``STATE.corrupt`` instead, and the backup stays."""
        aside = self.state_path.with_suffix(".corrupt")
        state_file.set_aside(aside, timeout=0)
        self._log.warning("%s was corrupt (%s); kept it as %s", self.state_path, reason, aside)

    def update(  # noqa: PLR0917 - the legacy signature
        self,
        workflow_id: str,
        workflow_name: str,
        wave_id: int,
        total_waves: int,
        completed_tasks: list[dict[str, Any]],
        current_wave_tasks: list[dict[str, Any]],
        pending_waves: list[list[dict[str, Any]]],
        commit_hash: str | None = None,
        notes: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Rewrite ``STATE.md`` from the given tasks, keeping the existing start time, notes (the new
        ones are appended) and, when ``metadata`` is ``None``, the existing metadata.

        Raises:
            StateLocked: the lock stayed busy for the whole retry budget.
        """
        with self._writer_lock() as state_file:
            existing, corrupt = self._existing_header(state_file.read(), state_file)
            now = self._now()
            rendered = self._render(
                workflow_id,
                workflow_name,
                wave_id,
                total_waves,
                completed=completed_tasks,
                current=current_wave_tasks,
                pending=pending_waves,
                first_pending_wave=wave_id + 1,
                commit_hash=commit_hash,
                started=existing.started_at if existing else now,
                updated=now,
                notes=[*(existing.notes if existing else []), *(notes or [])],
                metadata=metadata if metadata is not None else (existing.metadata if existing else {}),
            )
            self._write(rendered.data, rendered.warnings, corrupt)
        self._log.info("Updated STATE.md: Wave %s/%s, %d tasks total", wave_id, total_waves, rendered.task_count)

    def initialize(
        self,
        workflow_id: str,
        workflow_name: str,
        total_waves: int,
        all_waves: list[list[dict[str, Any]]],
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Start a new ``STATE.md``: every task pending, waves numbered from 1, wave 0 of
        ``total_waves``. An existing file becomes the backup.

        Raises:
            StateLocked: the lock stayed busy for the whole retry budget.
        """
        with self._writer_lock():
            now = self._now()
            rendered = self._render(
                workflow_id,
                workflow_name,
                0,
                total_waves,
                pending=all_waves,
                first_pending_wave=1,
                started=now,
                updated=now,
                metadata=metadata or {},
            )
            self._write(rendered.data, rendered.warnings)
        self._log.info(
            "Initialized STATE.md for workflow '%s' with %d tasks across %s waves",
            workflow_name,
            rendered.task_count,
            total_waves,
        )

    def add_note(self, note: str) -> None:
        """Append a note under the lock, keeping everything else (metadata included). With no
        ``STATE.md`` it only logs a warning, as the legacy module did.

        Raises:
            StateLocked: the lock stayed busy for the whole retry budget.
            CorruptFileError: ``STATE.md`` and ``STATE.backup`` are both unusable (nothing is written).
        """
        with self._writer_lock() as state_file:
            current = state_file.read()
            if current is None:
                self._log.warning("No existing state to add note to")
                return
            data, corrupt = self._usable(current, state_file)
            stamp = self._now().strftime(TIMESTAMP_FORMAT)
            rendered = _state_md_add_note(data, note, stamp, stamp)
            self._write(rendered.data, rendered.warnings, corrupt)

    def clear(self) -> None:
        """Remove ``STATE.md`` under the lock. Its content becomes ``STATE.backup`` (a corrupt one is kept
        as ``STATE.corrupt`` and the backup stays), so a clear can be undone; the lock file stays.

        Raises:
            StateLocked: the lock stayed busy for the whole retry budget.
        """
        with self._writer_lock() as state_file:
            current = state_file.read()
            if current is None:
                return
            corrupt = corruption(current)
            if corrupt is not None:
                self._set_aside(corrupt, state_file)
            else:
                state_file.remove(timeout=0)
        self._log.info("Cleared STATE.md")

    # --- helpers ------------------------------------------------------------------------------------

    def _existing_header(self, current: bytes | None, state_file: StateFile) -> tuple[WorkflowState | None, str | None]:
        """What ``update`` carries over (start time, notes, metadata) from the current file, or from the
        backup if the file is corrupt (``None`` if there is nothing usable), and why the current file is
        corrupt (``None`` if it is not)."""
        if current is None:
            return None, None
        try:
            data, corrupt = self._usable(current, state_file)
        except CorruptFileError as exc:
            self._log.warning("%s; writing a fresh STATE.md", exc)
            return None, corruption(current)
        return parse_workflow(data, self._now, tasks=False), corrupt

    def _render(
        self,
        workflow_id: Any,
        workflow_name: Any,
        current_wave: Any,
        total_waves: Any,
        *,
        completed: Iterable[Any] = (),
        current: Iterable[Any] = (),
        pending: Iterable[Iterable[Any]] = (),
        first_pending_wave: int,
        commit_hash: Any = None,
        started: datetime,
        updated: datetime,
        notes: Iterable[Any] = (),
        metadata: Any = None,
    ) -> RenderedStateMd:
        """The file ``update``/``initialize`` write, rendered natively from their task dicts (no
        ``TaskState`` objects are built); a repeated task id is logged."""
        rendered = _render_update(
            workflow_id=workflow_id,
            workflow_name=workflow_name,
            current_wave=current_wave,
            total_waves=total_waves,
            completed=completed,
            current=current,
            pending=pending,
            first_pending_wave=first_pending_wave,
            commit_hash=commit_hash,
            started=started.strftime(TIMESTAMP_FORMAT),
            updated=updated.strftime(TIMESTAMP_FORMAT),
            notes=notes,
            metadata=metadata,
        )
        for task_id in rendered.duplicates:
            self._log.warning("Task id %r appears twice; the later entry replaces the earlier one", task_id)
        return rendered
