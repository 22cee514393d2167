"""Mixed fleets: ferrolock processes and un-upgraded little-loops processes on one `.running` directory.

The legacy side is a minimal writer built from the protocol spec (``scope_helpers.legacy_*``: the
`.acquire.lock` sentinel, records written in place, pid liveness), so these run in CI without the
legacy sources. When ``FERROLOCK_MIRRORS`` names the folder of bare mirrors, the last test also runs
the real legacy module (extracted into a temporary directory at run time, never stored).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
from ferrolock.compat import little_loops as ll
from legacy_source import LITTLE_LOOPS, read_legacy_file
from process_helpers import cleanup_processes
from scope_helpers import (
    BOUND,
    DEFAULT_IMPL,
    acquire_until_interrupted,
    hold_claim,
    legacy_hold,
    legacy_hold_sentinel,
    legacy_try,
)

ctx = multiprocessing.get_context("spawn")


@pytest.fixture
def loops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src" / "api").mkdir(parents=True)
    return tmp_path / ".loops"


def _recv(conn: Connection) -> object:
    assert conn.poll(BOUND), "the legacy process did not answer"
    return conn.recv()


class Signalling(ll.LockManager):
    """Sets `seen` when a conflict check reaches a live conflicting claim (it asks `_get_ancestry`)."""

    def __init__(self, loops_dir: Path, seen: threading.Event) -> None:
        super().__init__(loops_dir)
        self.seen = seen

    def _get_ancestry(self) -> set[int]:
        self.seen.set()
        return super()._get_ancestry()


def _wait_in_thread(manager: ll.LockManager, scope: list[str], out: list[tuple[bool, float]]) -> threading.Thread:
    def run() -> None:
        out.append((manager.wait_for_scope(scope, timeout=20), time.monotonic()))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.timeout(60)
@pytest.mark.parametrize("end", ["release", "sigkill"])
def test_ferrolock_sees_and_waits_for_a_legacy_claim(loops: Path, end: str) -> None:
    conn, child_end = ctx.Pipe()
    legacy = ctx.Process(target=legacy_hold, args=(str(loops), "old", ["src"], child_end))
    with cleanup_processes(legacy):
        legacy.start()
        assert _recv(conn) is True
        manager = ll.LockManager(loops)
        assert not manager.acquire("new", ["src/api"])
        conflict = manager.find_conflict(["src/api"])
        assert conflict is not None
        assert (conflict.loop_name, conflict.pid) == ("old", legacy.pid)
        seen, out = threading.Event(), []
        waiter = _wait_in_thread(Signalling(loops, seen), ["src/api"], out)
        assert seen.wait(BOUND)
        if end == "release":
            ended = time.monotonic()
            conn.send("release")  # legacy release: unlink the record (the process lives on)
        else:
            # Judged by pid as before: a zombie still counts as alive, so reap it like its parent would.
            os.kill(legacy.pid, signal.SIGKILL)
            legacy.join(BOUND)
            ended = time.monotonic()
        waiter.join(BOUND)
        assert out
        assert out[0][0] is True
        assert out[0][1] - ended < 0.5, "woken by inotify / pidfd, not by a once-a-second poll"
        assert manager.acquire("new", ["src/api"])
        manager.release("new")
        if end == "release":
            conn.send("exit")


@pytest.mark.timeout(60)
def test_a_legacy_process_sees_a_ferrolock_claim(loops: Path) -> None:
    manager = ll.LockManager(loops)
    assert manager.acquire("new", ["src"])
    conn, child_end = ctx.Pipe()
    legacy = ctx.Process(target=legacy_try, args=(str(loops), "old", ["src/api"], child_end))
    with cleanup_processes(legacy):
        legacy.start()
        acquired, seen = _recv(conn)
    assert acquired is False
    assert isinstance(seen, dict)
    assert (seen["loop_name"], seen["pid"]) == ("new", os.getpid())
    manager.release("new")
    legacy = ctx.Process(target=legacy_try, args=(str(loops), "old", ["src/api"], child_end))
    with cleanup_processes(legacy):
        legacy.start()
        assert _recv(conn) == (True, None)


@pytest.mark.timeout(60)
def test_both_kinds_take_the_same_sentinel(loops: Path) -> None:
    conn, child_end = ctx.Pipe()
    legacy = ctx.Process(target=legacy_hold_sentinel, args=(str(loops), child_end))
    with cleanup_processes(legacy):
        legacy.start()
        assert _recv(conn) == "holding"
        out: list[bool] = []
        acquirer = threading.Thread(target=lambda: out.append(ll.LockManager(loops).acquire("new", ["src"])))
        acquirer.start()
        acquirer.join(0.3)
        assert acquirer.is_alive(), "acquire went ahead while a legacy process held .acquire.lock"
        conn.send("go")
        assert _recv(conn) == "released"
        acquirer.join(BOUND)
    assert out == [True]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("in_log", [False, True], ids=["in-wait", "in-log-call"])
def test_ctrl_c_interrupts_an_acquire_stuck_behind_a_legacy_sentinel_holder(loops: Path, in_log: bool) -> None:
    """The sentinel wait is in the kernel with the GIL released; Ctrl-C still ends it, claiming nothing,
    even when the signal's handler runs inside a log call the wait makes."""
    conn, child_end = ctx.Pipe()
    legacy = ctx.Process(target=legacy_hold_sentinel, args=(str(loops), child_end))
    ready = ctx.Event()
    stuck = ctx.Process(
        target=acquire_until_interrupted,
        args=(DEFAULT_IMPL, str(loops), ["src"], ready),
        kwargs={"in_log": in_log},
    )
    with cleanup_processes(legacy, stuck):
        legacy.start()
        assert _recv(conn) == "holding"
        stuck.start()
        assert ready.wait(BOUND)
        os.kill(stuck.pid, signal.SIGINT)
        stuck.join(10)  # well before the legacy holder's own time limit (BOUND)
        assert stuck.exitcode == 7
        conn.send("go")
    assert not (loops / ".running" / "stuck.lock").exists()


