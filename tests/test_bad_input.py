"""Bad lock paths get a clear exception and nothing on disk is modified."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import ferrolock
import pytest


def test_a_directory_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "is-a-dir"
    directory.mkdir()
    with pytest.raises(IsADirectoryError) as info:
        ferrolock.FileLock(directory).acquire(timeout=0)
    assert info.value.filename == str(directory)
    assert "Is a directory" in str(info.value)  # the OS's words, as open(2) reports it
    assert list(directory.iterdir()) == []


def test_a_symlink_is_not_followed_and_its_target_is_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    before = victim.stat()
    link = tmp_path / "planted.lock"
    link.symlink_to(victim)
    with pytest.raises(OSError, match="symbolic link") as info:
        ferrolock.FileLock(link).acquire(timeout=0)
    assert info.value.errno == errno.ELOOP
    assert "symbolic link" in str(info.value)
    assert victim.read_text() == "precious"
    assert victim.stat().st_mtime_ns == before.st_mtime_ns
    assert link.is_symlink()


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.lock"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="FIFO"):
        ferrolock.FileLock(fifo).acquire(timeout=0)


@pytest.mark.parametrize("bad", [123, None, 4.5, ["a"]])
def test_non_path_arguments_are_type_errors(bad: object) -> None:
    with pytest.raises(TypeError):
        ferrolock.FileLock(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "error", "words"),
    [("", FileNotFoundError, "No such file or directory"), ("a\0b", ferrolock.InvalidName, "embedded null byte")],
)
def test_empty_and_nul_paths_are_reported_when_acquired_in_the_words_of_the_os(
    bad: str, error: type[Exception], words: str
) -> None:
    """As py-filelock: constructing never fails on the path (code builds locks at import time and handles
    errors around ``acquire``); ``acquire`` raises what ``os.open`` would, in its words."""
    lock = ferrolock.FileLock(bad)
    for attempt in (lock.acquire, lambda: lock.acquire(timeout=0), lock.__enter__):
        with pytest.raises(error, match=words):
            attempt()
    assert not lock.is_locked
    lock.release()  # nothing held: nothing to do


_UNPRIVILEGED = textwrap.dedent(
    """
    import os, sys
    import ferrolock  # imported first: the interpreter's own files are private to root here
    os.setgid(65534); os.setuid(65534)
    try:
        ferrolock.FileLock(sys.argv[1]).acquire(timeout=0)
    except PermissionError as exc:
        print("PermissionError", exc.errno, exc.filename)
    """
)


@pytest.mark.timeout(60)
def test_an_unwritable_directory_gives_permission_error_and_creates_nothing(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    # tmp_path's parents are private to root; use a world-traversable directory the test owns.
    base = Path(tempfile.gettempdir()) / f"ferrolock-perm-{os.getpid()}"
    base.mkdir(mode=0o755)
    try:
        os.chmod(base, 0o755)
        target = base / "locks" / "a.lock"
        (base / "locks").mkdir(mode=0o755)
        os.chmod(base / "locks", 0o755)
        out = subprocess.run(
            [sys.executable, "-c", _UNPRIVILEGED, str(target)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        assert out.stdout.split() == ["PermissionError", str(errno.EACCES), str(target)], out.stderr
        assert not target.exists()
    finally:
        for p in sorted(base.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        base.rmdir()
