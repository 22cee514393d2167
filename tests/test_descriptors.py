"""A process keeps a bounded number of idle descriptors, however many lock objects it keeps alive.

A released ``FileLock`` (or ``StateFile``, whose lock is one) keeps its descriptor open so that the next
acquisition skips the ``open``; kept for every object, about a thousand live objects would exhaust the
default ``RLIMIT_NOFILE`` and the application's own ``open()`` would fail. The bound is 64 descriptors,
or 1/16 of the soft limit if that is smaller (at least 4).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_CHILD = textwrap.dedent(
    """
    import json, os, resource, sys
    import ferrolock

    directory, soft, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    def open_descriptors():
        return len(os.listdir("/proc/self/fd"))

    base = open_descriptors()
    alive = []
    for i in range(2 * soft):
        if kind == "FileLock":
            obj = ferrolock.FileLock(os.path.join(directory, f"{i}.lock"))
            obj.acquire()
            obj.release()
        else:
            obj = ferrolock.StateFile(os.path.join(directory, f"{i}.txt"))
            with obj.locked():  # takes and releases the StateFile's lock, without 2,048 fsyncs
                pass
        alive.append(obj)
    kept = open_descriptors() - base
    mine = [open(os.devnull, "rb") for _ in range(soft // 2)]   # the application's own files
    # A recently released object still gets its descriptor back (no new open).
    alive[-1].acquire() if kind == "FileLock" else alive[-1].write(b"again")
    print(json.dumps({"kept": kept, "opened": len(mine), "after_reuse": open_descriptors() - base - len(mine)}))
    """
)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["FileLock", "StateFile"])
@pytest.mark.parametrize(("soft_limit", "bound"), [(1024, 64), (256, 16)])
def test_many_released_objects_keep_a_bounded_number_of_descriptors(
    tmp_path: Path, kind: str, soft_limit: int, bound: int
) -> None:
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path), str(soft_limit), kind],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert result["kept"] <= bound, f"{2 * soft_limit} released {kind}s keep {result['kept']} descriptors open"
    assert result["opened"] == soft_limit // 2
    assert result["after_reuse"] <= bound
