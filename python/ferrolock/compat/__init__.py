"""Drop-in replacements for hand-written legacy ``fcntl.flock`` modules.

Each submodule mirrors one legacy module's names, signatures, messages and files on disk, and keeps the
Python-level hooks its tests patch; the mechanism is ferrolock's.

* ``ferrolock.compat.little_loops`` replaces little-loops' ``little_loops.fsm.concurrency``
  (``ScopeLock``, ``LockManager``, ``resolve_scope``); native names ``ferrolock.LockManager`` and
  ``ferrolock.ScopeLock``.
"""
