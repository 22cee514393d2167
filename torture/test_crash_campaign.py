"""Crash campaign: the crash-point cases of ``tests/test_state_crash.py`` and ``tests/test_crash_points.py``
(every fault point of every write path, each as a crash and as an I/O error) drawn at random, over and
over, for the length of a storm. Each case runs in a fresh interpreter and checks its own invariants:
old-or-new content, a whole backup, nothing that blocks or confuses the next caller, no litter after it.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import test_crash_points as cp
import test_state_crash as sc
from conftest import storm_seconds

# (name, function, parameters after tmp_path): one entry per crash point of every write path.
Case = tuple[str, Callable[..., None], tuple[Any, ...]]


def cases() -> list[Case]:
    out: list[Case] = []
    for mode in sc.TEMP_MODES:
        for point, after, backup in sc.WRITE_STEPS:
            out.append(
                (
                    f"StateFile write, {mode} temp, crash at {point}",
                    sc.test_crash_during_write_leaves_old_or_new_and_a_complete_backup,
                    (mode, point, after, backup),
                )
            )
            out.append(
                (
                    f"StateFile write, {mode} temp, EIO at {point}",
                    sc.test_error_during_write_changes_nothing_and_leaves_no_temp_file,
                    (mode, point, after, backup),
                )
            )
    for point, after, backup in sc.REMOVE_STEPS:
        out.append(
            (
                f"StateFile remove, crash at {point}",
                sc.test_crash_during_remove_leaves_the_file_or_its_backup,
                (point, after, backup),
            )
        )
        out.append(
            (f"StateFile remove, EIO at {point}", sc.test_error_during_remove_keeps_the_file, (point, after, backup))
        )
    for point in cp.HOLDER_POINTS:
        out.append(
            (
                f"holder record, crash at {point}",
                cp.test_a_crash_while_writing_the_holder_record_frees_the_lock_and_names_no_dead_holder,
                (point,),
            )
        )
        out.append(
            (
                f"holder record, EIO at {point}",
                cp.test_a_failed_holder_record_keeps_the_lock_and_leaves_no_stale_record,
                (point,),
            )
        )
    for point in cp.MARKER_POINTS:
        out.append(
            (
                f"run_once marker, crash at {point}",
                cp.test_a_crash_while_writing_the_marker_leaves_no_marker_or_a_whole_one,
                (point,),
            )
        )
        out.append(
            (
                f"run_once marker, EIO at {point}",
                cp.test_a_failed_marker_write_fails_the_call_and_leaves_no_litter,
                (point,),
            )
        )
    for point in [*cp.CLAIM_POINTS, "claim_record:remove"]:
        out.append(
            (
                f"scope claim, crash at {point}",
                cp.test_a_crash_while_claiming_or_releasing_leaves_nothing_that_blocks,
                (point,),
            )
        )
    for point in cp.CLAIM_POINTS:
        out.append((f"scope claim, EIO at {point}", cp.test_a_failed_claim_is_no_claim_and_leaves_no_litter, (point,)))
    out.append(
        (
            "scope claim, EIO at claim_record:remove",
            cp.test_a_failed_release_leaves_a_record_nobody_honours,
            (),
        )
    )
    for point in cp.TODO2_POINTS:
        for action in ("crash", "error"):
            out.append(
                (
                    f"todo2 assignment, {action} at {point}",
                    cp.test_an_assignment_interrupted_anywhere_leaves_valid_json_old_or_new,
                    (point, action),
                )
            )
    return out


def test_crash_campaign(report: Callable[..., None]) -> None:
    all_cases = cases()
    rng = random.Random()
    runs: Counter[str] = Counter()
    deadline = time.monotonic() + storm_seconds()
    # Every case at least once, then random ones until the time is up.
    queue = list(all_cases)
    rng.shuffle(queue)
    while queue or time.monotonic() < deadline:
        name, case, params = queue.pop() if queue else rng.choice(all_cases)
        scratch = Path(tempfile.mkdtemp(prefix="ferrolock-crash-"))
        try:
            case(scratch, *params)
        except BaseException as exc:
            pytest.fail(f"{name}: {exc!r}")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        runs[name] += 1
    crashes = sum(n for name, n in runs.items() if ", crash at " in name)
    report(
        "crash campaign (fault injection at every step of every write path)",
        seconds=storm_seconds(),
        crash_points=len({name.split(" at ")[-1] for name in runs}),
        cases=len(all_cases),
        crashes=crashes,
        io_errors=sum(runs.values()) - crashes,
        lost=0,
        litter=0,
    )
