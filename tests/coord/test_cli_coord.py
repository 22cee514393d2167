"""``ferrolock run --url`` and ``ferrolock status --url`` on both backends, as real commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from coord_helpers import hold
from process_helpers import SPAWN, START_DEADLINE, cleanup_processes

FERROLOCK = [sys.executable, "-m", "ferrolock.cli"]
pytestmark = pytest.mark.timeout(120)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FERROLOCK, *args], capture_output=True, text=True, timeout=60, check=False)


def test_run_holds_the_named_lock_while_the_command_runs(coord_url: str, name: str) -> None:
    probe = (
        "import ferrolock, sys\n"
        f"lock = ferrolock.connect({coord_url!r}).lock({name!r}, timeout=0)\n"
        "try:\n    lock.acquire()\nexcept ferrolock.Timeout as e:\n    print('busy', e.holder['purpose'])\n"
    )
    out = run("run", "--url", coord_url, name, "--", sys.executable, "-c", probe)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("busy ferrolock run: "), out.stdout
    assert run("run", "--url", coord_url, name, "--", "sh", "-c", "exit 7").returncode == 7


def test_run_conflict_and_status(coord_url: str, name: str) -> None:
    held, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold, args=(coord_url, name, held, release, "cli holder"))
    with cleanup_processes(holder):
        holder.start()
        assert held.wait(START_DEADLINE)
        out = run("run", "--url", coord_url, "-n", "-E", "9", name, "--", "true")
        assert out.returncode == 9
        status = run("status", "--url", coord_url, "--json")
        assert status.returncode == 0, status.stderr
        locks = {entry["name"]: entry for entry in json.loads(status.stdout)["locks"]}
        assert locks[name]["holders"][0]["holder"]["purpose"] == "cli holder"
        assert locks[name]["holders"][0]["holder"]["pid"] == holder.pid
        text = run("status", "--url", coord_url)
        assert f"{name}\theld exclusive by pid {holder.pid}" in text.stdout
        release.set()


def test_bad_url_is_a_message_not_a_traceback() -> None:
    out = run("run", "--url", "redis://nowhere", "x", "--", "true")
    assert out.returncode == 1
    assert "scheme" in out.stderr
    assert "Traceback" not in out.stderr
    out = run("status", "--url", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr


def test_schema_sql_is_printable() -> None:
    out = run("schema", "--sql")
    assert out.returncode == 0
    assert "CREATE TABLE IF NOT EXISTS ferrolock.locks" in out.stdout


def test_bench_url_measures_the_coordinator_against_the_floor(pg_url: str, tmp_path: Path) -> None:
    out_json = tmp_path / "coord.json"
    out = subprocess.run(
        [*FERROLOCK, "bench", "--url", pg_url, "--quick", "--json", str(out_json)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("| metric | floor | ferrolock | poll"), out.stdout
    results = json.loads(out_json.read_text())
    for kind in ("floor", "ferrolock", "poll"):
        assert results[kind]["uncontended_ms"] > 0
        assert results[kind]["handoff_median_ms"] <= results[kind]["handoff_p99_ms"]
    # A paused holder loses its lock after its lease (2 s here), never before it.
    assert 1.0 <= results["ferrolock"]["paused_to_next_s"] <= 2.0 + 1.0 + 5.0


def test_bench_url_refuses_a_url_it_cannot_measure() -> None:
    out = run("bench", "--url", "file:///tmp/x")
    assert out.returncode == 2
    assert "postgresql://" in out.stderr
