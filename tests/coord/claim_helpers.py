"""Spawn-context workers for the scope-claim tests (module-level so ``spawn`` can import them)."""

from __future__ import annotations

from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event

from process_helpers import START_DEADLINE


def hold_claim(
    url: str, project: str, paths: list[str], held: Event, release: Event, *, shared: bool = False, purpose: str = ""
) -> None:
    """Claim ``paths`` until told to release (or killed)."""
    import ferrolock

    with ferrolock.connect(url).claims(project).claim(paths, shared=shared, purpose=purpose or None):
        held.set()
        release.wait(START_DEADLINE * 4)


def claim_and_report(url: str, project: str, paths: list[str], waiting: Event, report: Connection) -> None:
    """Announce the wait, claim ``paths`` (waiting as long as it takes), report the claim's paths."""
    import ferrolock

    claim = ferrolock.connect(url).claims(project).claim(paths)
    waiting.set()
    with claim.acquire(timeout=START_DEADLINE * 2):
        report.send(claim.paths)


def paused_claimant(url: str, project: str, paths: list[str], held: Event, *, go: Event, report: Connection) -> None:
    """Hold a claim, get paused by the test, then report what ``ensure_held()`` says."""
    import ferrolock

    lost: list[bool] = []
    claim = ferrolock.connect(url).claims(project).claim(paths, on_lost=lambda: lost.append(True))
    claim.acquire()
    claim.ensure_held()
    held.set()
    go.wait(START_DEADLINE * 4)
    try:
        claim.ensure_held()
        outcome = "held"
    except ferrolock.LockLost:
        outcome = "LockLost"
    report.send(outcome)
    claim.release()
