"""The typed shapes of values that cross from the native core: holder records and probe results.

They are ordinary Python values at run time (a ``dict``, a ``tuple``), so code written against the
untyped shapes keeps working: ``exc.holder["pid"]``, ``state, holder = probe(path)``.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, TypedDict

__all__ = ["HolderRecord", "LockProbe", "LockStateName", "RemovalName"]

#: What ``probe()`` found at a lock path.
LockStateName = Literal["missing", "free", "held"]

#: What ``remove_if_unheld()`` did.
RemovalName = Literal["removed", "held", "missing"]


class HolderRecord(TypedDict):
    """The one line of JSON an exclusive holder writes at the start of its lock file (see the README's
    "Holder record"), as ``holder()``, ``probe()`` and ``Timeout.holder`` return it."""

    #: The holding process.
    pid: int
    #: Its host name.
    host: str
    #: When it took the lock (RFC 3339, UTC).
    since: str
    #: What it holds the lock for, if it said.
    purpose: str | None
    #: The record format's version.
    version: int


class LockProbe(NamedTuple):
    """What ``probe()`` found: the lock's state and, while it is held exclusively, the holder's record
    (``None`` if the holder wrote none). Unpacks as ``(state, holder)``."""

    state: LockStateName
    holder: HolderRecord | None
