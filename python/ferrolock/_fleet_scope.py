"""little-loops' scope claims on a fleet: with ``FERROLOCK_URL`` set, a ``LockManager`` claim is also a
coordinator claim, so loops on other hosts are excluded too. The claim space is the running directory's
(its project is the directory's fleet name, as for lock files: relative to ``FERROLOCK_ROOT`` when set,
so every host's ``.loops/.running`` of one repository is one space), and paths are relative to
``FERROLOCK_ROOT`` (or ``/``); the claim record in ``.loops/.running`` is still written for legacy readers and still
excludes this host's legacy processes. Without the variable nothing changes.

The coordinator claim is taken first (one attempt, as ``acquire`` never waits) and given back if the
local claim fails. little-loops ignores the claims of the caller's ancestors; the coordinator knows no
process tree, so a claim blocked on the coordinator only by claims of this host's ancestors is made on
this host alone (its ancestors' coordinator claims cover it across hosts when its scope lies inside
theirs, which is how nested loops are used). The singleton rule, record names and custom overlap hooks
stay local. See the README section "The legacy tools on a fleet"."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._ferrolock import ScopeDir
from ._fleet import ROOT_VARIABLE, coordinator, left, shared_name
from .exceptions import Timeout, WouldDeadlock

if TYPE_CHECKING:
    from ._coord_claims import ClaimRecord, ClaimSpace, CoordClaim

_held: dict[tuple[str, str], CoordClaim] = {}
_guard = threading.Lock()


def space(running_dir: str) -> ClaimSpace | None:
    """The fleet's claim space of ``running_dir``, or ``None`` without ``FERROLOCK_URL``."""
    coord = coordinator()
    if coord is None:
        return None
    return coord.claims(shared_name(running_dir), root=os.path.realpath(os.environ.get(ROOT_VARIABLE) or "/"))


def _ours(record: ClaimRecord, ancestry: set[int]) -> bool:
    holder = record["holder"]
    return holder["host"] == socket.gethostname() and holder["pid"] in ancestry


def _conflicting(fleet: ClaimSpace, paths: list[str]) -> list[ClaimRecord]:
    probe = fleet.claim(paths)  # only to normalise the paths the way a claim does
    mine = set(probe.paths)
    return [r for r in fleet.live_claims() if any(_overlap(p, q) for p in r["paths"] for q in mine)]


def _overlap(a: str, b: str) -> bool:
    return "." in {a, b} or a == b or a.startswith(b + "/") or b.startswith(a + "/")


def blocked_only_by_ancestors(fleet: ClaimSpace, paths: list[str], ancestry: set[int]) -> bool:
    found = _conflicting(fleet, paths)
    return bool(found) and all(_ours(r, ancestry) for r in found)


def _prune() -> None:
    """Give back the fleet claims of records this process no longer holds on disk (removed with their
    directory, say): a fleet claim lives exactly as long as its local claim, as the record did."""
    with _guard:
        gone = [key for key in _held if not ScopeDir(key[0]).holds(key[1])]
        claims = [_held.pop(key) for key in gone]
    for claim in claims:
        claim.release(force=True)


def acquire(
    key: tuple[str, str], loop_name: str, paths: list[str], ancestry: Callable[[], set[int]], local: Callable[[], bool]
) -> bool:
    """``local()`` (the claim on this host) under the fleet's claim of ``paths``."""
    fleet = space(key[0])
    if fleet is None:
        return local()
    _prune()
    claim: CoordClaim | None = fleet.claim(paths, purpose=loop_name)
    try:
        assert claim is not None
        claim.acquire(timeout=0)
    except (Timeout, WouldDeadlock):
        if not blocked_only_by_ancestors(fleet, paths, ancestry()):
            return False
        claim = None
    try:
        made = local()
    except BaseException:
        if claim is not None:
            claim.release()
        raise
    if not made:
        if claim is not None:
            claim.release()
        return False
    if claim is not None:
        with _guard:
            _held[key] = claim
    return True


def release(key: tuple[str, str]) -> None:
    """Give back the fleet's claim of the record ``key`` if this process made one."""
    with _guard:
        claim = _held.pop(key, None)
    if claim is not None:
        claim.release(force=True)


def wait(running_dir: str, paths: list[str], timeout: float, ancestry: Callable[[], set[int]]) -> bool:
    """Wait (in the coordinator) until no claim of another host or of a non-ancestor conflicts with
    ``paths``; ``True`` at once without a fleet."""
    fleet = space(running_dir)
    if fleet is None:
        return True
    _prune()
    started = time.monotonic()
    while True:
        found = _conflicting(fleet, paths)
        others = [r for r in found if not _ours(r, ancestry())]
        if not others:
            return True
        rest = left(timeout, started)
        if timeout != 0 and rest == 0:
            return False
        # Woken in the server by the conflicting claim's end. With an ancestor's claim in the way too,
        # wait for the other claim itself (an ancestor's claim does not count).
        target = paths if len(others) == len(found) else others[0]["paths"]
        if not fleet.wait_for_scope(target, rest) and timeout == 0:
            return False
