"""The presentation side of the command line: the rich table, and the benchmark's plot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ferrolock
import pytest
from ferrolock import _bench_plot
from ferrolock.benchmark import Results, markdown


def test_status_uses_a_rich_table_when_rich_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("rich")
    with ferrolock.FileLock(tmp_path / "a.lock", purpose="shown in the table"):
        env = {k: v for k, v in os.environ.items() if k != "FERROLOCK_PLAIN"} | {"COLUMNS": "200"}
        out = subprocess.run(
            [sys.executable, "-m", "ferrolock.cli", "status", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env=env,
        )
    assert "┃ state" in out.stdout
    assert "shown in the table" in out.stdout


def test_bench_plot_writes_a_png_from_results(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    libs = ["floor", "ferrolock"]
    results = Results(libs)
    for lib, scale in zip(libs, (1.0, 1.5), strict=True):
        results.put("uncontended", lib, 0.5 * scale)
        results.put("wakeup", lib, [30e-6 * scale, 40e-6 * scale, 90e-6 * scale])
        results.put("kill", lib, [1e-3 * scale, 1.2e-3 * scale])
        results.put("fairness", lib, ([100, 95, 97, 99], 0.004))
        results.put("timeout", lib, None if lib == "floor" else [0.0003, 0.0004])
        results.put("fork", lib, "ok")
    out = tmp_path / "bench.png"
    _bench_plot.plot(results, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = markdown(results)
    assert "| uncontended acquire+release | 0.50 us | 0.75 us | 1.5x | <= 3 us |" in table
