"""The legacy tools on a fleet: with ``FERROLOCK_URL`` set, the compat modules' locks exclude processes
on other hosts (here: processes with their own working tree and ``FERROLOCK_ROOT``) through the
coordinator, and still exclude processes on the same host that use the files alone (legacy code, or
ferrolock without the variable). Without the variable two hosts do not exclude each other: the negative
control that shows what the coordinator adds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from fleet_helpers import (
    BLACKBOX5_HOLD,
    BLACKBOX5_TRY,
    LITTLE_LOOPS_HOLD,
    LITTLE_LOOPS_TRY,
    LOGIST_HOLD,
    LOGIST_LOOP,
    LOGIST_TRY,
    TODO2_HOLD,
    TODO2_TRY,
    holding_on,
    host_env,
    run_on,
)

pytestmark = pytest.mark.timeout(180)


def hosts(tmp_path: Path) -> tuple[Path, Path]:
    """Two hosts' trees with the same layout: a logist job, a todo2 project, a BlackBox5 state dir."""
    trees = []
    for host in ("host-a", "host-b"):
        root = tmp_path / host / "checkout"
        (root / "jobs" / "j1").mkdir(parents=True)
        (root / ".todo2").mkdir()
        trees.append(root)
    return trees[0], trees[1]


@pytest.mark.parametrize(
    ("hold", "probe"),
    [
        (LOGIST_HOLD, LOGIST_TRY),
        (TODO2_HOLD, TODO2_TRY),
        (BLACKBOX5_HOLD, BLACKBOX5_TRY),
        (LITTLE_LOOPS_HOLD, LITTLE_LOOPS_TRY),
    ],
    ids=["logist", "todo2", "blackbox5", "little-loops"],
)
def test_a_lock_on_one_host_excludes_the_other_host_and_the_files_still_exclude_locally(
    pg_url: str, tmp_path: Path, hold: str, probe: str
) -> None:
    a, b = hosts(tmp_path)
    with holding_on(pg_url, a, hold) as holder:
        assert run_on(pg_url, b, probe) == "busy", "the other host is excluded through the coordinator"
        assert run_on(None, a, probe) == "busy", "a process on the same host using the files is excluded"
        assert run_on(None, b, probe) == "got", "without the coordinator the other host is not excluded"
        status = subprocess.run(
            [sys.executable, "-m", "ferrolock.cli", "status", "--url", pg_url, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        if hold is not LITTLE_LOOPS_HOLD:  # scope claims are claims, not locks: see the claims tests
            held = {
                lock["name"]: entry["holder"]["pid"]
                for lock in json.loads(status.stdout)["locks"]
                for entry in lock["holders"]
                if entry["holder"]
            }
            assert holder.pid in held.values(), held
            names = [name for name, pid in held.items() if pid == holder.pid]
            # Relative to FERROLOCK_ROOT, so hosts with different checkouts agree.
            assert all(name.startswith("file:") and not name.startswith("file:/") for name in names), names
    assert run_on(pg_url, b, probe) == "got", "released on both"


def test_the_lock_file_on_the_holders_host_still_carries_its_record(pg_url: str, tmp_path: Path) -> None:
    a, _ = hosts(tmp_path)
    with holding_on(pg_url, a, LOGIST_HOLD) as holder:
        record = json.loads((a / "jobs" / "j1" / ".lock").read_text())
        assert record["pid"] == holder.pid, "legacy readers on the host see the holder as before"


def test_processes_on_two_hosts_never_hold_one_job_at_once(pg_url: str, tmp_path: Path) -> None:
    a, b = hosts(tmp_path)
    log = tmp_path / "log"
    procs = []
    for root in (a, a, b, b):
        env = host_env(pg_url, root) | {"FLEET_LOG": str(log), "FLEET_ROUNDS": "10"}
        procs.append(subprocess.Popen([sys.executable, "-c", LOGIST_LOOP], cwd=root, env=env))
    for proc in procs:
        assert proc.wait(120) == 0
    lines = log.read_text().splitlines()
    assert len(lines) == 2 * 4 * 10
    for enter, leave in zip(lines[::2], lines[1::2], strict=True):
        assert enter.startswith("in ")
        assert leave == "out " + enter[3:], "two holders overlapped"
    assert len(Counter(line.split()[1] for line in lines)) == 4


def test_without_the_variable_nothing_changes(tmp_path: Path) -> None:
    a, _ = hosts(tmp_path)
    env_before = os.environ.get("FERROLOCK_URL")
    assert env_before is None, "the suite runs without FERROLOCK_URL"
    with holding_on(None, a, LOGIST_HOLD):
        assert run_on(None, a, LOGIST_TRY) == "busy"
