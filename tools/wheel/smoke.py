"""Smoke test of an installed ferrolock wheel, run by ``test_wheel.py`` inside a fresh virtualenv.

It needs nothing but the standard library and the installed wheel, and checks what a user who ran
``pip install ferrolock`` relies on first: no compiler was needed, the package imports from the virtualenv
(not from a source tree), a lock taken here excludes another process, that process sees this one's holder
record, and the ``ferrolock`` command runs. Exits non-zero, naming the step, on the first failure.

    python smoke.py VERSION [--no-failpoints]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

COMPILERS = ("cc", "gcc", "g++", "c++", "clang", "rustc", "cargo")
TIMEOUT = 60

#: Run in a second process while this one holds the lock: a non-blocking attempt must fail with Timeout,
#: and the holder record must name this process.
CONTENDER = """
import sys
import ferrolock

path, holder_pid = sys.argv[1], int(sys.argv[2])
try:
    ferrolock.FileLock(path, timeout=0).acquire()
except ferrolock.Timeout:
    pass
else:
    sys.exit("the lock was granted while another process held it")
state, record = ferrolock.probe(path)
if state != "held" or record is None or record["pid"] != holder_pid or record["purpose"] != "wheel smoke test":
    sys.exit(f"unexpected holder record: {state} {record}")
"""

#: Run by `ferrolock run LOCK -- python -c ...`: the lock is held by the ferrolock command, with a record.
UNDER_CLI = """
import sys
import ferrolock

state, record = ferrolock.probe(sys.argv[1])
if state != "held" or record is None or not record["purpose"].startswith("ferrolock run:"):
    sys.exit(f"the command ran without the lock: {state} {record}")
print("ran under the lock")
"""


def main() -> None:
    version, no_failpoints = sys.argv[1], "--no-failpoints" in sys.argv[2:]
    found = {tool: shutil.which(tool) for tool in COMPILERS if shutil.which(tool)}
    _check(not found, f"no compiler on PATH ({os.environ.get('PATH')}), found {found}")

    import ferrolock
    import ferrolock._ferrolock as native

    installed_under = Path(ferrolock.__file__).resolve()
    _check(installed_under.is_relative_to(Path(sys.prefix).resolve()), f"imported from {installed_under}")
    _check(ferrolock.__version__ == version, f"version {ferrolock.__version__}, wheel says {version}")
    if no_failpoints:
        _check(not hasattr(native, "_set_failpoint"), "the wheel was built with the failpoints feature")

    with tempfile.TemporaryDirectory() as scratch:
        path = str(Path(scratch, "smoke.lock"))
        with ferrolock.FileLock(path, purpose="wheel smoke test"):
            contender = _python("-c", CONTENDER, path, str(os.getpid()))
            _check(contender.returncode == 0, f"contender: {contender.stderr.strip()}")
            refused = _command("run", "--nonblock", path, "--", sys.executable, "-c", "pass")
            _check(refused.returncode == 1, f"`ferrolock run -n` on a held lock exited {refused.returncode}")
        ran = _command("run", "--timeout", "10", path, "--", sys.executable, "-c", UNDER_CLI, path)
        _check(ran.returncode == 0 and "ran under the lock" in ran.stdout, f"`ferrolock run`: {ran}")
        status = _command("status", scratch)
        _check(status.returncode == 0 and "smoke.lock" in status.stdout, f"`ferrolock status`: {status}")
    print(f"ok: ferrolock {version} on Python {sys.version.split()[0]} from {installed_under.parent}")


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=TIMEOUT, check=False)


def _command(*args: str) -> subprocess.CompletedProcess[str]:
    ferrolock = shutil.which("ferrolock")
    _check(ferrolock is not None, "the ferrolock command is not on PATH")
    return subprocess.run([str(ferrolock), *args], capture_output=True, text=True, timeout=TIMEOUT, check=False)


def _check(condition: bool, failure: str) -> None:
    if not condition:
        sys.exit(f"wheel smoke test failed: {failure}")


if __name__ == "__main__":
    main()
