"""Walkers in trees that other users can write: ``ferrolock status`` / ``clean`` and
``JobLockManager.cleanup_stale_locks``.

They walk descriptor-relative and never follow a symlink planted in the tree, remove a file only relative to
the directory they verified and after re-checking it, skip a bad entry (and say so) instead of aborting, and
show hostile names escaped. Races are driven to their window deterministically: the walk's own progress
callback is called every 256 files and once when the scan ends, before anything is removed, and the attacker
makes its move from inside it (as its own user, in a child process), while the walker waits.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import ferrolock
import pytest
from ferrolock._ferrolock import _clean_locks, _scan_locks
from users import ATTACKER, VICTIM, give, needs_root, run_as, shared_dir

FERROLOCK = [sys.executable, "-m", "ferrolock.cli"]
SWAP_FOR_SYMLINK = "import os, sys\nos.rename(sys.argv[1], sys.argv[2])\nos.symlink(sys.argv[3], sys.argv[1])\n"
OLD = time.time() - 7 * 24 * 3600  # a week ago: older than any max_age the tests use


def cli(*args: str, plain: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FERROLOCK_PLAIN"} | {"COLUMNS": "250"}
    if plain:
        env["FERROLOCK_PLAIN"] = "1"
    return subprocess.run([*FERROLOCK, *args], capture_output=True, text=True, timeout=120, check=False, env=env)


class Once:
    """A progress callback that runs ``action`` the first time ``when(files_seen)`` is true."""

    def __init__(self, action: Callable[[], None], when: Callable[[int], bool] = lambda _: True) -> None:
        self.action, self.when, self.fired = action, when, False

    def __call__(self, seen: int) -> None:
        if not self.fired and self.when(seen):
            self.fired = True
            self.action()


def attacker_swaps_for_symlink(directory: Path, stash: Path, target: Path) -> Callable[[], None]:
    """The attacker moves its ``directory`` out of the tree (to ``stash``) and puts a symlink to ``target``
    in its place."""

    def swap() -> None:
        out = run_as(ATTACKER, SWAP_FOR_SYMLINK, str(directory), str(stash), str(target))
        assert out.returncode == 0, out.stderr

    return swap


@contextmanager
def victim_dir() -> Iterator[Path]:
    """A victim's directory outside the tree, holding lock-like files a cleaner would remove if it got
    there: an empty legacy ``.jobs_index.lock``, ``.lock`` and a plain ``secret.lock``."""
    with shared_dir(0o755) as outside:
        victim, stash = outside / "victim", outside / "stash"
        for directory, uid in ((victim, VICTIM), (stash, ATTACKER)):
            directory.mkdir()
            give(directory, uid, 0o755)
        for name in (".jobs_index.lock", ".lock", "secret.lock"):
            (victim / name).touch()
            give(victim / name, VICTIM, 0o644)
            os.utime(victim / name, (OLD, OLD))
        yield victim


def stash_of(victim: Path) -> Path:
    return victim.parent / "stash"


def attacker_dir(parent: Path, name: str) -> Path:
    path = parent / name
    path.mkdir()
    return give(path, ATTACKER, 0o755)


def attacker_file(path: Path, content: bytes = b"") -> Path:
    path.write_bytes(content)
    give(path, ATTACKER, 0o644)
    os.utime(path, (OLD, OLD))
    return path


@needs_root
@pytest.mark.timeout(120)
def test_root_clean_removes_nothing_outside_the_tree_when_a_directory_becomes_a_symlink_after_the_scan() -> None:
    with shared_dir() as tree, victim_dir() as victim:
        jobs = attacker_dir(tree, "jobs")
        attacker_file(jobs / ".jobs_index.lock")
        mine = tree / "mine"
        mine.mkdir()
        (mine / ".jobs_index.lock").touch()
        progress = Once(attacker_swaps_for_symlink(jobs, stash_of(victim) / "jobs", victim))

        result = _clean_locks([str(tree)], False, progress)

        assert progress.fired, "the attacker never moved: the test proved nothing"
        assert (victim / ".jobs_index.lock").exists(), "root's clean removed a file outside the tree"
        assert (stash_of(victim) / "jobs" / ".jobs_index.lock").exists(), "removed from a directory moved away"
        assert not (mine / ".jobs_index.lock").exists(), "the rest of the tree was not cleaned"
        assert [item["path"] for item in result["removed"]] == [str(mine / ".jobs_index.lock")]
        skipped = {item["path"]: item["reason"] for item in result["skipped"]}
        assert "symbolic link" in skipped[str(jobs)]


@needs_root
@pytest.mark.timeout(120)
def test_status_reports_nothing_outside_the_tree_when_a_directory_becomes_a_symlink_during_the_walk() -> None:
    with shared_dir() as tree, victim_dir() as victim:
        for name in ("d1", "d2"):
            attacker_dir(tree, name)
        # Walked in directory order: fill the first with 256 lock files, so the progress callback runs
        # (and the attacker strikes) after it and before the walker enters the second.
        first, second = (tree / name for name in os.listdir(tree))
        for i in range(256):
            attacker_file(first / f"{i}.lock")
        attacker_file(second / "own.lock")
        progress = Once(attacker_swaps_for_symlink(second, stash_of(victim) / "second", victim), lambda n: n >= 256)

        result = _scan_locks([str(tree)], progress)

        assert progress.fired, "the attacker never moved: the test proved nothing"
        assert "secret.lock" not in json.dumps(result), "status reported a file outside the tree"
        paths = {lock["path"] for lock in result["locks"]}
        assert str(second / "own.lock") not in paths, "the swap came too late to test anything"
        assert paths == {str(first / f"{i}.lock") for i in range(256)}
        skipped = {item["path"]: item["reason"] for item in result["skipped"]}
        assert "symbolic link" in skipped[str(second)]


def cleanup_as(uid: int, base: Path) -> list[str]:
    code = "import json\nprint(json.dumps(ferrolock.JobLockManager(sys.argv[1]).cleanup_stale_locks(60)))\n"
    out = run_as(uid, code, str(base))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@needs_root
@pytest.mark.timeout(60)
def test_cleanup_stale_locks_does_not_follow_a_job_directory_symlink_planted_by_another_user() -> None:
    with shared_dir() as base, victim_dir() as victim:
        mine = base / "mine"
        mine.mkdir()
        give(mine, VICTIM, 0o755)
        (mine / ".lock").touch()
        give(mine / ".lock", VICTIM, 0o644)
        os.utime(mine / ".lock", (OLD, OLD))
        os.symlink(victim, base / "evil")
        give(base / "evil", ATTACKER)

        cleaned = cleanup_as(VICTIM, base)

        assert (victim / ".lock").exists(), "cleanup followed another user's symlink and removed the victim's file"
        assert cleaned == ["mine"]
        assert not (mine / ".lock").exists()


@pytest.mark.timeout(60)
def test_cleanup_stale_locks_follows_the_callers_own_symlink_and_keeps_a_non_lock_file(tmp_path: Path) -> None:
    base, elsewhere = tmp_path / "jobs", tmp_path / "elsewhere"
    for job in (base / "data", elsewhere / "linked"):
        job.mkdir(parents=True)
    (base / "data" / ".lock").write_text("results of a job, not a lock\n")
    (elsewhere / "linked" / ".lock").touch()
    os.symlink(elsewhere / "linked", base / "linked")
    for path in (base / "data" / ".lock", elsewhere / "linked" / ".lock"):
        os.utime(path, (OLD, OLD))

    cleaned = ferrolock.JobLockManager(base).cleanup_stale_locks(60)

    assert (base / "data" / ".lock").read_text() == "results of a job, not a lock\n", "a non-lock file was removed"
    assert cleaned == ["linked"]
    assert not (elsewhere / "linked" / ".lock").exists()


DEAD_PID = 2**22 + 12345  # above pid_max's default range: never a live process


def legacy_claim(path: Path, loop_name: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / ".acquire.lock").touch()
    record = {"loop_name": loop_name, "scope": ["/srv"], "pid": DEAD_PID, "started_at": "2026-01-01"}
    path.write_text(json.dumps(record))
    return path


@pytest.mark.timeout(60)
def test_stale_claims_are_removed_only_in_the_running_directory_that_was_walked(tmp_path: Path) -> None:
    tree, outside = tmp_path / "tree", tmp_path / "outside"
    walked = legacy_claim(tree / ".loops" / ".running" / "old.lock", "old")
    other = legacy_claim(outside / ".running" / "old.lock", "someone else's")

    def swap() -> None:
        os.rename(walked.parent, tmp_path / "moved-away")
        os.symlink(other.parent, walked.parent)

    result = _clean_locks([str(tree)], False, Once(swap))

    assert other.exists(), "clean removed a claim record outside the tree"
    assert (tmp_path / "moved-away" / "old.lock").exists()
    assert result["removed"] == []
    assert "symbolic link" in {item["path"]: item["reason"] for item in result["skipped"]}[str(walked.parent)]


def index_locks(tree: Path, *names: str) -> list[Path]:
    paths = []
    for name in names:
        (tree / name).mkdir()
        paths.append(tree / name / ".jobs_index.lock")
        paths[-1].touch()
    return paths


@pytest.mark.timeout(60)
@pytest.mark.parametrize("change", ["fifo", "directory_to_file"])
def test_an_entry_that_changes_after_the_scan_is_skipped_and_the_clean_goes_on(tmp_path: Path, change: str) -> None:
    bad, good = index_locks(tmp_path, "a", "b")

    def spoil() -> None:
        if change == "fifo":
            bad.unlink()
            os.mkfifo(bad)
        else:
            shutil.rmtree(bad.parent)
            bad.parent.write_text("a file now")

    result = _clean_locks([str(tmp_path)], False, Once(spoil))

    assert not good.exists(), "one bad entry stopped the whole clean"
    assert [item["path"] for item in result["removed"]] == [str(good)]
    skipped = {item["path"]: item["reason"] for item in result["skipped"]}
    if change == "fifo":
        assert stat.S_ISFIFO(os.lstat(bad).st_mode)
        assert "FIFO" in skipped[str(bad)]
    else:
        assert bad.parent.read_text() == "a file now"
        assert "not a directory" in skipped[str(bad.parent)]


def make_chain(top: Path, depth: int, name: str, leaf: str = "deep.lock") -> bytes:
    """``top/name/name/...`` ``depth`` levels deep, made descriptor-relative (the path may exceed
    ``PATH_MAX``), with an empty ``leaf`` at the bottom. Returns the leaf's path."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(os.open(leaf, os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    return os.fsencode(top) + (b"/" + name.encode()) * depth + b"/" + leaf.encode()


