"""Drop-in for little-loops' ``little_loops.fsm.concurrency`` (``ScopeLock``, ``LockManager``,
``resolve_scope``).

Change ``from little_loops.fsm.concurrency import ...`` to ``from ferrolock.compat.little_loops import
...``: same names (private ones included), signatures, return values and files
(``.loops/.running/<instance_id|loop_name>.lock`` JSON and the ``.running/.acquire.lock`` sentinel).
Legacy little-loops processes and ferrolock processes exclude each other and read each other's
records. The hooks little-loops' tests patch are looked up at call time: ``os.kill`` (through this
module's ``_process_alive``), ``os.getpid``, this module's ``_process_alive`` and ``_iso_now``, and
``LockManager._get_ancestry`` / ``_normalize_path`` / ``_scopes_overlap`` / ``_paths_overlap`` on the
class or an instance.

Differences from little-loops:

* A claim is also a kernel lock: the record file is held with ``flock(LOCK_EX)`` by the claiming
  process until ``release`` or exit. A crashed claimant's claim is free at once; a recycled pid cannot
  keep it alive. Its record carries one extra trailing key, ``"ferrolock": 1``, which legacy readers
  ignore (they read named keys). Records without it (written by legacy processes) are judged by pid
  through ``os.kill``, exactly as before.
* ``release`` removes only a claim this process holds; releasing another process's claim (or one
  that does not exist) does nothing. The legacy code unlinked whatever file had the name.
* ``acquire`` returns ``False`` when a live claim already uses the record name
  (``instance_id or loop_name``), even if the scopes are disjoint; little-loops overwrote that
  process's record, leaving its scope unprotected. ``find_conflict`` still reports only scope and
  singleton conflicts, so little-loops' ``ll-loop run`` then says "unknown reason".
* Nested record names (``group/loop``, written to ``.running/group/loop.lock``) are seen by
  ``find_conflict``, ``list_locks`` and ``wait_for_scope``; the legacy glob only read the top level.
* Records are published by rename, never written in place: no reader sees a partial record. An
  unparseable legacy record is re-read under the sentinel before it is skipped.
* Stale records are removed only under the sentinel and only if still unheld and unchanged since they
  were judged, so a cleanup can never delete a live claim. When the sentinel is busy for more than
  100 ms outside ``acquire``, the stale record is ignored now and removed by a later scan.
* ``wait_for_scope`` waits in the kernel and returns within milliseconds of the conflicting claim's
  release or its holder's death (legacy records: their process's exit via ``pidfd``, or the record's
  removal via inotify), instead of polling once a second. Its timeout is exact and monotonic
  (``timeout <= 0`` still returns ``False`` without checking).
* ``_get_ancestry`` reads ``/proc`` (no ``ps`` subprocess per level) and is not cached for the
  manager's lifetime, so it stays right after fork and in long-lived managers.
* Record names that would escape ``.running`` (absolute, ``..``, empty components, NUL) raise
  ``ferrolock.InvalidName`` (a ``ValueError``); the legacy code wrote wherever they pointed. A symlink
  at a record path is never followed (``OSError`` ``ELOOP`` for ``acquire``; skipped by scans).
* Records that are valid JSON but not records (a non-integer pid, a non-object document) are
  skipped like malformed ones; the legacy code raised ``ValueError``/``TypeError`` out of
  ``find_conflict``. An unreadable ``.running`` directory raises ``PermissionError`` instead of
  looking empty.
* Record scopes that are already absolute and clean are compared as written (they were resolved when
  claimed) instead of being resolved again on every scan; other entries still go through
  ``_normalize_path``.
* A claim belongs to the process, not to the ``LockManager`` object: any manager in the process can
  release it (as before, by name), and a ``fork()`` child without ``exec`` keeps it alive until it
  exits too (it inherits the locked descriptor) but can never release it. Managers pickle.
* ``wait_for_scope``'s ``timeout`` is annotated ``float`` (callers pass float budgets; ``int`` works).

Unchanged on purpose (the legacy contract): scopes are resolved against the current directory at call
time and compared lexically; claims of this process's ancestors are ignored; legacy records are live
while ``os.kill(pid, 0)`` succeeds (a zombie counts as alive until reaped); ``acquire`` never waits
for a conflicting claim; ``.acquire.lock`` stays an empty file that is never deleted.

Mixed fleets: legacy processes see ferrolock's top-level claims (legacy keys, a live pid) and take the
same sentinel, but cannot see nested names (their glob is top-level), and a legacy ``release(name)``
or ``ll-loop stop`` can still unlink a ferrolock record by name (the claimant keeps its lock on the
unlinked file, which nobody can see any more).
"""

from __future__ import annotations

import os
import time

from .. import _fleet, _fleet_scope
from .._scope import _CONTEXT_VAR_RE, RUNNING_DIR, ScopeLock, _iso_now, _process_alive, resolve_scope
from .._scope import LockManager as _LockManager
from .._scope import logger as _scope_logger

__all__ = [
    "RUNNING_DIR",
    "_CONTEXT_VAR_RE",
    "LockManager",
    "ScopeLock",
    "_iso_now",
    "_process_alive",
    "logger",
    "resolve_scope",
]

logger = _scope_logger


class LockManager(_LockManager):
    """little-loops' ``LockManager``; see ``ferrolock.LockManager`` and this module's docstring. With
    ``FERROLOCK_URL`` set, claims also go through the coordinator (``ferrolock._fleet_scope``)."""

    def acquire(
        self,
        loop_name: str,
        scope: list[str],
        instance_id: str | None = None,
        *,
        singleton: bool = False,
    ) -> bool:
        def local() -> bool:
            return super(LockManager, self).acquire(loop_name, scope, instance_id, singleton=singleton)

        if self._custom_overlap():
            return local()  # custom overlap rules cannot be applied by the coordinator
        paths = [self._normalize_path(p) for p in (scope or ["."])]
        key = self._fleet_key(instance_id or loop_name)
        return _fleet_scope.acquire(key, loop_name, paths, self._get_ancestry, local)

    def release(self, loop_name: str, instance_id: str | None = None) -> None:
        try:
            super().release(loop_name, instance_id)
        finally:
            _fleet_scope.release(self._fleet_key(instance_id or loop_name))

    def wait_for_scope(
        self,
        scope: list[str],
        timeout: float = 300,
        *,
        loop_name: str | None = None,
        singleton: bool = False,
    ) -> bool:
        started = time.monotonic()
        if not super().wait_for_scope(scope, timeout, loop_name=loop_name, singleton=singleton):
            return False
        if self._custom_overlap():
            return True
        paths = [self._normalize_path(p) for p in scope]
        return _fleet_scope.wait(self._fleet_key("")[0], paths, _fleet.left(timeout, started), self._get_ancestry)

    def _fleet_key(self, name: str) -> tuple[str, str]:
        return (os.path.realpath(self.running_dir), name)

    def _process_alive(self, pid: int) -> bool:
        # This module's global, looked up now: patching `<module>._process_alive` takes effect.
        return _process_alive(pid)

    def _now(self) -> str:
        return _iso_now()
