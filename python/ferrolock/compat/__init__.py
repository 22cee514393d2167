"""Drop-in replacements for hand-written legacy ``fcntl.flock`` modules.

Each submodule mirrors one legacy module's names, signatures, messages and files on disk, and keeps the
Python-level hooks its callers patch; the mechanism (locks, waits, atomic writes) is ferrolock's core.

* ``ferrolock.compat.todo2.file_lock`` and ``ferrolock.compat.todo2.task_locking`` replace todo2/exarp's
  ``project_management_automation.utils.file_lock`` and ``utils.task_locking``.
"""
