"""Keeps the native side's view of the ``logging`` levels current, so a lock logs nothing, at no cost, while
the ``filelock`` logger (py-filelock's, which ``FileLock`` writes its DEBUG records to) is not listening.

Every change of a level in ``logging`` (``Logger.setLevel``, ``logging.disable``, ``dictConfig``) clears
the logging manager's level cache through ``Manager._clear_cache``; wrapping that method tells the native
side to look again. If this ``logging`` has no such method (another implementation), the native side is
told that the logger may always be listening, which is correct and costs a Python call per record.
"""

from __future__ import annotations

import logging
from typing import Any

from ._ferrolock import _logging_changed, _logging_unwatched

__all__ = ["watch_logging_levels"]


def watch_logging_levels() -> None:
    """Install the watch (once per process) and compute the current state."""
    manager: Any = logging.Logger.manager
    original = getattr(manager, "_clear_cache", None)
    if original is None:
        _logging_unwatched()
        return
    if getattr(original, "_ferrolock_watch", False):
        return

    def clear_cache() -> None:
        original()
        _logging_changed()

    clear_cache._ferrolock_watch = True  # type: ignore[attr-defined]
    manager._clear_cache = clear_cache
    _logging_changed()
