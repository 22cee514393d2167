"""The kill-storm driver shared by the ``test_kill_storm_*`` files.

A storm runs a pool of spawned workers that loop until a shared ``stop`` event is set, and for the storm's
duration SIGKILLs a random worker at a random moment and starts a replacement. Afterwards every surviving
worker must stop by itself within a bound (a worker stuck in a lock wait would not: "no waiter hangs"),
and the test checks its invariants on what the workers left on disk.

Workers journal each finished operation (one line, ``O_APPEND``) *after* it completed, so a kill can
leave at most one operation done but unjournaled per kill: the invariants allow exactly that much.
Several such kills in a row can leave the last few operations unjournaled, so the invariants never
assume the journal ends at the final state; they require that whoever made the unjournaled final
change was killed.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

from process_helpers import SPAWN

# A surviving worker must notice ``stop`` and exit within this; anything longer is a hang.
STOP_DEADLINE = 30.0
# A spawned worker must have imported its code within this.
READY_DEADLINE = 60.0


def _report_ready(told: Connection, target: Callable[..., None], args: Sequence[Any]) -> None:
    """Runs in the worker: by now ``target``'s module is imported (unpickling it did that)."""
    told.send_bytes(b"ready")
    told.close()
    target(*args)


class StopFlag:
    """Tells workers to stop: the existence of a file.

    Not a ``multiprocessing.Event``: a worker SIGKILLed inside ``Event.is_set()`` or ``Event.wait()``
    dies holding the event's internal lock or semaphore, and every other process then blocks on it
    (or ``set()`` fails its own consistency check). A ``stat`` cannot be left half done.

    A worker whose driver died (a test run killed from outside) counts the flag as set, so it stops
    instead of hammering the machine forever as an orphan.
    """

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="ferrolock-storm-")
        self.path = os.path.join(self.directory, "stop")
        self.driver = os.getpid()

    def is_set(self) -> bool:
        return os.path.exists(self.path) or os.getppid() != self.driver

    def set(self) -> None:
        Path(self.path).touch()

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class Storm:
    """What a storm did: how many workers it started and which pids it killed."""

    started: int = 0
    killed: list[int] = field(default_factory=list)

    @property
    def kills(self) -> int:
        return len(self.killed)


def run_storm(
    target: Callable[..., None],
    args: Callable[[int], Sequence[Any]],
    stop: StopFlag,
    *,
    seconds: float,
    workers: int = 6,
    pause: tuple[float, float] = (0.005, 0.05),
    extra: Sequence[SpawnProcess] = (),
    before_kill: Callable[[int], None] | None = None,
) -> Storm:
    """Run ``workers`` copies of ``target(*args(n))`` (``n`` numbers each start) and SIGKILL one at a
    random moment every ``pause`` seconds for ``seconds``; then set ``stop`` and require every survivor
    (and every process in ``extra``, which is never killed) to exit with status 0 within the bound.
    ``before_kill(pid)`` runs just before each kill (to note the time, for example)."""
    storm = Storm()
    rng = random.Random(os.getpid() ^ int(time.time()))

    def spawn() -> SpawnProcess:
        # A worker is killable once it has imported its module and is about to start working: killing
        # it during interpreter start-up (hundreds of ms under load) would test nothing, and a storm of
        # such kills would leave every invariant vacuously true.
        ready, told = SPAWN.Pipe(duplex=False)
        p = SPAWN.Process(target=_report_ready, args=(told, target, tuple(args(storm.started))))
        storm.started += 1
        p.start()
        told.close()
        try:
            assert ready.poll(READY_DEADLINE), f"worker {p.pid} did not start within {READY_DEADLINE} s"
            ready.recv_bytes()
        finally:
            ready.close()
        return p

    pool = [spawn() for _ in range(workers)]
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(*pause))  # a random moment, not a settling delay
            victim = pool.pop(rng.randrange(len(pool)))
            assert victim.is_alive(), f"worker {victim.pid} died by itself (exit code {victim.exitcode})"
            if before_kill is not None:
                before_kill(victim.pid or 0)
            os.kill(victim.pid or 0, signal.SIGKILL)
            storm.killed.append(victim.pid or 0)
            victim.join(STOP_DEADLINE)
            pool.append(spawn())
        stop.set()
        for p in [*pool, *extra]:
            p.join(STOP_DEADLINE)
            assert p.exitcode == 0, f"worker {p.pid} hung or failed after the storm (exit code {p.exitcode})"
    finally:
        stop.set()
        for p in [*pool, *extra]:
            if p.is_alive():
                p.kill()
                p.join(5)
        stop.remove()
    return storm


def journal(path: str) -> Callable[[str], None]:
    """An appender of single lines to ``path`` (``O_APPEND``: lines from many processes never mix)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(line: str) -> None:
        os.write(fd, f"{line}\n".encode())

    return append


def read_journal(path: Path) -> list[str]:
    """The complete lines of a journal (a kill can leave no partial line: each is one ``write``)."""
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def check_counter(counter: Path, journal_path: Path, killed: Collection[int]) -> tuple[int, int]:
    """Checks a counter that workers increment under a lock, writing ``"<value> <pid> ..."`` and then
    journaling a line that starts with the same value. Returns (journaled, unjournaled) increments.

    Two holders at once, or a lost update, shows as a value journaled twice, a journal out of order, or
    a counter below a journaled value. A worker killed between its write and its journal line leaves
    that increment unjournaled; if that is how the journal ends (possibly after several such kills in a
    row), the counter's last writer must be a killed worker.
    """
    lines = read_journal(journal_path)
    values = [int(line.split()[0]) for line in lines]
    text = counter.read_text(encoding="utf-8") if counter.exists() else "0 0"
    final, writer = (int(field) for field in text.split()[:2])
    context = f"{counter.name} is {text!r}; the journal ends {lines[-3:]}"
    assert len(values) == len(set(values)), f"a value journaled twice: two holders at once ({context})"
    assert values == sorted(values), f"journal order disagrees with lock order ({context})"
    last = values[-1] if values else 0
    assert last <= final, f"the counter is below a journaled value: a lost update ({context})"
    if final > last:
        assert writer in killed, f"the last increment was not journaled, yet its writer lives ({context})"
    return len(values), final - len(values)


def leftovers(directory: Path, expected: set[str]) -> list[str]:
    """Names in ``directory`` other than ``expected``: what crashed writers left behind."""
    return sorted(p.name for p in directory.iterdir() if p.name not in expected)
