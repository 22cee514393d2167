"""The legacy tools on a fleet: with ``FERROLOCK_URL`` set, a compat module's lock on a file is also a
coordinator lock, so processes on other hosts (which have their own disks, or a shared filesystem whose
``flock`` cannot be trusted) are excluded too. Without the variable nothing changes.

A fleet lock is taken before the file lock it stands for and released after it, by every ferrolock
process, so the order is the same everywhere and the file lock still excludes legacy processes on the
same host. The coordinator lock's name is the file's path: relative to ``FERROLOCK_ROOT`` when that is
set and the file is under it (each host sets it to its own checkout, so ``/home/a/repo/.todo2/x.lock``
and ``/srv/repo/.todo2/x.lock`` agree), otherwise absolute (hosts that mount the shared tree at the
same path agree without it). Names too long for a lock name end in a digest of the whole path.
See the README section "The legacy tools on a fleet"."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._coord import Coordinator, CoordLock

URL_VARIABLE = "FERROLOCK_URL"
ROOT_VARIABLE = "FERROLOCK_ROOT"
#: Coordinator names of file locks start with this, so they never meet an application's own names.
NAME_PREFIX = "file:"
_MAX_NAME = 200

_coordinators: dict[str, Coordinator] = {}
_locks: dict[tuple[str, str], CoordLock] = {}
_guard = threading.Lock()


def coordinator() -> Coordinator | None:
    """The coordinator named by ``FERROLOCK_URL`` (one per URL per process), or ``None`` if unset."""
    url = os.environ.get(URL_VARIABLE)
    if not url:
        return None
    with _guard:
        coord = _coordinators.get(url)
        if coord is None:
            from ._coord import connect

            coord = _coordinators[url] = connect(url)
        return coord


def shared_name(path: str | os.PathLike[str]) -> str:
    """The coordinator lock name every host gives the lock file ``path``."""
    full = os.path.realpath(os.fspath(path))
    root = os.environ.get(ROOT_VARIABLE)
    if root:
        base = os.path.realpath(root)
        if full == base or full.startswith(base.rstrip("/") + "/"):
            full = os.path.relpath(full, base)
    name = NAME_PREFIX + full
    if len(name.encode()) > _MAX_NAME or any(ch < " " or ch == "\x7f" for ch in name):
        digest = hashlib.sha256(os.fsencode(full)).hexdigest()[:32]
        kept = "".join(ch if " " <= ch != "\x7f" else "?" for ch in name)
        while len(kept.encode()) > _MAX_NAME - 34:
            kept = kept[:-1]
        name = f"{kept}#{digest}"
    return name


def fleet_lock(path: str | os.PathLike[str], purpose: str | None = None) -> CoordLock | None:
    """The coordinator lock standing for the lock file ``path``, or ``None`` without ``FERROLOCK_URL``.

    One lock object per name per process, re-entrant per thread: whether a second hold of the same file
    by one thread waits, fails or re-enters is the file lock's decision, taken after the fleet lock,
    exactly as without a fleet. Each caller releases one level per acquisition it made."""
    coord = coordinator()
    if coord is None:
        return None
    key = (coord.url, shared_name(path))
    with _guard:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = coord.lock(key[1], purpose=purpose)
        return lock


@contextmanager
def fleet_held(path: str | os.PathLike[str], timeout: float, purpose: str | None = None) -> Iterator[float]:
    """Hold the fleet lock of ``path`` for the block (nothing without ``FERROLOCK_URL``) and yield the
    timeout left for the file lock (``timeout`` itself if there is no fleet lock; negative waits
    forever). Raises ``ferrolock.Timeout`` naming the fleet lock's holder if it stayed busy."""
    gate = fleet_lock(path, purpose)
    if gate is None:
        yield timeout
        return
    started = time.monotonic()
    with gate.acquire(timeout=timeout):
        yield left(timeout, started)


def left(timeout: float, started: float) -> float:
    """What remains of ``timeout`` (negative: forever; ``0``: one attempt) since ``started``."""
    if timeout < 0 or timeout == 0:
        return timeout
    return max(0.0, timeout - (time.monotonic() - started))