def _legacy_source() -> str | None:
    source = read_legacy_file(LITTLE_LOOPS)
    return None if source is None else source.decode()


LEGACY_PROBE = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import concurrency
m = concurrency.LockManager(Path(sys.argv[2]))
conflict = m.find_conflict(["src/api"])
ok = m.acquire("old", ["src/api"])
print(json.dumps({"conflict": conflict and conflict.loop_name, "acquired": ok}))
if ok:
    m.release("old")
"""


@pytest.mark.timeout(60)
def test_the_real_legacy_module_and_ferrolock_exclude_each_other(loops: Path, tmp_path: Path) -> None:
    source = _legacy_source()
    if source is None:
        pytest.skip("no little-loops mirror (set FERROLOCK_MIRRORS)")
    legacy_dir = tmp_path / "legacy"
    legacy_dir.mkdir()
    (legacy_dir / "concurrency.py").write_text(source)

    def legacy() -> dict[str, object]:
        done = subprocess.run(
            [sys.executable, "-c", LEGACY_PROBE, str(legacy_dir), str(loops)],
            capture_output=True,
            text=True,
            timeout=BOUND,
            check=True,
            cwd=loops.parent,
        )
        result: dict[str, object] = json.loads(done.stdout)
        return result

    # The claim is held by a sibling process: the legacy code ignores its own ancestors' claims.
    conn, child_end = ctx.Pipe()
    holder = ctx.Process(target=hold_claim, args=(DEFAULT_IMPL, str(loops), "new", ["src"], child_end))
    with cleanup_processes(holder):
        holder.start()
        assert _recv(conn) is True
        assert legacy() == {"conflict": "new", "acquired": False}
        conn.close()
        holder.join(BOUND)
    assert legacy() == {"conflict": None, "acquired": True}
