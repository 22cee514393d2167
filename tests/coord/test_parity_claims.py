"""Scope claims on both backends (``file://`` and ``postgresql://``): one suite, run against each."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import ferrolock
import pytest
from claim_helpers import claim_and_report, hold_claim
from ferrolock._ferrolock import CoordCancel
from process_helpers import SPAWN, START_DEADLINE, cleanup_processes

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def project() -> str:
    """A project key no other test uses (the PostgreSQL cluster is shared by the session)."""
    return f"proj-{uuid.uuid4().hex[:12]}"


def conflicts(space: ferrolock.ClaimSpace, held: list[str], wanted: list[str], *, shared: tuple[bool, bool]) -> bool:
    with space.claim(held, shared=shared[0]):
        other = space.claim(wanted, shared=shared[1])
        found = space.find_conflict(wanted, shared=shared[1])
        # Claimed from another thread: the claiming thread holds the first one and would deadlock.
        outcome: list[object] = []

        def attempt() -> None:
            try:
                other.acquire(timeout=0)
                other.release()
                outcome.append(False)
            except ferrolock.Timeout:
                outcome.append(True)

        worker = threading.Thread(target=attempt)
        worker.start()
        worker.join(START_DEADLINE)
        assert outcome == [found is not None], (held, wanted, found)
        return bool(outcome[0])


@pytest.mark.parametrize(
    ("held", "wanted", "expected"),
    [
        (["a"], ["a"], True),
        (["a"], ["a/b"], True),
        (["a/b"], ["a"], True),
        (["."], ["deep/inside/x"], True),
        (["a/b"], ["a/bc"], False),
        (["a/b"], ["a/b.c"], False),
        (["a/b"], ["a/c"], False),
        (["x", "a/b"], ["y", "a/b/c/d"], True),
        (["a b/ü"], ["a b/ü/x"], True),
    ],
)
def test_overlap_rules(coord_url: str, project: str, held: list[str], wanted: list[str], expected: bool) -> None:
    space = ferrolock.connect(coord_url).claims(project)
    assert conflicts(space, held, wanted, shared=(False, False)) is expected
    assert conflicts(space, held, wanted, shared=(True, False)) is expected
    assert conflicts(space, held, wanted, shared=(False, True)) is expected
    assert conflicts(space, held, wanted, shared=(True, True)) is False


def test_projects_never_conflict(coord_url: str, project: str) -> None:
    coord = ferrolock.connect(coord_url)
    with coord.claims(project).claim("."):
        with coord.claims(project + "-other").claim(".", timeout=0):
            pass
        with coord.claims(project + "x").claim(".", timeout=0):
            pass


def test_another_process_conflicts_and_timeout_names_the_holder(coord_url: str, project: str) -> None:
    held, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(
        target=hold_claim, args=(coord_url, project, ["src/api"], held, release), kwargs={"purpose": "refactor"}
    )
    with cleanup_processes(holder):
        holder.start()
        assert held.wait(START_DEADLINE)
        space = ferrolock.connect(coord_url).claims(project)
        claim = space.claim(["docs", "src"])
        with pytest.raises(ferrolock.Timeout) as info:
            claim.acquire(timeout=0)
        assert info.value.holder is not None
        assert info.value.holder["pid"] == holder.pid
        assert info.value.holder["purpose"] == "refactor"
        assert "src" in str(info.value)
        started = time.monotonic()
        with pytest.raises(ferrolock.Timeout):
            claim.acquire(timeout=0.3)
        assert time.monotonic() - started >= 0.3, "a timeout must never end early"
        assert not claim.is_held
        found = space.find_conflict("src/api/v2")
        assert found is not None
        assert found["paths"] == ["src/api"]
        assert found["mode"] == "exclusive"
        assert found["holder"]["pid"] == holder.pid
        live = space.live_claims()
        assert [(c["paths"], c["holder"]["pid"]) for c in live] == [(["src/api"], holder.pid)]
        # All or nothing: the failed claim left no part of itself behind ("docs" is free).
        with space.claim("docs", timeout=0):
            pass
        release.set()
        holder.join(START_DEADLINE)
        with claim.acquire(timeout=START_DEADLINE):
            assert claim.is_held
        assert space.live_claims() == []


def test_shared_claims_coexist_and_exclude_exclusive_across_processes(coord_url: str, project: str) -> None:
    held, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(
        target=hold_claim, args=(coord_url, project, ["lib"], held, release), kwargs={"shared": True}
    )
    with cleanup_processes(holder):
        holder.start()
        assert held.wait(START_DEADLINE)
        space = ferrolock.connect(coord_url).claims(project)
        with space.claim("lib/x", shared=True, timeout=0):
            live = space.live_claims()
            assert sorted(c["mode"] for c in live) == ["shared", "shared"]
        with pytest.raises(ferrolock.Timeout):
            space.claim("lib/x", timeout=0).acquire()
        release.set()


def test_wait_is_woken_by_release_in_another_process(coord_url: str, project: str) -> None:
    space = ferrolock.connect(coord_url).claims(project)
    mine, theirs = SPAWN.Pipe()
    waiting = SPAWN.Event()
    claim = space.claim("a")
    claim.acquire()
    waiter = SPAWN.Process(target=claim_and_report, args=(coord_url, project, ["a/b"], waiting, theirs))
    with cleanup_processes(waiter):
        waiter.start()
        assert waiting.wait(START_DEADLINE)
        assert not mine.poll(0.3), "the waiter claimed a path inside a held claim"
        claim.release()
        released = time.monotonic()
        assert mine.poll(START_DEADLINE)
        woke_after = time.monotonic() - released
        assert mine.recv() == ["a/b"]
        waiter.join(START_DEADLINE)
    assert woke_after < 1.0, f"woken {woke_after:.3f} s after the release"


def test_wait_for_scope_returns_when_the_claim_ends(coord_url: str, project: str) -> None:
    space = ferrolock.connect(coord_url).claims(project)
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with space.claim("a/b"):
            held.set()
            release.wait(START_DEADLINE)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(START_DEADLINE)
        assert space.wait_for_scope("a", timeout=0) is False
        started = time.monotonic()
        assert space.wait_for_scope("a", timeout=0.2) is False
        assert time.monotonic() - started >= 0.2, "a timeout must never end early"
        assert space.wait_for_scope("a/c", timeout=0) is True
        assert space.wait_for_scope("a", timeout=0, shared=True) is False
        timer = threading.Timer(0.3, release.set)
        started = time.monotonic()
        timer.start()
        assert space.wait_for_scope("a", timeout=START_DEADLINE) is True
        assert 0.25 < time.monotonic() - started < START_DEADLINE
    finally:
        release.set()
        thread.join(START_DEADLINE)


def test_reentry_and_waiting_on_oneself(coord_url: str, project: str) -> None:
    space = ferrolock.connect(coord_url).claims(project)
    first, second = space.claim("a"), space.claim("a/b")
    with first:
        with first:
            assert first.is_held
        assert first.is_held
        with pytest.raises(ferrolock.WouldDeadlock):
            second.acquire(timeout=1)
        first.ensure_held()
    assert not first.is_held
    with pytest.raises(ferrolock.LockLost):
        first.ensure_held()


def test_paths_are_normalised_and_bad_ones_refused(coord_url: str, project: str, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    space = ferrolock.connect(coord_url).claims(project, root=root)
    claim = space.claim([root / "src" / "api", "src/./api/", "docs", "docs/x"])
    assert claim.paths == ["docs", "src/api"]
    assert space.claim(root).paths == ["."]
    for bad in ["", "a/../b", "..", "a\nb", "a\x01b", str(tmp_path / "elsewhere"), str(root) + "x/y"]:
        with pytest.raises(ferrolock.InvalidName):
            space.claim(bad)
    with pytest.raises(ferrolock.InvalidName):
        space.claim([])
    with pytest.raises(TypeError):
        space.claim(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ferrolock.InvalidName):
        ferrolock.connect(coord_url).claims(project).claim("/abs/without/root")
    with pytest.raises(ferrolock.InvalidName):
        ferrolock.connect(coord_url).claims("").claim("a")


def test_a_cancelled_wait_ends_at_once_and_claims_nothing(coord_url: str, project: str) -> None:
    space = ferrolock.connect(coord_url).claims(project)
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with space.claim("a"):
            held.set()
            release.wait(START_DEADLINE)

    holding = threading.Thread(target=holder)
    holding.start()
    try:
        assert held.wait(START_DEADLINE)
        claim, cancel = space.claim("a/b"), CoordCancel()
        outcome: list[BaseException | None] = []

        def waiter() -> None:
            try:
                claim.acquire(timeout=START_DEADLINE, cancel=cancel)
                outcome.append(None)
            except BaseException as exc:  # reported to the test thread
                outcome.append(exc)

        waiting = threading.Thread(target=waiter)
        waiting.start()
        waiting.join(0.3)
        assert waiting.is_alive(), f"the wait ended early: {outcome}"
        cancelled = time.monotonic()
        cancel.cancel()
        waiting.join(START_DEADLINE)
        assert time.monotonic() - cancelled < 1.0
        assert len(outcome) == 1
        assert isinstance(outcome[0], ferrolock.Cancelled)
        assert not claim.is_held
    finally:
        release.set()
        holding.join(START_DEADLINE)
    assert space.live_claims() == []
    with space.claim("a/b", timeout=0):
        pass
