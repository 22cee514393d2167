"""Drop-in replacements for hand-written legacy ``fcntl.flock`` modules.

Each submodule mirrors one legacy module's names, signatures, messages and files on disk, and keeps the
Python-level hooks its callers and tests patch; the mechanism (locks, waits, atomic writes, claim
records) is ferrolock's core. Each module's docstring lists its "Differences from <legacy>".

* ``ferrolock.compat.logist`` replaces logist's ``logist.core.locking`` (``FileLock``, ``JobLockManager``,
  ``LockError``, ``job_directory_lock``, ``try_lock_job_directory``) and its
  ``JobManagerService.ensure_workspace_ready``; native names ``ferrolock.JobLockManager``,
  ``ferrolock.JobLock`` and ``ferrolock.run_once``.
* ``ferrolock.compat.blackbox5`` replaces BlackBox5's ``state_manager`` (``StateManager``,
  ``WorkflowState``, ``TaskState``); native names ``ferrolock.StateManager`` and friends, built on
  ``ferrolock.StateFile``.
* ``ferrolock.compat.little_loops`` replaces little-loops' ``little_loops.fsm.concurrency``
  (``ScopeLock``, ``LockManager``, ``resolve_scope``); native names ``ferrolock.LockManager`` and
  ``ferrolock.ScopeLock``.
* ``ferrolock.compat.todo2.file_lock`` and ``ferrolock.compat.todo2.task_locking`` replace todo2/exarp's
  ``project_management_automation.utils.file_lock`` and ``utils.task_locking``.
"""
