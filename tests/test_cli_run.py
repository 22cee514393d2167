"""``ferrolock run``: the flock(1) of this library, run as a real command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from process_helpers import SPAWN, START_DEADLINE, cleanup_processes, hold_lock

FERROLOCK = [sys.executable, "-m", "ferrolock.cli"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FERROLOCK, *args], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.timeout(60)
def test_runs_the_command_under_the_lock_and_returns_its_status(lock_path: Path) -> None:
    probe = f"import ferrolock, sys; state, rec = ferrolock.probe({str(lock_path)!r}); print(state, rec['purpose'])"
    out = run("run", str(lock_path), "--", sys.executable, "-c", probe)
    assert out.returncode == 0, out.stderr
    state, purpose = out.stdout.strip().split(" ", 1)
    assert state == "held"
    assert purpose == f"ferrolock run: {Path(sys.executable).name}", "the program, never its arguments"
    assert run("run", str(lock_path), "--", "sh", "-c", "exit 7").returncode == 7
    assert run("run", "--purpose", "nightly", str(lock_path), "--", "true").returncode == 0


@pytest.mark.timeout(60)
def test_conflicts_exit_with_the_conflict_code_without_running_the_command(lock_path: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    held, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold_lock, args=(str(lock_path), held, release, False, "holding it"))
    with cleanup_processes(holder):
        holder.start()
        assert held.wait(START_DEADLINE)
        touch = ["--", "touch", str(marker)]
        nonblock = run("run", "-n", str(lock_path), *touch)
        assert nonblock.returncode == 1
        assert nonblock.stderr == ""
        assert run("run", "-n", "-E", "75", str(lock_path), *touch).returncode == 75
        start = time.monotonic()
        waited = run("run", "--timeout", "0.2", "-E", "3", str(lock_path), *touch)
        assert time.monotonic() - start >= 0.2
        assert waited.returncode == 3
        assert "holding it" in waited.stderr  # the message names the holder
        assert not marker.exists()
        release.set()
        holder.join(START_DEADLINE)
    assert run("run", "-n", str(lock_path), "--", "touch", str(marker)).returncode == 0
    assert marker.exists()


@pytest.mark.timeout(60)
def test_signals_reach_the_command_and_the_lock_is_released(lock_path: Path) -> None:
    sleeper = "import time; print('up', flush=True); time.sleep(60)"
    with subprocess.Popen(
        [*FERROLOCK, "run", str(lock_path), "--", sys.executable, "-c", sleeper], stdout=subprocess.PIPE, text=True
    ) as runner:
        try:
            assert runner.stdout is not None
            assert runner.stdout.readline().strip() == "up"
            runner.send_signal(signal.SIGTERM)
            assert runner.wait(timeout=30) == 128 + signal.SIGTERM
        finally:
            if runner.poll() is None:
                runner.kill()
                runner.wait()
    assert run("run", "-n", str(lock_path), "--", "true").returncode == 0


def test_usage_errors(lock_path: Path) -> None:
    assert run("run", str(lock_path)).returncode == 2
    missing = run("run", str(lock_path), "--", "definitely-not-a-command-xyz")
    assert missing.returncode == 127
    assert "command not found" in missing.stderr


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("option", "value", "complaint"),
    [
        ("-E", "256", "an exit status from 0 to 255"),
        ("-E", "-1", "an exit status from 0 to 255"),
        ("-E", "x", "an exit status from 0 to 255"),
        ("-w", "nan", "a number of seconds, 0 or more (inf waits forever)"),
        ("-w", "-1", "a number of seconds, 0 or more (inf waits forever)"),
        ("-w", "soon", "a number of seconds, 0 or more (inf waits forever)"),
    ],
)
def test_out_of_range_options_are_usage_errors(
    lock_path: Path, tmp_path: Path, option: str, value: str, complaint: str
) -> None:
    """``-E 256`` exited 0 on a conflict (the shell keeps the low 8 bits) and ``-w nan`` waited forever."""
    marker = tmp_path / "ran"
    out = run("run", option, value, str(lock_path), "--", "touch", str(marker))
    assert out.returncode == 2
    assert f"argument --{'conflict-exit-code' if option == '-E' else 'timeout'}/{option}" in out.stderr
    assert complaint in out.stderr
    assert not marker.exists()
    assert not lock_path.exists()


@pytest.mark.timeout(60)
def test_an_infinite_wait_and_the_extreme_exit_statuses_are_accepted(lock_path: Path) -> None:
    assert run("run", "-w", "inf", "-E", "255", str(lock_path), "--", "true").returncode == 0
    assert run("run", "-w", "0", "-E", "0", str(lock_path), "--", "true").returncode == 0


@pytest.mark.timeout(60)
def test_the_record_names_the_program_not_its_arguments(lock_path: Path) -> None:
    """Arguments can hold tokens and passwords, and a record is readable by anyone who can read the lock
    file: by default it names the program only."""
    show = "import sys; print(open(sys.argv[1]).read())"
    done = run("run", str(lock_path), "--", sys.executable, "-c", show, str(lock_path), "--password=hunter2")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout.splitlines()[0])
    assert record["purpose"] == f"ferrolock run: {Path(sys.executable).name}"
    assert "hunter2" not in done.stdout, "the command's arguments leaked into the record"
