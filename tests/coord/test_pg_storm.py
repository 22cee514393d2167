"""A bounded random-fault storm over a fenced counter and a coordinator state: workers are killed, paused
past their lease, cut off (their traffic swallowed) and the server is restarted with ``-m immediate``,
while every worker keeps incrementing one counter under the lock and one state value by locked edits.
Afterwards: no lost update in either, never two exclusive holders of a name (sampled in ``pg_locks``
throughout), tokens strictly increasing."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import ferrolock
import pytest
from failure_helpers import SwallowingProxy
from pg import PgCluster

STORM_SECONDS = float(os.environ.get("FERROLOCK_STORM_SECONDS", "15"))
WORKERS = 4
WORKER = str(Path(__file__).with_name("storm_worker.py"))

pytestmark = pytest.mark.timeout(STORM_SECONDS * 4 + 120)


def test_fault_storm_over_a_fenced_counter(own_cluster: PgCluster, tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("FERROLOCK_STORM_SEED", "16")))
    name = "storm/counter"
    proxies = [SwallowingProxy(own_cluster.port) for _ in range(WORKERS)]
    urls = [
        own_cluster.url(lease="1s", connect_timeout="5").replace(f":{own_cluster.port}/", f":{p.port}/")
        for p in proxies
    ]
    logs = [tmp_path / f"worker{i}.log" for i in range(WORKERS)]
    errors = [open(tmp_path / f"worker{i}.err", "w", encoding="utf-8") for i in range(WORKERS)]  # noqa: SIM115

    def spawn(i: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, WORKER, urls[i], name, str(logs[i])], stderr=errors[i])

    workers = [spawn(i) for i in range(WORKERS)]
    faults = {"kill": 0, "pause": 0, "cut": 0, "restart": 0}
    max_holders = 0
    holders_sql = (  # the most exclusive holders of any one name (the counter's lock, the state's lock)
        "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'"
        " AND objsubid = 2 AND granted AND mode = 'ExclusiveLock' GROUP BY objid) AS per_name"
    )
    try:
        end = time.monotonic() + STORM_SECONDS
        plan = ["kill", "pause", "cut", "restart"]  # each kind at least once, in a random order
        rng.shuffle(plan)
        while time.monotonic() < end:
            fault = plan.pop() if plan else rng.choice(["kill", "kill", "pause", "cut", "restart", "none"])
            i = rng.randrange(WORKERS)
            if fault == "kill":
                workers[i].kill()
                workers[i].wait(30)
                workers[i] = spawn(i)
            elif fault == "pause":
                workers[i].send_signal(signal.SIGSTOP)
                time.sleep(rng.uniform(1.2, 2.0))  # past the 1 s lease
                workers[i].send_signal(signal.SIGCONT)
            elif fault == "cut":
                proxies[i].swallow()
                time.sleep(rng.uniform(1.2, 2.0))
                proxies[i].resume()
            elif fault == "restart" and faults["restart"] < 2:
                own_cluster.restart("immediate")
            else:
                time.sleep(0.3)
                fault = "none"
            if fault != "none":
                faults[fault] += 1
            with contextlib.suppress(subprocess.CalledProcessError):  # the server is restarting
                max_holders = max(max_holders, int(own_cluster.psql(holders_sql)))
        time.sleep(2.0)  # every worker makes progress again after the last fault
    finally:
        for w in workers:
            w.send_signal(signal.SIGCONT)
            w.kill()
            w.wait(30)
        for p in proxies:
            p.close()
        for e in errors:
            e.close()
    writes = sorted(
        (int(t), int(c))
        for log in logs
        if log.exists()
        for t, c in (line.split() for line in log.read_text().splitlines())
    )
    tokens = [t for t, _ in writes]
    counts = [c for _, c in writes]
    final = ferrolock.connect(own_cluster.url()).fenced_read(name)
    assert final is not None
    final_token, final_count = final[0], int(final[1])
    assert len(writes) > 20, f"the storm left too little progress to judge: {writes}"
    assert len(set(tokens)) == len(tokens), "two accepted writes with one token"
    assert counts == sorted(counts), "a lost update: a later token wrote a smaller count"
    assert len(set(counts)) == len(counts), "a lost update: two writes of one count"
    # A write can be committed without its worker hearing of it (killed before logging, the answer lost
    # in a restart or a cut): at most one per such fault, since only the holder writes.
    unacknowledged = faults["kill"] + faults["restart"] + faults["cut"]
    assert counts[-1] <= final_count <= counts[-1] + unacknowledged
    assert len(writes) <= final_count <= len(writes) + unacknowledged, "every increment is an accepted write"
    assert final_token >= tokens[-1]
    assert max_holders <= 1, "two exclusive holders at once"
    # The state edits: the same bounds, with acknowledged edits (a worker logs after its edit returned).
    edits = sorted(
        int(line) for log in logs if Path(f"{log}.state").exists() for line in Path(f"{log}.state").read_text().split()
    )
    final_state = int(ferrolock.connect(own_cluster.url()).state(name).read() or b"0")
    assert len(edits) > 10, f"the storm left too little state progress to judge: {edits}"
    assert len(set(edits)) == len(edits), "a lost state update: two acknowledged edits wrote one count"
    assert edits[-1] <= final_state <= edits[-1] + unacknowledged
    assert len(edits) <= final_state <= len(edits) + unacknowledged
    print(f"storm: {faults}, {len(writes)} logged writes, final count {final_count}, {len(edits)} state edits")
