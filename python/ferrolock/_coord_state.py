"""``coord.state(name)``: a named value updated by a locked read-modify-write, on one machine
(``file://``) or across machines (``postgresql://``), with ``StateFile``'s semantics.

The mechanism is in the core (the state's lock, the write from the holder's own session, the fence
check, the backup); this module composes acquire, read and write into ``edit()``, ``write()`` and
``remove()``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ._ferrolock import _coord_state_lock_name

if TYPE_CHECKING:
    from ._coord import Coordinator, CoordLock


class CoordDraft:
    """The value inside ``CoordState.edit()``. Setting ``data`` or ``text`` replaces the value when the
    block exits normally; setting either to ``None`` removes it."""

    def __init__(self, data: bytes | None) -> None:
        self._data = data
        self._exists = data is not None
        self._changed = False

    @property
    def data(self) -> bytes | None:
        """The value as bytes; ``None`` if there is none (or it was set to ``None``)."""
        return self._data

    @data.setter
    def data(self, value: bytes | bytearray | None) -> None:
        if value is not None and not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"data must be bytes, bytearray or None, not {type(value).__name__}")
        self._data = None if value is None else bytes(value)
        self._changed = True

    @property
    def text(self) -> str | None:
        """The value decoded as UTF-8 (strict)."""
        return None if self._data is None else self._data.decode("utf-8")

    @text.setter
    def text(self, value: str | None) -> None:
        if value is not None and not isinstance(value, str):
            raise TypeError(f"text must be str or None, not {type(value).__name__}")
        self.data = None if value is None else value.encode("utf-8")

    @property
    def exists(self) -> bool:
        """Whether there was a value when the edit began."""
        return self._exists

    @property
    def changed(self) -> bool:
        """Whether ``data`` or ``text`` was set in this edit."""
        return self._changed


class CoordState:
    """A named value kept by a coordinator, changed only under its lock (``state:<name>``).

    * ``read()`` takes no lock and always sees one complete version.
    * ``edit()``, ``write()`` and ``remove()`` hold the state's lock (waiting as ``CoordLock`` waits:
      in the server on PostgreSQL, in the kernel on ``file://``; ``Timeout`` names the holder) and
      write through it: on PostgreSQL from the holder's own session, so a holder that lost its lease
      (paused, partitioned) cannot write (``LockLost``) and the next holder's work is never undone.
    * Every write keeps the version it replaced: ``read_backup()``.
    * ``fence=`` (a held ``CoordLock``, or ``(lock_name, token)``) also refuses the write with
      ``StaleToken`` once a newer token was drawn for that lock.

    Example::

        plan = ferrolock.connect().state("release-plan")
        with plan.edit(timeout=30) as draft:
            steps = json.loads(draft.text or "[]")
            steps.append("tag")
            draft.text = json.dumps(steps)
    """

    def __init__(
        self, coordinator: Coordinator, name: str, timeout: float = -1.0, *, purpose: str | None = None
    ) -> None:
        self._coordinator = coordinator
        self._name = name
        self._lock = coordinator.lock(_coord_state_lock_name(name), timeout, purpose=purpose)
        self._editing: set[int] = set()
        self._editing_guard = threading.Lock()

    @property
    def name(self) -> str:
        """The state's name."""
        return self._name

    @property
    def lock(self) -> CoordLock:
        """The lock every change takes; hold it (``with state.lock:``) to make several reads and
        writes one step (``write()`` and ``remove()`` re-enter it at once)."""
        return self._lock

    @property
    def timeout(self) -> float:
        """The default timeout in seconds of ``edit``, ``write`` and ``remove`` (settable)."""
        return self._lock.timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        self._lock.timeout = value

    def read(self) -> bytes | None:
        """The current value, or ``None``. Takes no lock."""
        return self._coordinator._state_read(self._name)

    def read_backup(self) -> bytes | None:
        """The version the current value replaced (or the removed value), or ``None``."""
        return self._coordinator._state_read(self._name, True)

    @contextmanager
    def edit(
        self, timeout: float | None = None, *, fence: CoordLock | tuple[str, int] | None = None
    ) -> Iterator[CoordDraft]:
        """A locked read-modify-write: entering takes the lock and reads the value into a
        ``CoordDraft``; on a normal exit a changed draft is written (keeping the backup). If the block
        raises, nothing is written. The lock is released in every case.

        Raises:
            Timeout: the lock was not free in time (the message names the holder).
            LockLost: the lock was lost before the write (nothing was written).
            StaleToken: ``fence`` no longer holds (nothing was written).
            RuntimeError: this thread is already inside an ``edit()`` of this object.
        """
        owner = threading.get_ident()
        with self._editing_guard:
            if owner in self._editing:
                raise RuntimeError(
                    f"already editing state {self._name!r} in this thread: "
                    "the outer edit's write would undo the inner one's"
                )
            self._editing.add(owner)
        try:
            with self._lock.acquire(timeout):
                draft = CoordDraft(self.read())
                yield draft
                if draft.changed:
                    self._write(draft.data, fence)
        finally:
            with self._editing_guard:
                self._editing.discard(owner)

    def write(
        self,
        data: bytes | bytearray | str,
        timeout: float | None = None,
        *,
        fence: CoordLock | tuple[str, int] | None = None,
    ) -> None:
        """Replace the value under the lock (``str`` is written as UTF-8)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"data must be bytes or str, not {type(data).__name__}")
        with self._lock.acquire(timeout):
            self._write(bytes(data), fence)

    def remove(self, timeout: float | None = None, *, fence: CoordLock | tuple[str, int] | None = None) -> bool:
        """Remove the value under the lock; it becomes the backup. ``False`` if there was none."""
        with self._lock.acquire(timeout):
            existed = self._write(None, fence)
        return existed

    def _write(self, data: bytes | None, fence: CoordLock | tuple[str, int] | None) -> bool:
        checked = fence if fence is None or isinstance(fence, tuple) else (fence.name, fence.token)
        return self._lock._state_write_as(self._lock._owner(), self._name, data, checked)

    def __repr__(self) -> str:
        return f"CoordState({self._name!r}, url={self._coordinator.url!r})"
