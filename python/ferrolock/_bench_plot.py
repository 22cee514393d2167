"""The PNG for ``ferrolock bench --plot``: hand-off latency, SIGKILL hand-off and uncontended cost per
library, on log scales (the libraries differ by orders of magnitude). Needs ``ferrolock[plot]``."""

from __future__ import annotations

import statistics
from typing import Any

from . import _bench_adapters as adapters


def plot(results: Any, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    libs = results.libs
    names = [adapters.ADAPTERS[k].name.replace(" (", "\n(") for k in libs]
    rows = results.rows
    panels = [
        ("wake-up after release (median)", [statistics.median(rows["wakeup"][k]) * 1e3 for k in libs], "ms"),
        (
            "holder SIGKILLed -> waiter has lock (median)",
            [statistics.median(rows["kill"][k]) * 1e3 for k in libs],
            "ms",
        ),
        ("uncontended acquire + release", [rows["uncontended"][k] for k in libs], "us"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 4.8))
    colors = ["#1f9e89" if k == "ferrolock" else ("#555555" if k == "floor" else "#b0b0b0") for k in libs]
    for ax, (title, values, unit) in zip(axes, panels, strict=True):
        bars = ax.bar(names, values, color=colors)
        ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)
        ax.tick_params(axis="x", labelsize=7)
        for bar, value in zip(bars, values, strict=True):
            ax.annotate(
                f"{value:.3g}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom", fontsize=7
            )
    fig.suptitle("ferrolock bench: lower is better (log scale); dark grey = blocking fcntl.flock, the floor")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
