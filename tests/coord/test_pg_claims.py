"""Scope claims on PostgreSQL: the exclusion constraint itself, and claims under failure (a killed
claimant, a paused one, a server restart). Every test runs against a real server (see ``pg.py``)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid

import ferrolock
import pytest
from claim_helpers import hold_claim, paused_claimant
from pg import PgCluster
from process_helpers import SPAWN, START_DEADLINE, cleanup_processes

pytestmark = pytest.mark.timeout(180)

LEASE = 2.0


@pytest.fixture
def project() -> str:
    return f"proj-{uuid.uuid4().hex[:12]}"


def row(project: str, path: str, modes: str, claim_id: int) -> str:
    key = "E'" + project + "".join("\\x01" + c for c in path.split("/")) + "'"
    return (
        f"INSERT INTO ferrolock.claims (claim_id, project, path, scope, modes, host, client_pid) VALUES "
        f"({claim_id}, '{project}', '{path}', ferrolock.path_range({key}, {key} || E'\\x02'), '{modes}', 'h', 1)"
    )


@pytest.mark.parametrize(
    "case",
    [
        ("a", "a", True),
        ("a", "a/b", True),
        ("a/b", "a", True),
        ("a/b", "a/bc", False),
        ("a/b", "a/b.c", False),
        ("a/b", "a/b-c", False),
        ("a/b", "a/c", False),
        ("a/b/c", "a/b/c/d/e", True),
    ],
)
def test_the_exclusion_constraint_forbids_exactly_the_conflicting_pairs(
    pg_template: PgCluster, pg_url: str, project: str, case: tuple[str, str, bool]
) -> None:
    a, b, conflict = case
    ferrolock.connect(pg_url)  # creates the schema
    exclusive, shared1, shared2 = "(,)", "[1,2)", "[2,3)"
    for first, second, expected in (
        (exclusive, exclusive, conflict),
        (shared1, exclusive, conflict),
        (exclusive, shared2, conflict),
        (shared1, shared2, False),
    ):
        sql = f"BEGIN; {row(project, a, first, 1)}; {row(project, b, second, 2)}; ROLLBACK;"
        if expected:
            with pytest.raises(subprocess.CalledProcessError) as info:
                pg_template.psql(sql)
            assert "claims_never_overlap" in info.value.stderr, info.value.stderr
        else:
            pg_template.psql(sql)


def test_a_killed_claimant_frees_its_claim_at_once(pg_url: str, project: str) -> None:
    held, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold_claim, args=(pg_url, project, ["src"], held, release))
    with cleanup_processes(holder):
        holder.start()
        assert held.wait(START_DEADLINE)
        claim = ferrolock.connect(pg_url).claims(project).claim("src/api")
        got = threading.Event()
        waiter = threading.Thread(target=lambda: (claim.acquire(timeout=START_DEADLINE), got.set()))
        waiter.start()
        assert not got.wait(0.3), "claimed a path inside a live claim"
        killed = time.monotonic()
        os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
        assert got.wait(START_DEADLINE)
        freed_after = time.monotonic() - killed
        waiter.join(START_DEADLINE)
        holder.join(START_DEADLINE)
    print(f"kill -9 to the waiter's claim: {freed_after * 1000:.1f} ms")
    assert freed_after < 0.5, f"freed {freed_after:.3f} s after the kill"


def test_a_paused_claimant_loses_its_claim_after_the_lease(pg_url: str, project: str) -> None:
    held, go = SPAWN.Event(), SPAWN.Event()
    mine, theirs = SPAWN.Pipe()
    holder = SPAWN.Process(
        target=paused_claimant, args=(pg_url, project, ["docs"], held), kwargs={"go": go, "report": theirs}
    )
    with cleanup_processes(holder):
        holder.start()
        assert held.wait(START_DEADLINE)
        os.kill(holder.pid, signal.SIGSTOP)  # type: ignore[arg-type]
        paused = time.monotonic()
        try:
            space = ferrolock.connect(pg_url).claims(project)
            with space.claim("docs/x", timeout=LEASE + 30):
                freed_after = time.monotonic() - paused
        finally:
            os.kill(holder.pid, signal.SIGCONT)  # type: ignore[arg-type]
        go.set()
        assert mine.poll(START_DEADLINE)
        outcome = mine.recv()
        holder.join(START_DEADLINE)
    assert outcome == "LockLost"
    assert LEASE * 2 / 3 - 0.05 < freed_after < LEASE + 1.0, f"freed after {freed_after:.2f} s"


def test_server_restart_ends_claims_and_they_can_be_made_again(own_cluster: PgCluster, project: str) -> None:
    url = own_cluster.url(lease="2s")
    lost = threading.Event()
    space = ferrolock.connect(url).claims(project)
    claim = space.claim("a", on_lost=lost.set)
    claim.acquire()
    own_cluster.restart("immediate")
    with pytest.raises(ferrolock.LockLost):
        claim.ensure_held()
    assert lost.wait(START_DEADLINE)
    claim.release()
    again = ferrolock.connect(url).claims(project)
    with again.claim("a/b", timeout=START_DEADLINE):
        assert [c["paths"] for c in again.live_claims()] == [["a/b"]]
