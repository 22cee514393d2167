#!/usr/bin/env python3
"""Run py-filelock's own tests on filelock and on ferrolock, and compare them test by test.

    python tools/filelock_suite/run.py --mirrors DIR      (or FERROLOCK_MIRRORS=DIR; `make filelock-suite`)

1. Exports filelock's source at a pinned commit from a local bare mirror (``DIR/tox-dev+filelock/repo``)
   into a scratch directory (``--work``, default ``.filelock-suite/``). Nothing of filelock's is stored in
   this repository.
2. Creates, once, a virtualenv there with the suite's test dependencies (pinned in ``requirements.txt``
   beside this file) and filelock installed from the same exported source, so tests and implementation
   match.
3. Runs the selected tests (``selection.py`` says which, and why each other test is left out) twice: on
   filelock, and on ferrolock, whose ``FileLock``, ``AsyncFileLock``, ``UnixFileLock``,
   ``AsyncUnixFileLock`` and ``Timeout`` replace filelock's at interpreter start
   (``ferrolock_filelock_shim.py``), so subprocesses and spawned or forked children get them too.
4. Prints both results per test, the tests left out grouped by reason, and a summary, and writes all of it
   as JSON (``--json-out``).

ferrolock is imported from ``--ferrolock-path`` (default: this repository's ``python/``, where
``make build-dev`` puts the extension). The exit status is 0 when both runs completed, whatever they found.
``--fail-on-gap`` exits 1 on a test that passes on filelock and not on ferrolock unless
``known_differences.py`` lists it with its reason, and on a listed test that no longer differs (so the list
stays exact). It needs the mirror, which CI does not have: it is a make target, not a CI step.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import known_differences  # noqa: E402 (beside this file)

REPOSITORY_ROOT = HERE.parent.parent
MIRROR_NAME = "tox-dev+filelock"
#: The pinned commit of tox-dev/filelock (its HEAD when the selection was written) and the version hatch-vcs
#: would give it there (``git describe``: 3.32.3-6-g61511eb); hatch-vcs cannot ask git in an exported tree.
COMMIT = "61511ebc1cc5d40b28f8584f1078e63f2d63fb02"
PRETEND_VERSION = "3.32.4.dev6+g61511eb"
REQUIREMENTS = HERE / "requirements.txt"
PTH_NAME = "ferrolock_filelock_shim.pth"
#: Exec'd by site at every start of the suite's interpreter; imports the shim only for the ferrolock run.
PTH_LINE = "import os; os.environ.get('FERROLOCK_FILELOCK_SHIM') and __import__('ferrolock_filelock_shim')\n"
RUN_TIMEOUT = 45 * 60
PASSED = "passed"


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    mirror = _mirror(args.mirrors)
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    source = _export(mirror, work)
    python = _venv(work, source, args.python)
    runs: dict[str, dict[str, Any]] = {}
    for implementation in ("filelock", "ferrolock"):
        if args.only in (None, implementation):
            runs[implementation] = _run(implementation, python, source, work, args)
    report = _compare(runs)
    _print(report, quiet=args.quiet)
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"\nJSON: {args.json_out}")
    if args.fail_on_gap:
        return _gate(report)
    return 0


def _gate(report: dict[str, Any]) -> int:
    """1 (with what is wrong printed) if a gap is not a known difference or a known difference closed."""
    if set(report["implementations"]) != {"filelock", "ferrolock"}:
        print("--fail-on-gap needs both runs")
        return 1
    new, closed = known_differences.unexpected(report["tests"])
    for test in new:
        print(f"GAP: passes on filelock, not on ferrolock, and is no known difference: {test}")
    for test in closed:
        print(f"CLOSED: listed in known_differences.py but passes on ferrolock now: {test}")
    if not new and not closed:
        print(f"\nNo gaps beyond the {len(known_differences.KNOWN_DIFFERENCES)} known differences.")
    return 1 if new or closed else 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--mirrors",
        type=Path,
        default=os.environ.get("FERROLOCK_MIRRORS"),
        help="folder holding tox-dev+filelock/repo (default: $FERROLOCK_MIRRORS)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=REPOSITORY_ROOT / ".filelock-suite",
        help="scratch folder: exported source, virtualenv, logs (default: %(default)s)",
    )
    parser.add_argument(
        "--ferrolock-path",
        type=Path,
        default=REPOSITORY_ROOT / "python",
        help="folder ferrolock is imported from (default: %(default)s)",
    )
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter the virtualenv is made from (default: this one)"
    )
    parser.add_argument("--only", choices=("filelock", "ferrolock"), help="run one side only")
    parser.add_argument("--json-out", type=Path, default=None, help="default: WORK/filelock-suite.json")
    parser.add_argument("--quiet", action="store_true", help="print the summary and the differences only")
    parser.add_argument(
        "--fail-on-gap",
        action="store_true",
        help="exit 1 on a gap that known_differences.py does not list, or on a listed test that no longer differs",
    )
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --), e.g. -k timeout")
    args = parser.parse_args(argv)
    if args.json_out is None:
        args.json_out = args.work.resolve() / "filelock-suite.json"
    return args


def _mirror(mirrors: Path | None) -> Path:
    if mirrors is None:
        sys.exit("no mirror folder: pass --mirrors DIR or set FERROLOCK_MIRRORS (it must hold tox-dev+filelock/repo)")
    repo = mirrors / MIRROR_NAME / "repo"
    found = subprocess.run(
        ["git", "--git-dir", str(repo), "cat-file", "-e", f"{COMMIT}^{{commit}}"], capture_output=True, check=False
    )
    if found.returncode != 0:
        sys.exit(f"{repo} is not a git mirror of tox-dev/filelock holding commit {COMMIT}")
    return repo


def _export(mirror: Path, work: Path) -> Path:
    """filelock's tree at COMMIT, exported once into WORK/filelock-<commit>."""
    target = work / f"filelock-{COMMIT[:12]}"
    marker = target / ".exported"
    if marker.exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "--git-dir", str(mirror), "archive", "--format=tar", COMMIT], capture_output=True, check=True
    )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout), mode="r") as tar:
        tar.extractall(target, filter="data")
    marker.write_text(COMMIT + "\n", encoding="utf-8")
    return target


