from __future__ import annotations

from pathlib import Path

import ferrolock


def test_acquire_release_round_trip(lock_path: Path) -> None:
    lock = ferrolock.FileLock(lock_path, purpose="smoke")
    with lock:
        assert lock.is_locked
        holder = lock.holder()
        assert holder is not None
        assert holder["purpose"] == "smoke"
    assert not lock.is_locked
