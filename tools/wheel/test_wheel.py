"""Install the built wheel into a fresh virtualenv of every supported Python here, with no compiler on PATH,
and run ``smoke.py`` there (``make wheel-test``).

    python tools/wheel/test_wheel.py DIST_DIR

Pythons: ``$FERROLOCK_WHEEL_PYTHONS`` (paths separated by ``:``) if set, otherwise every ``python3`` under
``~/.pyenv/versions`` and every ``python3.N`` on PATH whose version meets ``requires-python``. Each
virtualenv is made without pip (quick) and this interpreter's pip installs into it (``pip --python``); every
step runs with a PATH holding only the virtualenv's ``bin``, and the install is binary-only and offline
(``--only-binary :all: --no-index``), so it cannot fall back to building from source. If the crate has a
``failpoints`` feature (fault injection for tests), the wheel must not contain it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
SMOKE = Path(__file__).with_name("smoke.py")
COMPILERS = ("cc", "gcc", "g++", "c++", "clang", "rustc", "cargo")
TIMEOUT = 300


def main() -> int:
    wheels = sorted(Path(sys.argv[1] if len(sys.argv) > 1 else "dist").glob("ferrolock-*.whl"))
    if len(wheels) != 1:
        sys.exit(f"expected one ferrolock wheel, found {[str(w) for w in wheels]}: run `make wheel` first")
    wheel = wheels[0].resolve()
    version = wheel.name.split("-")[1]
    failpoints_feature = "failpoints" in tomllib.loads((ROOT / "Cargo.toml").read_text())["features"]
    _check_wheel_contents(wheel, failpoints_feature=failpoints_feature)
    pythons = _pythons()
    if not pythons:
        sys.exit("no supported Python found to test the wheel with")
    failures = []
    with tempfile.TemporaryDirectory(prefix="ferrolock-wheel-") as scratch:
        for version_text, python in pythons:
            print(f"== Python {version_text} ({python})", flush=True)
            if not _test_one(python, Path(scratch, f"venv-{version_text}"), wheel, version, failpoints_feature):
                failures.append(version_text)
    tested = ", ".join(v for v, _ in pythons)
    if failures:
        print(f"wheel test FAILED on Python {', '.join(failures)} (tested: {tested})")
        return 1
    print(f"wheel {wheel.name}: installed and smoke-tested without a compiler on Python {tested}")
    return 0


def _check_wheel_contents(wheel: Path, *, failpoints_feature: bool) -> None:
    """An abi3 manylinux wheel with the extension inside; without the failpoints hook if that is a feature."""
    tags = wheel.name.removesuffix(".whl").split("-")[2:]
    if tags[:2] != ["cp310", "abi3"] or not tags[2].startswith("manylinux"):
        sys.exit(f"{wheel.name}: expected a cp310-abi3-manylinux wheel")
    with zipfile.ZipFile(wheel) as archive:
        extensions = [name for name in archive.namelist() if re.fullmatch(r"ferrolock/_ferrolock\..*so", name)]
        if len(extensions) != 1:
            sys.exit(f"{wheel.name}: expected one native extension, found {extensions}")
        has_failpoint = b"_set_failpoint" in archive.read(extensions[0])
    if failpoints_feature and has_failpoint:
        sys.exit(f"{wheel.name}: built with the failpoints feature (fault injection must stay out of releases)")
    if not failpoints_feature:
        print("note: Cargo.toml has no failpoints feature yet; the fault-injection hook is in every build")


def _pythons() -> list[tuple[str, str]]:
    minimum = _requires_python()
    listed = os.environ.get("FERROLOCK_WHEEL_PYTHONS")
    if listed:
        candidates = [Path(p) for p in listed.split(os.pathsep) if p]
    else:
        candidates = sorted(Path.home().glob(".pyenv/versions/*/bin/python3"))
        candidates += [Path(found) for minor in range(10, 30) if (found := shutil.which(f"python3.{minor}"))]
    by_version: dict[tuple[int, int], str] = {}
    for candidate in candidates:
        probe = subprocess.run(
            [str(candidate), "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if probe.returncode != 0:
            continue
        major, minor = map(int, probe.stdout.split())
        if (major, minor) >= minimum:
            by_version.setdefault((major, minor), str(candidate))
    return [(f"{major}.{minor}", python) for (major, minor), python in sorted(by_version.items())]


def _requires_python() -> tuple[int, int]:
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    found = re.fullmatch(r">=\s*(\d+)\.(\d+)", spec.strip())
    if found is None:
        sys.exit(f"cannot read requires-python {spec!r}")
    return int(found[1]), int(found[2])


def _test_one(python: str, venv: Path, wheel: Path, version: str, failpoints_feature: bool) -> bool:
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=TIMEOUT)
    bin_dir = venv / "bin"
    # Only the virtualenv's own programs: no compiler, linker or Rust toolchain can be found from here.
    found = {tool: shutil.which(tool, path=str(bin_dir)) for tool in COMPILERS}
    if any(found.values()):
        print(f"   a compiler is reachable from {bin_dir}: {found}")
        return False
    environment = {
        "PATH": str(bin_dir),
        "HOME": str(venv),
        "LANG": "C.UTF-8",
        "PIP_NO_CACHE_DIR": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    steps = [
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(bin_dir / "python"),
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            "--only-binary",
            ":all:",
            str(wheel),
        ],
        [str(bin_dir / "python"), str(SMOKE), version, *(["--no-failpoints"] if failpoints_feature else [])],
    ]
    for step in steps:
        done = subprocess.run(
            step, env=environment, cwd=venv, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
        output = (done.stdout + done.stderr).strip()
        if output:
            print("   " + output.replace("\n", "\n   "))
        if done.returncode != 0:
            return False
    return True


if __name__ == "__main__":
    sys.exit(main())
