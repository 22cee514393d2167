"""Drop-in for todo2/exarp's task locking: ``file_lock`` replaces
``project_management_automation.utils.file_lock``, ``task_locking`` replaces
``project_management_automation.utils.task_locking`` and ``project_root`` the project-root lookup they
share. See each module's docstring for the differences from the legacy code.
"""