def exists_beyond_path_max(path: bytes) -> bool:
    """``os.path.exists`` for a path longer than ``PATH_MAX``: one component at a time."""
    head, _, leaf = path.rpartition(b"/")
    fd = os.open(b"/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in head.strip(b"/").split(b"/"):
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        return os.fsdecode(leaf) in os.listdir(fd)
    finally:
        os.close(fd)


@pytest.mark.timeout(120)
def test_a_chain_deeper_than_path_max_is_walked_and_cleaned_descriptor_relative(tmp_path: Path) -> None:
    deep = make_chain(tmp_path, 40, "d" * 200, leaf=".jobs_index.lock")
    assert len(deep) > os.pathconf("/", "PC_PATH_MAX")
    (tmp_path / "top.lock").touch()
    try:
        found = _scan_locks([str(tmp_path)])
        assert {os.fsencode(lock["path"]) for lock in found["locks"]} == {os.fsencode(tmp_path / "top.lock"), deep}
        assert found["skipped"] == []
        assert exists_beyond_path_max(deep)

        cleaned = _clean_locks([str(tmp_path)])
        assert [os.fsencode(item["path"]) for item in cleaned["removed"]] == [deep]
        assert not exists_beyond_path_max(deep)
    finally:
        shutil.rmtree(tmp_path / ("d" * 200))


@pytest.mark.timeout(120)
def test_more_levels_than_free_descriptors(tmp_path: Path) -> None:
    deep = make_chain(tmp_path, 300, "d")
    code = (
        "import json, resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (48, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))\n"
        "from ferrolock._ferrolock import _scan_locks\n"
        "print(json.dumps(_scan_locks([sys.argv[1]])))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert [os.fsencode(lock["path"]) for lock in found["locks"]] == [deep]


@pytest.mark.timeout(60)
def test_a_non_utf8_name_is_shown_escaped_not_skipped(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9-\xff.lock"
    os.close(os.open(raw, os.O_CREAT | os.O_WRONLY, 0o644))

    doc = json.loads(cli("status", "--json", str(tmp_path)).stdout)
    assert [os.fsencode(lock["path"]) for lock in doc["locks"]] == [raw]

    table = cli("status", str(tmp_path))
    assert table.returncode == 0, table.stderr
    assert "caf\\xe9-\\xff.lock" in table.stdout


HOSTILE_NAMES = [
    "row\nheld  exclusive  lock_file  forged  pid 1",
    "bell\x07-esc\x1b[2J\x1b]0;title\x07-csi\x9b31m",
    "rtl\u202eoverride",
    "back\\slash",
]


def plant_hostile_names(tree: Path) -> None:
    for name in HOSTILE_NAMES:
        (tree / f"{name}.lock").touch()
        (tree / name).mkdir()
        (tree / name / ".jobs_index.lock").touch()  # removable: shown by clean too
    (tree / "jobs" / "job\nSTALE").mkdir(parents=True)
    (tree / "jobs" / "job\nSTALE" / ".lock").touch()


def assert_escaped(text: str, rows: int) -> None:
    assert not any(ch in text for ch in "\x07\x1b\x9b\u202e"), "a raw control character reached the terminal"
    assert len(text.strip("\n").splitlines()) == rows, text
    assert "row\\nheld" in text
    assert "\\x1b[2J" in text
    assert "\\u202e" in text
    assert "back\\\\slash" in text


@pytest.mark.timeout(120)
@pytest.mark.parametrize("plain", [True, False], ids=["plain", "rich"])
def test_status_and_clean_output_escape_hostile_names(tmp_path: Path, plain: bool) -> None:
    if not plain:
        pytest.importorskip("rich")
    plant_hostile_names(tmp_path)
    locks = 2 * len(HOSTILE_NAMES) + 1
    status = cli("status", str(tmp_path), plain=plain)
    assert status.returncode == 0, status.stderr
    if plain:
        assert_escaped(status.stdout, rows=1 + locks + 1)
        assert "job job\\nSTALE" in status.stdout
    else:
        assert not any(ch in status.stdout for ch in "\x07\x1b\x9b\u202e")
        assert "row\\nheld" in status.stdout
    clean = cli("clean", str(tmp_path), plain=plain)
    assert clean.returncode == 0, clean.stderr
    assert_escaped(clean.stdout, rows=len(HOSTILE_NAMES) + 2)


@pytest.mark.timeout(60)
def test_json_output_keeps_names_intact(tmp_path: Path) -> None:
    plant_hostile_names(tmp_path)
    out = cli("status", "--json", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert all(ord(ch) < 128 for ch in out.stdout), "--json output is ASCII: every other character is escaped"
    paths = {lock["path"] for lock in json.loads(out.stdout)["locks"]}
    assert {str(tmp_path / f"{name}.lock") for name in HOSTILE_NAMES} <= paths
