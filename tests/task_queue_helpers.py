"""Workers for ``test_task_queue.py`` (module-level, so spawned processes can import them)."""

from __future__ import annotations

import platform
import signal
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from process_helpers import START_DEADLINE


def drain(path: str, name: str, start: Event, out: Queue[Any]) -> None:
    """Claim tasks with ``claim_next`` until none is left; put ``(name, [ids])``."""
    import ferrolock

    queue = ferrolock.TaskQueue(path, timeout=60)
    start.wait(START_DEADLINE)
    mine = []
    while (task := queue.claim_next(by=name, block=False)) is not None:
        mine.append(task)
    out.put((name, mine))


def wait_for_task(path: str, name: str, out: Queue[Any]) -> None:
    """Block in ``claim_next`` (a minute at most); put what it claimed."""
    import ferrolock

    out.put(ferrolock.TaskQueue(path).claim_next(by=name, timeout=60))


def hold_task_lock(path: str, task_id: str, held: Event) -> None:
    """Hold a task's lock file (as a worker does while it works on the task) until killed."""
    import ferrolock

    queue = ferrolock.TaskQueue(path)
    lock = ferrolock.FileLock(queue.task_lock_path(task_id))
    lock.acquire()
    held.set()
    while True:  # until SIGKILL
        signal.pause()


# System call numbers of poll and ppoll (arm64 has only ppoll).
_POLLS = {"x86_64": {"7", "271"}, "aarch64": {"73"}}.get(platform.machine(), {"7", "271"})


def threads_in_poll(pid: int) -> int:
    """How many threads of ``pid`` sleep in ``poll``/``ppoll`` right now."""
    asleep = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            syscall = (task / "syscall").read_text().split()
        except OSError:
            continue
        if syscall and syscall[0] in _POLLS:
            asleep += 1
    return asleep
