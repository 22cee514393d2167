"""The filelock-suite comparison's own parts (tools/filelock_suite/), without filelock's mirror: which tests
the rules leave out and why, that the interpreter-start substitution really puts ferrolock in filelock's
place (and refuses to run on filelock when it cannot), and the comparison's arithmetic."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import ferrolock
import filelock
import pytest

from tests.legacy_source import load_module_from_file

TOOLS = Path(__file__).resolve().parent.parent / "tools" / "filelock_suite"
selection = load_module_from_file(TOOLS / "selection.py", "filelock_suite_selection")
runner = load_module_from_file(TOOLS / "run.py", "filelock_suite_run")

COMPARED = (filelock.FileLock, filelock.UnixFileLock, filelock.Timeout)
SOFT_PARAMETRIZED = """
@pytest.mark.parametrize("lock_type", [FileLock, SoftFileLock])
def test_x(lock_type, tmp_path):
    with lock_type(tmp_path / "a"):
        pass
"""


def reason(nodeid: str, source: str, params: dict[str, object] | None = None, fixtures: list[str] | None = None):
    return selection.exclusion_reason(nodeid, params or {}, fixtures or [], source, COMPARED)


def test_a_parametrize_list_naming_softfilelock_leaves_out_only_that_parametrization() -> None:
    nodeid = "tests/test_filelock.py::test_x"
    assert reason(nodeid, SOFT_PARAMETRIZED, {"lock_type": filelock.FileLock}) is None
    left_out = reason(nodeid, SOFT_PARAMETRIZED, {"lock_type": filelock.SoftFileLock})
    assert left_out == "parametrization: lock_type=SoftFileLock, which is not compared"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('mocker.patch("filelock._unix.fcntl.flock", side_effect=OSError)', "patches a private filelock module"),
        ('mocker.patch("os.open", side_effect=fail)', "system call wrapper"),
        ("lock = SoftFileLock(path)", "SoftFileLock and its relatives"),
        ("class Backend(BaseFileLock):\n    pass", "abstract backend"),
        ("assert lock._open_mode() == 0o644", "private method"),
    ],
)
def test_the_code_of_a_test_of_internals_leaves_it_out_and_says_what_matched(body: str, expected: str) -> None:
    source = "def test_y(tmp_path, mocker):\n" + textwrap.indent(body, "    ")
    found = reason("tests/test_filelock.py::test_y", source)
    assert found is not None
    assert expected in found
    assert found.startswith("source (")


def test_public_use_and_os_exit_in_a_child_are_selected() -> None:
    source = "def test_z(tmp_path):\n    lock = FileLock(tmp_path / 'a')\n    if os.fork() == 0:\n        os._exit(0)\n"
    assert reason("tests/test_fork_ownership.py::test_z", source) is None


def test_file_rules_come_first_and_keep_overrides_later_rules() -> None:
    assert reason("tests/test_soft_stale.py::test_anything", "def test_anything(): pass").startswith("file: ")
    kept = "tests/test_filelock.py::test_subclass_compatibility"
    assert reason(kept, "def test_subclass_compatibility():\n    class A(SoftFileLock): pass") is None
    by_fixture = reason("tests/test_filelock.py::test_w", "def test_w(close_failure): pass", fixtures=["close_failure"])
    assert by_fixture.startswith("fixture close_failure: ")


def run_with_shim(code: str, where: str | None, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter whose site directory holds the runner's .pth line (as the suite's
    virtualenv does), with FERROLOCK_FILELOCK_SHIM set to ``where``."""
    site_dir = tmp_path / "site"
    site_dir.mkdir(exist_ok=True)
    (site_dir / runner.PTH_NAME).write_text(runner.PTH_LINE, encoding="utf-8")
    environment = {k: v for k, v in os.environ.items() if k != "FERROLOCK_FILELOCK_SHIM"}
    environment["PYTHONPATH"] = os.pathsep.join([str(TOOLS), environment.get("PYTHONPATH", "")])
    if where is not None:
        environment["FERROLOCK_FILELOCK_SHIM"] = where
    # site.addsitedir runs the .pth line the way interpreter start-up does for site-packages.
    script = f"import site; site.addsitedir({str(site_dir)!r})\n" + code
    return subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_shim_puts_ferrolock_in_filelocks_place(tmp_path: Path) -> None:
    python_dir = str(Path(ferrolock.__file__).resolve().parent.parent)
    code = textwrap.dedent("""
        import ferrolock, filelock, filelock.asyncio, ferrolock_filelock_shim as shim
        expected_async = getattr(ferrolock, "AsyncFileLock", shim.MissingAsyncFileLock)
        assert filelock.FileLock is filelock.UnixFileLock is ferrolock.FileLock
        assert filelock.Timeout is ferrolock.Timeout
        assert filelock.AsyncFileLock is filelock.AsyncUnixFileLock is filelock.asyncio.AsyncUnixFileLock
        assert filelock.AsyncFileLock is expected_async
        assert shim.original_name(ferrolock.FileLock) == "UnixFileLock"
        assert filelock.SoftFileLock.__module__.startswith("filelock")
        print("replaced")
    """)
    done = run_with_shim(code, python_dir, tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, "replaced"), done.stderr


