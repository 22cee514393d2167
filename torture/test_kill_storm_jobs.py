"""Kill storms on logist's job locks (with a stale-lock cleaner removing every unheld lock file as fast as
it can) and on ``run_once`` (setups that delete and recreate their own folder), with workers SIGKILLed at
random moments.

Job locks: per job, a counter incremented under the job's lock and journaled under it. Afterwards no
value is journaled twice (two holders at once, even while the cleaner unlinks lock files), the journals
follow lock order, no counter is below its journal, at most one increment per kill went unjournaled
(and a counter ahead of its journal was last written by a killed worker), and every lock is free.

run_once: per round, a setup that journals its start and end. Afterwards two setups never overlapped,
every setup that did not write its marker belongs to a worker killed before the next setup started,
every round with a marker got it from its last setup (none ran again after a marker was written), and
every lock is free. (A worker killed after its setup returned but before the marker was renamed
into place leaves no marker: the next caller runs the setup again, which is the contract.)
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import ferrolock
from conftest import storm_seconds
from storm import StopFlag, check_counter, journal, read_journal, run_storm

JOBS = 4


def _job_worker(base: str, stop: StopFlag, n: int) -> None:
    manager = ferrolock.JobLockManager(base)
    if n % 6 == 0:  # the cleaner: removes every lock file nobody holds, as fast as it can
        while not stop.is_set():
            manager.cleanup_stale_locks(max_age_seconds=0)
        return
    rng = random.Random(n)
    logs = {}
    pid = os.getpid()
    while not stop.is_set():
        job = f"job-{rng.randrange(JOBS)}"
        counter = Path(base) / job / "counter"
        with manager.job_lock(job, timeout=60) as lock:
            # The counter and the journal name the writer and the inode it held, so a failure can say
            # which two holders overlapped.
            fd = lock._lock_fd
            assert fd is not None, "a job lock handed out unheld"
            held = os.fstat(fd).st_ino
            value = int(counter.read_text().split()[0] if counter.exists() else "0") + 1
            ferrolock.atomic_write(counter, f"{value} {pid} {held}", durable=False)
            if job not in logs:
                logs[job] = journal(str(Path(base) / job / "journal"))
            logs[job](f"{value} {pid} {held}")


def test_job_lock_kill_storm(tmp_path: Path, report: Callable[..., None]) -> None:
    stop = StopFlag()
    storm = run_storm(_job_worker, lambda n: (str(tmp_path), stop, n), stop, seconds=storm_seconds())

    operations = unjournaled = 0
    for job in range(JOBS):
        job_dir = tmp_path / f"job-{job}"
        journaled, missing = check_counter(job_dir / "counter", job_dir / "journal", storm.killed)
        if (job_dir / ".lock").exists():
            assert ferrolock.probe(job_dir / ".lock")[0] == "free", "a dead worker's job lock is still held"
        operations += journaled
        unjournaled += missing
    assert operations > 0, "no operation finished: the storm tested nothing"
    # A killed worker held at most one job lock, so at most one increment per kill went unjournaled.
    assert unjournaled <= storm.kills, f"{unjournaled} unjournaled increments for {storm.kills} kills"
    report(
        "job-lock kill storm (with a concurrent stale-lock cleaner)",
        seconds=storm_seconds(),
        operations=operations,
        kills=storm.kills,
        lost=0,
        duplicated=0,
    )


# --- run_once -----------------------------------------------------------------------------------------


def _once_worker(base: str, stop: StopFlag, n: int) -> None:
    log = journal(str(Path(base) / "journal"))
    rng = random.Random(n)
    pid = os.getpid()
    r = 0
    while not stop.is_set():
        workspace = Path(base) / f"ws-{r}"

        def setup(r: int = r, workspace: Path = workspace) -> None:
            log(f"start {r} {pid}")
            shutil.rmtree(workspace, ignore_errors=True)  # logist's setup replaces the whole folder
            workspace.mkdir()
            # The setup's own work takes a while, so kills land inside it too.
            time.sleep(rng.uniform(0, 0.03))
            log(f"end {r} {pid}")

        ferrolock.run_once(
            workspace / ".setup_done",
            Path(base) / f"ws-{r}.lock",
            setup,
            also_lock=[workspace / ".workspace_setup.lock"],
            marker_text=f"by {pid}",
        )
        r += 1


def test_run_once_kill_storm(tmp_path: Path, report: Callable[..., None]) -> None:
    stop = StopFlag()
    # Workers need a moment to start (spawn + import); kill less often than the lock storms do, so most
    # of them live into their setups.
    storm = run_storm(
        _once_worker, lambda n: (str(tmp_path), stop, n), stop, seconds=storm_seconds(), pause=(0.01, 0.1)
    )
    killed = {str(pid) for pid in storm.killed}

    lines = [line.split() for line in read_journal(tmp_path / "journal")]
    last_event = {pid: i for i, (_what, _r, pid) in enumerate(lines)}
    events: dict[int, list[tuple[str, str]]] = {}
    for i, (what, r, pid) in enumerate(lines):
        seq = events.setdefault(int(r), [])
        if seq and seq[-1][1] != pid:
            # Another worker's setup came before this one and did not write the marker (or this one
            # would not have started): that worker must have been killed inside its setup or before
            # its marker was written, and never heard from again. Otherwise two setups overlapped.
            gone = seq[-1][1]
            assert gone in killed, f"round {r}: two setups overlapped: {[*seq, (what, pid)]}"
            assert last_event[gone] < i, f"round {r}: a setup ran beside a live one: {[*seq, (what, pid)]}"
        seq.append((what, pid))
    finished = 0
    for r, seq in sorted(events.items()):
        marker = tmp_path / f"ws-{r}" / ".setup_done"
        if not marker.exists():
            assert seq[-1][1] in killed, f"round {r}: no marker, yet its last setup was not killed: {seq}"
            continue
        by = marker.read_text().removeprefix("by ")
        assert seq[-2:] == [("start", by), ("end", by)], f"round {r}: the marker is not the last setup's: {seq}"
        assert not [p for p in (tmp_path / f"ws-{r}").iterdir() if ".tmp-" in p.name], "marker litter"
        finished += 1
    for lock in tmp_path.glob("*.lock"):
        assert ferrolock.probe(lock)[0] == "free", f"{lock.name} is still held by a dead worker"
    started = sum(what == "start" for what, _r, _pid in lines)
    report(
        "run_once kill storm (setups that replace their folder)",
        seconds=storm_seconds(),
        operations=finished,
        setups_started=started,
        kills=storm.kills,
        setups_killed=started - finished,
        lost=0,
        duplicated=0,
    )
