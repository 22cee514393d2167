"""``LockManager`` and ``ScopeLock``: path-scope claims with little-loops' API and files.

A claim says "this loop works on these paths". ``LockManager.acquire`` refuses a scope that overlaps a
live claim; ``wait_for_scope`` sleeps until it is free. Claims are ``<loops_dir>/.running/<name>.lock``
JSON records in little-loops' format, written under the same ``.acquire.lock`` sentinel, so legacy
little-loops processes and ferrolock processes see and exclude each other.

Unlike the legacy records, each claim ferrolock makes is held with a kernel lock for its lifetime
(see ``ferrolock._ferrolock.ScopeDir``): a crashed claimant's claim is free at once, a recycled pid
cannot keep it alive, nobody else can release it, and waiters wake the moment it ends.

The methods below look their hooks up at call time, so subclasses and ``unittest.mock`` patches of
``_process_alive`` (and ``os.kill``), ``_get_ancestry``, ``_normalize_path``, ``_scopes_overlap`` and
``_paths_overlap`` (and ``os.getpid``) are honoured.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._ferrolock import SCOPE_RUNNING_DIR, ScopeDir, ScopeEntry, _check_timeout, process_ancestry

__all__ = ["RUNNING_DIR", "LockManager", "ScopeLock", "resolve_scope"]

logger = logging.getLogger("ferrolock.scope")

RUNNING_DIR = SCOPE_RUNNING_DIR

_CONTEXT_VAR_RE = re.compile(r"\$\{context\.([^}]+)\}")


def resolve_scope(scope: list[str], context: dict[str, Any]) -> list[str]:
    """Replace each ``${context.<var>}`` in the scope paths with ``str(context[var])``.

    Unknown variables and other namespaces (``${env.X}``) are left as written; the order is kept.
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(context[name]) if name in context else match.group(0)

    return [_CONTEXT_VAR_RE.sub(substitute, path) for path in scope]


def _process_alive(pid: int) -> bool:
    """The legacy liveness test for records without a kernel lock: ``os.kill(pid, 0)`` succeeds, or
    fails with anything but ``ESRCH`` (``EPERM`` means alive but someone else's)."""
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno != errno.ESRCH
    return True


def _iso_now() -> str:
    """Now, as ``datetime.now(UTC).isoformat()`` (``2026-11-22T04:07:12.380965+00:00``)."""
    return datetime.now(timezone.utc).isoformat()


@dataclass
class ScopeLock:
    """A claim on a set of paths by a running loop (the content of one record).

    Attributes:
        loop_name: The claiming loop.
        scope: The claimed paths (absolute, resolved when claimed).
        pid: The claimant's process id.
        started_at: When the claim was made (ISO 8601).
        singleton: Conflict with every other singleton claim of the same loop name, whatever the
            scopes.
    """

    loop_name: str
    scope: list[str]
    pid: int
    started_at: str
    singleton: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The record's legacy keys, in order; ``singleton`` only when true."""
        data: dict[str, Any] = {
            "loop_name": self.loop_name,
            "scope": self.scope,
            "pid": self.pid,
            "started_at": self.started_at,
        }
        if self.singleton:
            data["singleton"] = self.singleton
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScopeLock:
        """Read a record (a missing key raises ``KeyError``; extra keys are ignored)."""
        scope = data["scope"]
        return cls(
            loop_name=str(data["loop_name"]),
            scope=list(scope) if isinstance(scope, list) else [str(scope)],
            pid=int(data["pid"]),
            started_at=str(data["started_at"]),
            singleton=bool(data.get("singleton", False)),
        )


def _to_lock(entry: ScopeEntry) -> ScopeLock:
    return ScopeLock(
        loop_name=entry.loop_name,
        scope=list(entry.scope),
        pid=entry.pid,
        started_at=entry.started_at,
        singleton=entry.singleton,
    )


