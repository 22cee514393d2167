"""One worker of the fault storm: increments a fenced counter under the lock, forever, and logs
``token count`` for every write the coordinator accepted; then increments the coordinator state of the
same name by a locked edit and logs the count it wrote (in ``<log>.state``) once the edit returned.
Errors from faults (a lost lease, a restarted server, a stale token) are expected: the worker backs off
briefly and tries again."""

from __future__ import annotations

import os
import sys
import time

import ferrolock


def main(url: str, name: str, log_path: str) -> None:
    log = open(log_path, "a", buffering=1, encoding="ascii")  # noqa: SIM115 (kept for the whole run)
    state_log = open(log_path + ".state", "a", buffering=1, encoding="ascii")  # noqa: SIM115
    coord = None
    while True:
        try:
            if coord is None:
                coord = ferrolock.connect(url)
            lock = coord.lock(name, timeout=20)
            with lock:
                current = coord.fenced_read(name)
                count = int(current[1]) if current else 0
                token = lock.token
                lock.fenced_write(str(count + 1).encode())
                log.write(f"{token} {count + 1}\n")
            with coord.state(name, timeout=20).edit() as draft:
                written = int(draft.data or b"0") + 1
                draft.data = str(written).encode()
            state_log.write(f"{written}\n")
        except (ferrolock.LockLost, ferrolock.CoordinatorError, ferrolock.Timeout) as exc:
            print(f"worker {os.getpid()}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            time.sleep(0.05)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
