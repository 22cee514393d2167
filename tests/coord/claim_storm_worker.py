"""One worker of the claim storm: claims random path sets of a small tree, forever, and logs for each
claim the interval it provably held it: from the moment ``acquire`` returned (the grant came before)
to the moment a successful ``ensure_held()`` was sent (the server answered after: the claim's session
was alive all along). Errors from faults (a lost lease, a timeout) are expected: it tries again."""

from __future__ import annotations

import os
import random
import sys
import time

import ferrolock

TREE = ["a", "a/b", "a/b/c", "a/d", "e", "e/f", "."]


def main(url: str, project: str, log_path: str) -> None:
    log = open(log_path, "a", buffering=1, encoding="ascii")  # noqa: SIM115 (kept for the whole run)
    rng = random.Random(os.getpid())
    space = None
    while True:
        try:
            if space is None:
                space = ferrolock.connect(url).claims(project)
            paths = rng.sample(TREE[:-1], rng.randint(1, 2)) if rng.random() > 0.05 else ["."]
            shared = rng.random() < 0.3
            claim = space.claim(paths, shared=shared, timeout=5)
            with claim:
                start = time.monotonic()
                time.sleep(rng.uniform(0, 0.02))
                confirmed = time.monotonic()
                claim.ensure_held()
                log.write(f"{start:.6f} {confirmed:.6f} {int(shared)} {','.join(claim.paths)}\n")
        except (ferrolock.LockLost, ferrolock.CoordinatorError, ferrolock.Timeout) as exc:
            print(f"worker {os.getpid()}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            time.sleep(0.05)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
