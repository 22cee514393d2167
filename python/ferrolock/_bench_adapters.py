"""The locks the benchmark compares, behind one tiny interface.

Each adapter opens its lock the way that library's users do, with the library's defaults, so the
numbers are what users get. Adapters are created by name in child processes (spawn), hence the registry.
"""

from __future__ import annotations

import fcntl
import os
import time
from typing import Any, Protocol


class Adapter(Protocol):
    name: str

    def __init__(self, path: str) -> None: ...

    def acquire(self, timeout: float | None) -> bool:
        """Take the lock; ``None`` waits forever. False if the timeout passed."""

    def release(self) -> None: ...


class BlockingFlock:
    """``fcntl.flock`` blocking on an open descriptor: the kernel's own hand-off, the floor. It has no
    timeout (a caller would need signals), so it only takes part where none is needed."""

    name = "fcntl.flock (blocking)"

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def acquire(self, timeout: float | None) -> bool:
        if timeout is not None:
            raise NotImplementedError("blocking flock has no timeout")
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return True

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)


class PollingFlock:
    """What the four legacy modules do: ``LOCK_NB`` and ``time.sleep(0.1)`` until it works."""

    name = "fcntl + sleep(0.1) (legacy)"
    interval = 0.1

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def acquire(self, timeout: float | None) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        start = time.time()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.fd = fd
                return True
            except BlockingIOError:
                if timeout is not None and time.time() - start > timeout:
                    os.close(fd)
                    return False
                time.sleep(self.interval)

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


class _FilelockStyle:
    """A py-filelock-shaped lock (``acquire(timeout=...)`` raising a timeout error, ``release()``)."""

    lock: Any
    timeout_error: type[Exception]

    def acquire(self, timeout: float | None) -> bool:
        try:
            self.lock.acquire(timeout=-1 if timeout is None else timeout)
        except self.timeout_error:
            return False
        return True

    def release(self) -> None:
        self.lock.release()


class PyFilelock(_FilelockStyle):
    name = "filelock"

    def __init__(self, path: str) -> None:
        import filelock

        self.lock = filelock.FileLock(path)
        self.timeout_error = filelock.Timeout


class Portalocker:
    name = "portalocker"

    def __init__(self, path: str) -> None:
        import portalocker

        self.portalocker = portalocker
        self.path = path
        self.lock: portalocker.Lock | None = None

    def acquire(self, timeout: float | None) -> bool:
        # portalocker has no "forever"; a day is forever for a benchmark.
        lock = self.portalocker.Lock(self.path, timeout=86400.0 if timeout is None else timeout)
        try:
            lock.acquire()
        except self.portalocker.LockException:
            return False
        self.lock = lock
        return True

    def release(self) -> None:
        assert self.lock is not None
        self.lock.release()


class Ferrolock(_FilelockStyle):
    name = "ferrolock"

    def __init__(self, path: str) -> None:
        import ferrolock

        self.lock = ferrolock.FileLock(path, detect_deadlock=False)
        self.timeout_error = ferrolock.Timeout


ADAPTERS: dict[str, type[Adapter]] = {
    "floor": BlockingFlock,
    "legacy": PollingFlock,
    "filelock": PyFilelock,
    "portalocker": Portalocker,
    "ferrolock": Ferrolock,
}


def available() -> list[str]:
    """Adapter keys whose library is importable here (filelock and portalocker are optional)."""
    keys = []
    for key in ADAPTERS:
        module = {"filelock": "filelock", "portalocker": "portalocker"}.get(key)
        if module is not None:
            try:
                __import__(module)
            except ImportError:
                continue
        keys.append(key)
    return keys


def make(key: str, path: str) -> Adapter:
    return ADAPTERS[key](path)