class LockManager:
    """Scope claims in ``<loops_dir>/.running`` (little-loops' ``LockManager``, without its races).

    Args:
        loops_dir: The loops directory (default ``.loops``, relative to the current directory at each
            call, as in little-loops).
    """

    def __init__(self, loops_dir: Path | None = None) -> None:
        self.loops_dir = loops_dir or Path(".loops")
        self.running_dir = Path(self.loops_dir) / RUNNING_DIR
        self._scope_dir = ScopeDir(self.running_dir)

    def acquire(
        self,
        loop_name: str,
        scope: list[str],
        instance_id: str | None = None,
        *,
        singleton: bool = False,
    ) -> bool:
        """Claim ``scope`` for ``loop_name`` under the record name ``instance_id or loop_name``.

        An empty scope means the whole project (``["."]``); paths are resolved against the current
        directory. Returns ``False``, claiming nothing, if a live claim overlaps (a claim of one of
        this process's ancestors excepted), if both are singleton claims of the same loop, or if a
        live claim already uses the record name. Never waits except for the brief check-and-write.

        Raises:
            InvalidName: the record name is empty, absolute or has a ``..`` component.
        """
        paths = [self._normalize_path(p) for p in (scope or ["."])]
        return self._dir().acquire(
            instance_id or loop_name,
            loop_name,
            paths,
            pid=self._pid(),
            started_at=self._now(),
            singleton=singleton,
            judge=self,
            custom_overlap=self._custom_overlap(),
        )

    def release(self, loop_name: str, instance_id: str | None = None) -> None:
        """Give back the claim ``instance_id or loop_name`` if this process holds it; otherwise do
        nothing (another process's claim is never removed)."""
        self._dir().release(instance_id or loop_name)

    def find_conflict(
        self,
        scope: list[str],
        *,
        caller_loop_name: str | None = None,
        caller_singleton: bool = False,
    ) -> ScopeLock | None:
        """The first live claim that conflicts with ``scope`` (or ``None``). Stale records met on
        the way are removed, and only when provably dead."""
        entry = self._dir().find_conflict(
            [self._normalize_path(p) for p in scope],
            caller_loop_name=caller_loop_name,
            caller_singleton=caller_singleton,
            judge=self,
            custom_overlap=self._custom_overlap(),
        )
        return None if entry is None else _to_lock(entry)

    def list_locks(self) -> list[ScopeLock]:
        """Every live claim (nested names included); stale records are removed."""
        return [_to_lock(e) for e in self._dir().live_claims(judge=self, custom_overlap=self._custom_overlap())]

    def wait_for_scope(
        self,
        scope: list[str],
        timeout: float = 300,
        *,
        loop_name: str | None = None,
        singleton: bool = False,
    ) -> bool:
        """Wait until no live claim conflicts with ``scope``: ``True`` once free, ``False`` after
        ``timeout`` seconds (at once, without checking, if ``timeout <= 0``, as in little-loops;
        ``math.inf`` waits as long as it takes; NaN is a ``ValueError``).

        The wait is in the kernel: it ends microseconds after the conflicting claim is released or
        its holder dies (legacy records: when their process exits or the record is removed).
        """
        if _check_timeout(timeout) <= 0:
            return False
        return self._dir().wait_for_scope(
            [self._normalize_path(p) for p in scope],
            timeout,
            caller_loop_name=loop_name,
            caller_singleton=singleton,
            judge=self,
            custom_overlap=self._custom_overlap(),
        )

    def _get_ancestry(self) -> set[int]:
        """This process's ancestors (parent first, up to but excluding pid 1), read from ``/proc``
        afresh on every call."""
        return set(process_ancestry(os.getpid()))

    def _scopes_overlap(self, scope1: list[str], scope2: list[str]) -> bool:
        """True if any path of one scope overlaps any path of the other."""
        return any(self._paths_overlap(p1, p2) for p1 in scope1 for p2 in scope2)

    def _paths_overlap(self, path1: str, path2: str) -> bool:
        """True if the paths are equal or one contains the other (lexically; both already resolved)."""
        p1, p2 = Path(path1), Path(path2)
        return p1 == p2 or p1.is_relative_to(p2) or p2.is_relative_to(p1)

    def _normalize_path(self, path: str) -> str:
        """``str(Path(path).resolve())``."""
        return str(Path(path).resolve())

    def _process_alive(self, pid: int) -> bool:
        """Whether the process that wrote a legacy (unlocked) record lives."""
        return _process_alive(pid)

    # Internal hooks, looked up at call time like the legacy ones.

    def _pid(self) -> int:
        return os.getpid()

    def _now(self) -> str:
        return _iso_now()

    def _dir(self) -> ScopeDir:
        """The native claims object for the current ``running_dir`` (which callers may reassign)."""
        running = str(self.running_dir)
        native: ScopeDir | None = self.__dict__.get("_scope_dir")
        if native is None or native.running_dir != running:
            native = self._scope_dir = ScopeDir(running)
        return native

    def __getstate__(self) -> dict[str, Any]:
        # Picklable like the legacy class (e.g. handed to a spawned worker): the native object is
        # rebuilt on first use. Claims belong to the process, not to the manager, so none are lost.
        state = dict(self.__dict__)
        state.pop("_scope_dir", None)
        return state

    def _custom_overlap(self) -> bool:
        """True if the overlap hooks were replaced (subclass, instance attribute or mock patch): the
        native scan then asks them instead of applying the same rule itself."""
        cls = type(self)
        return (
            cls._scopes_overlap is not LockManager._scopes_overlap
            or cls._paths_overlap is not LockManager._paths_overlap
            or "_scopes_overlap" in self.__dict__
            or "_paths_overlap" in self.__dict__
        )
