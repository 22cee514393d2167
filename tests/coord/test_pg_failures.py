"""The PostgreSQL backend under failure: a paused holder, a server restart, traffic that vanishes, a
cancel that races a grant. Every test runs against a real server (see ``pg.py``)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import ferrolock
import pytest
from failure_helpers import SwallowingProxy, paused_holder
from pg import PgCluster
from process_helpers import SPAWN, START_DEADLINE, cleanup_processes

pytestmark = pytest.mark.timeout(180)

LEASE = 2.0


def test_a_paused_holder_loses_the_lock_after_its_lease_and_its_stale_write_is_refused(pg_url: str, name: str) -> None:
    held, go = SPAWN.Event(), SPAWN.Event()
    mine, theirs = SPAWN.Pipe()
    holder = SPAWN.Process(target=paused_holder, args=(pg_url, name, held, go, theirs))
    with cleanup_processes(holder):
        holder.start()
        assert held.wait(START_DEADLINE)
        old_token = mine.recv()
        os.kill(holder.pid, signal.SIGSTOP)  # type: ignore[arg-type]
        paused = time.monotonic()
        try:
            coord = ferrolock.connect(pg_url)
            lock = coord.lock(name)
            with lock.acquire(timeout=LEASE + 30):
                freed_after = time.monotonic() - paused
                new_token = lock.token
                lock.fenced_write(b"waiter")
        finally:
            os.kill(holder.pid, signal.SIGCONT)  # type: ignore[arg-type]
        go.set()
        assert mine.poll(START_DEADLINE)
        outcome = mine.recv()
        holder.join(START_DEADLINE)
    assert new_token > old_token
    assert outcome == {"on_lost": True, "ensure_held": "LockLost", "write": "LockLost", "token write": "StaleToken"}
    assert coord.fenced_read(name) == (new_token, b"waiter")
    # The lease is 2 s: the session ends 2 s after its last heartbeat (at most a third of a lease before
    # the pause) and the server wakes the waiter; never before that, and well within lease + 1 s.
    assert LEASE * 2 / 3 - 0.05 < freed_after < LEASE + 1.0, f"freed after {freed_after:.2f} s"


def test_server_restart_loses_holders_and_tokens_keep_increasing(own_cluster: PgCluster, name: str) -> None:
    url = own_cluster.url(lease="2s")
    lost = threading.Event()
    lock = ferrolock.connect(url).lock(name, on_lost=lost.set)
    lock.acquire()
    before = lock.token
    own_cluster.restart("immediate")
    with pytest.raises(ferrolock.LockLost):
        lock.ensure_held()
    assert lost.wait(START_DEADLINE), "on_lost runs when the session is found gone"
    with pytest.raises(ferrolock.LockLost):
        lock.fenced_write(b"after the restart")
    lock.release()  # releasing a lost lock is not an error
    assert not lock.is_locked
    again = ferrolock.connect(url).lock(name)
    with again:
        assert again.token > before, "the fencing counter was committed durably before the crash"


def test_traffic_swallowed_by_a_proxy_is_caught_by_the_lease(pg_template: PgCluster, pg_url: str, name: str) -> None:
    proxy = SwallowingProxy(pg_template.port)
    try:
        proxied = pg_template.url(lease="2s").replace(f":{pg_template.port}/", f":{proxy.port}/")
        lost = threading.Event()
        holder = ferrolock.connect(proxied).lock(name, on_lost=lost.set)
        holder.acquire()
        old = holder.token
        proxy.swallow()
        swallowed = time.monotonic()
        waiter = ferrolock.connect(pg_url).lock(name)
        waiter.acquire(timeout=LEASE + 30)
        freed_after = time.monotonic() - swallowed
        assert waiter.token > old
        assert lost.wait(LEASE + 5), "the heartbeat noticed on its own"
        with pytest.raises(ferrolock.LockLost):
            holder.ensure_held()
        waiter.release()
        holder.release()
    finally:
        proxy.close()
    assert freed_after < LEASE + 2.0, f"freed after {freed_after:.2f} s"


def test_a_cancel_racing_a_grant_never_leaves_the_lock_held(pg_template: PgCluster, pg_url: str, name: str) -> None:
    coord = ferrolock.connect(pg_url)
    holder, waiter = coord.lock(name), coord.lock(name)
    rng = random.Random(15)
    outcomes = {"granted": 0, "cancelled": 0}
    for _ in range(40):
        holder.acquire()
        cancel = ferrolock._ferrolock.CoordCancel()
        result: list[str] = []

        def wait(cancel: ferrolock._ferrolock.CoordCancel = cancel, result: list[str] = result) -> None:
            try:
                waiter.acquire(timeout=30, cancel=cancel)
            except ferrolock.Cancelled:
                result.append("cancelled" if not waiter.is_locked else "cancelled but held")
                return
            result.append("granted")
            waiter.release()  # in the thread that holds it

        t = threading.Thread(target=wait)
        t.start()
        if os.environ.get("FERROLOCK_TEST_PG_URL"):
            time.sleep(0.05)
        else:  # the waiter's session is queued in the server
            pg_template.wait_until("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted", "1")
        canceller = threading.Timer(rng.uniform(0, 0.002), cancel.cancel)
        canceller.start()
        holder.release()  # the grant goes to the waiter while the cancel is on its way
        canceller.join(START_DEADLINE)
        t.join(START_DEADLINE)
        assert len(result) == 1
        assert result[0] in outcomes, result
        outcomes[result[0]] += 1
        # Whatever happened, nothing is held now: one attempt through another session succeeds.
        probe = ferrolock.connect(pg_url).lock(name)
        probe.acquire(timeout=0)
        probe.release()
    assert sum(outcomes.values()) == 40
    print(f"cancel/grant race: {outcomes}")
