"""Other users, for the tests of what ferrolock does in directories that someone else can write.

The suite runs as root in CI. An attack is played by two unprivileged users: the **victim** runs
ferrolock (in a child that imports ferrolock first, because the interpreter's own files may be private to
root, and then drops to the victim's uid), and the **attacker** plants files beforehand (created here as
root and given to the attacker's uid, which is what the attacker could have done itself in a directory
it may write). ``shared_dir`` is a sticky, world-writable directory like ``/tmp``.

Tests that need this are skipped when not run as root (a developer's machine); CI runs as root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import pytest

VICTIM: Final = 65533
ATTACKER: Final = 65534

#: Mark for tests that need root to create other users' files and to drop privileges.
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to play other users")


@contextmanager
def shared_dir(mode: int = 0o1777) -> Iterator[Path]:
    """A fresh directory with ``mode`` (default: sticky and world-writable, as ``/tmp``), in a world-
    traversable place (pytest's ``tmp_path`` lies under directories private to root)."""
    path = Path(tempfile.gettempdir()) / f"ferrolock-users-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    os.chmod(path, mode)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def give(path: Path, uid: int, mode: int | None = None) -> Path:
    """Make ``path`` (a file, directory or symlink) belong to ``uid``, optionally with ``mode``."""
    os.chown(path, uid, uid, follow_symlinks=False)
    if mode is not None and not path.is_symlink():
        os.chmod(path, mode)
    return path


def _command(uid: int, code: str, args: tuple[str, ...]) -> list[str]:
    preamble = (
        "import os, sys\nimport ferrolock\nimport ferrolock.compat.blackbox5, ferrolock.compat.todo2.task_locking\n"
        f"os.setgroups([]); os.setgid({uid}); os.setuid({uid})\n"
    )
    return [sys.executable, "-c", preamble + code, *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def run_as(uid: int, code: str, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that imports ferrolock, then drops to ``uid`` (group too, no
    supplementary groups). ``sys.argv[1:]`` are ``args``. Returns the finished process (text output)."""
    return subprocess.run(
        _command(uid, code, args), capture_output=True, text=True, timeout=timeout, check=False, env=_env()
    )


@contextmanager
def run_as_popen(uid: int, code: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``run_as``, but running: the test talks to it through its stdin and stdout (text, line by line)
    while it runs. On exit the process is killed if it has not finished, and reaped."""
    proc = subprocess.Popen(
        _command(uid, code, args),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


#: Defines ``report(call)`` in a ``run_as`` child: it prints one JSON line saying what ``call()``
#: returned, or which exception it raised (type, errno, message, and whether it is ferrolock's own
#: refusal of an untrusted path rather than, say, the kernel's ``EACCES``).
REPORT = """
import json
def report(call):
    try:
        print(json.dumps({"ok": True, "value": call()}))
    except Exception as e:
        untrusted = getattr(ferrolock, "UntrustedPathError", ())
        print(json.dumps({"ok": False, "type": type(e).__name__, "errno": getattr(e, "errno", None),
                          "message": str(e), "untrusted": isinstance(e, untrusted)}))
"""


def report_as(uid: int, code: str, *args: str, timeout: float = 30.0) -> dict[str, Any]:
    """Run ``code`` as ``uid`` (see ``run_as``); it calls ``report(...)`` once. Returns that report."""
    done = run_as(uid, REPORT + code, *args, timeout=timeout)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines, f"no report; stderr: {done.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result