def _venv(work: Path, source: Path, base_python: str) -> Path:
    """The suite's virtualenv (made once per requirements/commit/interpreter), and its interpreter."""
    version = subprocess.run(
        [base_python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    key = hashlib.sha256(
        "\n".join([REQUIREMENTS.read_text(encoding="utf-8"), COMMIT, PRETEND_VERSION, version]).encode()
    ).hexdigest()[:16]
    venv = work / "venv"
    python = venv / "bin" / "python"
    stamp = venv / ".filelock-suite-stamp"
    if not (stamp.exists() and stamp.read_text(encoding="utf-8") == key):
        print(f"== creating {venv} (Python {version.split()[0]})", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "--disable-pip-version-check", "--quiet"]
        # Every package is pinned in the file, so --no-deps keeps PyPI's filelock (a dependency of virtualenv)
        # out: filelock comes from the exported source, below. `pip check` then proves the set is complete.
        subprocess.run([*pip, "install", "--no-deps", "-r", str(REQUIREMENTS)], check=True)
        environment = {**os.environ, "SETUPTOOLS_SCM_PRETEND_VERSION": PRETEND_VERSION}
        subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", str(source)], check=True, env=environment)
        subprocess.run([str(python), "-m", "pip", "check"], check=True)
        stamp.write_text(key, encoding="utf-8")
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, PTH_NAME).write_text(PTH_LINE, encoding="utf-8")
    return python


def _run(implementation: str, python: Path, source: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    results = work / f"results-{implementation}.json"
    log = work / f"pytest-{implementation}.log"
    results.unlink(missing_ok=True)
    environment = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "FERROLOCK_FILELOCK_SHIM"}}
    environment.update(
        {"PYTHONPATH": str(HERE), "FILELOCK_SUITE_RESULTS": str(results), "PYTHONDONTWRITEBYTECODE": "1"}
    )
    if implementation == "ferrolock":
        ferrolock_path = args.ferrolock_path.resolve()
        if not any(ferrolock_path.glob("ferrolock/_ferrolock*.so")):
            sys.exit(f"no built ferrolock extension under {ferrolock_path}/ferrolock: run `make build-dev` first")
        environment["FERROLOCK_FILELOCK_SHIM"] = str(ferrolock_path)
        _check_substitution(python, environment, work)
    basetemp = work / f"tmp-{implementation}"
    shutil.rmtree(basetemp, ignore_errors=True)
    command = [
        str(python),
        "-m",
        "pytest",
        "-p",
        "filelock_suite_plugin",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rN",
        f"--basetemp={basetemp}",
        "tests",
        *args.pytest_args,
    ]
    print(f"== {implementation}: pytest on filelock's tests (log: {log})", flush=True)
    with log.open("w", encoding="utf-8") as output:
        completed = subprocess.run(
            command,
            cwd=source,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
    print(f"   {tail[0] if tail else '(no output)'}", flush=True)
    if not results.exists():
        sys.exit(f"the {implementation} run wrote no results (pytest exit {completed.returncode}); see {log}")
    run: dict[str, Any] = json.loads(results.read_text(encoding="utf-8"))
    return run


#: Run in the suite's interpreter before the ferrolock run: a subprocess, a spawned child and a forked child
#: must all see ferrolock's classes under filelock's names, or the comparison would measure filelock.
_SUBSTITUTION_CHECK = """
import multiprocessing, os, subprocess, sys
import ferrolock, filelock

def same():
    return filelock.FileLock is ferrolock.FileLock and filelock.Timeout is ferrolock.Timeout

def report(queue):
    queue.put(same())

if __name__ == "__main__":
    child = subprocess.run([sys.executable, "-c", "import ferrolock, filelock; "
                            "raise SystemExit(0 if filelock.FileLock is ferrolock.FileLock else 1)"], check=False)
    seen = {"this": same(), "subprocess": child.returncode == 0}
    for method in ("spawn", "fork"):
        context = multiprocessing.get_context(method)
        queue = context.Queue()
        process = context.Process(target=report, args=(queue,))
        process.start()
        seen[method] = queue.get(timeout=60)
        process.join(timeout=60)
    print(seen)
    raise SystemExit(0 if all(seen.values()) else 1)
"""


def _check_substitution(python: Path, environment: dict[str, str], work: Path) -> None:
    script = work / "substitution_check.py"  # a file, not -c: a spawned child re-imports its __main__
    script.write_text(_SUBSTITUTION_CHECK, encoding="utf-8")
    checked = subprocess.run(
        [str(python), str(script)], env=environment, capture_output=True, text=True, timeout=180, check=False
    )
    if checked.returncode != 0:
        sys.exit(f"ferrolock is not in place of filelock in every kind of process:\n{checked.stdout}{checked.stderr}")
    print(f"   ferrolock replaces filelock in: {checked.stdout.strip()}", flush=True)


def _compare(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ids = sorted(set().union(*(run["results"] for run in runs.values())))
    tests = []
    for test_id in ids:
        row: dict[str, Any] = {"id": test_id}
        for name, run in runs.items():
            result = run["results"].get(test_id, {"outcome": "not run", "message": ""})
            row[name] = result["outcome"]
            row[f"{name}_message"] = result["message"]
        tests.append(row)
    excluded_sets = {name: {entry["id"]: entry["reason"] for entry in run["excluded"]} for name, run in runs.items()}
    excluded = next(iter(excluded_sets.values()), {})
    mismatched = sorted(set().union(*excluded_sets.values()) - set.intersection(*map(set, excluded_sets.values())))
    summary: dict[str, Any] = {"selected": len(ids), "left_out": len(excluded), "selection_mismatch": mismatched}
    for name in runs:
        summary[f"passed_on_{name}"] = sum(row[name] == PASSED for row in tests)
    if len(runs) == 2:
        summary["passed_on_both"] = sum(row["filelock"] == row["ferrolock"] == PASSED for row in tests)
        summary["failing_only_on_ferrolock"] = sum(
            row["filelock"] == PASSED and row["ferrolock"] != PASSED for row in tests
        )
        summary["passing_only_on_ferrolock"] = sum(
            row["ferrolock"] == PASSED and row["filelock"] != PASSED for row in tests
        )
    return {
        "commit": COMMIT,
        "filelock_version": PRETEND_VERSION,
        "implementations": {name: run["implementation_path"] for name, run in runs.items()},
        "summary": summary,
        "tests": tests,
        "excluded": [{"id": test_id, "reason": reason} for test_id, reason in sorted(excluded.items())],
    }


def _print(report: dict[str, Any], *, quiet: bool) -> None:
    names = [name for name in ("filelock", "ferrolock") if name in report["implementations"]]
    print("\n== Selected tests: " + " | ".join(f"{name:<9}" for name in names) + " | test")
    for row in report["tests"]:
        differs = len({row[name] for name in names}) > 1
        if quiet and not differs:
            continue
        cells = " | ".join(f"{row[name]:<9}" for name in names)
        print(f"{'*' if differs else ' '} {cells} | {row['id']}")
        if differs and row["id"] in known_differences.KNOWN_DIFFERENCES:
            print(f"      known difference: {known_differences.KNOWN_DIFFERENCES[row['id']]}")
        if differs and "ferrolock" in names and row["ferrolock_message"]:
            print(f"      ferrolock: {row['ferrolock_message'][:200]}")
    print("\n== Left out, by reason (test[*] = every parametrization of that test):")
    by_reason: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for entry in report["excluded"]:
        by_reason[entry["reason"]][entry["id"].split("[", 1)[0] + ("[*]" if "[" in entry["id"] else "")] += 1
    for reason, tests in sorted(by_reason.items(), key=lambda item: -sum(item[1].values())):
        print(f"- {reason}: {sum(tests.values())} tests")
        if not quiet:
            for test, count in sorted(tests.items()):
                print(f"    {test}" + (f" ({count})" if count > 1 else ""))
    summary = report["summary"]
    print("\n== Summary")
    for key, value in summary.items():
        if key != "selection_mismatch":
            print(f"  {key.replace('_', ' ')}: {value}")
    if summary["selection_mismatch"]:
        print(f"  WARNING: the two runs selected different tests: {summary['selection_mismatch'][:10]}")


if __name__ == "__main__":
    sys.exit(main())