def test_without_the_variable_filelock_stays_filelock(tmp_path: Path) -> None:
    code = "import filelock, ferrolock\nprint(filelock.FileLock is ferrolock.FileLock)"
    done = run_with_shim(code, None, tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, "False"), done.stderr


def test_a_shim_that_cannot_load_ferrolock_stops_the_interpreter(tmp_path: Path) -> None:
    broken = tmp_path / "broken" / "ferrolock"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('not built')\n", encoding="utf-8")
    done = run_with_shim("print('ran on filelock')", str(broken.parent), tmp_path)
    assert done.returncode != 0
    assert "ran on filelock" not in done.stdout
    assert "cannot put ferrolock in place of filelock" in done.stderr


def test_the_comparison_counts_gaps_only_where_filelock_passes() -> None:
    def run(outcomes: dict[str, str]) -> dict[str, object]:
        return {
            "implementation_path": "x",
            "results": {test: {"outcome": o, "message": ""} for test, o in outcomes.items()},
            "excluded": [{"id": "t::left_out", "reason": "file: soft"}],
        }

    report = runner._compare(
        {
            "filelock": run({"t::a": "passed", "t::b": "passed", "t::c": "skipped", "t::d": "failed"}),
            "ferrolock": run({"t::a": "passed", "t::b": "failed", "t::c": "skipped", "t::d": "passed"}),
        }
    )
    summary = report["summary"]
    assert (summary["selected"], summary["left_out"], summary["selection_mismatch"]) == (4, 1, [])
    assert (summary["passed_on_filelock"], summary["passed_on_ferrolock"], summary["passed_on_both"]) == (2, 2, 1)
    assert (summary["failing_only_on_ferrolock"], summary["passing_only_on_ferrolock"]) == (1, 1)


def _row(test_id: str, filelock_outcome: str, ferrolock_outcome: str) -> dict[str, str]:
    return {"id": test_id, "filelock": filelock_outcome, "ferrolock": ferrolock_outcome}


def test_fail_on_gap_passes_only_listed_differences_and_flags_closed_ones(capsys: pytest.CaptureFixture[str]) -> None:
    known = next(iter(runner.known_differences.KNOWN_DIFFERENCES))
    report = {"implementations": {"filelock": "x", "ferrolock": "y"}}
    report["tests"] = [_row(known, "passed", "failed"), _row("t::same", "passed", "passed")]
    assert runner._gate(report) == 0
    report["tests"] = [_row(known, "passed", "failed"), _row("t::new_gap", "passed", "failed")]
    assert runner._gate(report) == 1
    assert (
        "GAP: passes on filelock, not on ferrolock, and is no known difference: t::new_gap" in capsys.readouterr().out
    )
    report["tests"] = [_row(known, "passed", "passed")]
    assert runner._gate(report) == 1
    assert f"CLOSED: listed in known_differences.py but passes on ferrolock now: {known}" in capsys.readouterr().out
    report["tests"] = [_row("t::skipped_on_both", "skipped", "skipped")]  # a narrowed run lists nothing
    assert runner._gate(report) == 0


def test_every_known_difference_gives_a_reason() -> None:
    for test, why in runner.known_differences.KNOWN_DIFFERENCES.items():
        assert test.startswith("tests/"), test
        assert "::" in test, test
        assert len(why) > 40, test
