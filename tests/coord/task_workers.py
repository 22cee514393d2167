"""Process targets of the task-queue tests (importable by spawned children)."""

from __future__ import annotations

from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event

import ferrolock


def drain(url: str, queue: str, by: str, start: Event, out: Connection) -> None:
    """Claims tasks without waiting until none is left, removing each; sends the ids claimed."""
    tasks = ferrolock.connect(url).tasks(queue)
    start.wait(60)
    claimed: list[str] = []
    while (task := tasks.claim_next(by=by, block=False)) is not None:
        claimed.append(task)
        tasks.remove(task)
    out.send(claimed)


def claim_and_hold(where: tuple[str, str], task: str, held: Event, go: Event, out: Connection) -> None:
    """Claims ``task`` in queue ``where`` (url, queue), reports, waits for ``go`` and sends what its
    release said."""
    tasks = ferrolock.connect(where[0]).tasks(where[1])
    result = tasks.claim(task, by="holder")
    out.send(result.outcome)
    held.set()
    go.wait(120)
    out.send(tasks.release(task, by="holder"))


def wait_for_task(url: str, queue: str, ready: Event, out: Connection) -> None:
    """Blocks in ``claim_next`` (60 s at most) and sends what it claimed."""
    tasks = ferrolock.connect(url).tasks(queue)
    ready.set()
    out.send(tasks.claim_next(by="waiter", timeout=60))


def add_tasks(url: str, queue: str, *ids: str) -> None:
    ferrolock.connect(url).tasks(queue).add(*ids)
