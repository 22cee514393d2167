"""``ferrolock status`` and ``ferrolock clean``: the finding and removing is in the Rust core
(``ferrolock._ferrolock._scan_locks`` / ``_clean_locks``); this module only presents it.

Human output uses ``rich`` (tables, progress) when it is installed (``pip install ferrolock[cli]``) and
plain aligned text otherwise; ``--json`` output never depends on it.

Names come from directories other users may write, so every piece of text shown to a human goes through
``shown``: control characters (a newline that would forge a row, terminal escapes), invisible format
characters (bidirectional overrides) and bytes that are not UTF-8 are written as Python-style escapes
(``\\n``, ``\\x1b``, ``\\u202e``, ``\\xff``), and a backslash as ``\\\\``, so the text on screen is
unambiguous. ``--json`` output is ASCII (``json.dumps`` escapes everything else); a name that is not
UTF-8 appears as ``os.fsdecode`` decodes it (surrogate escapes, ``\\udcff``), which ``os.fsencode``
turns back into the bytes on disk.

The ``--json`` document of ``status`` (``version`` 1) is::

    {"version": 1, "roots": [...], "summary": {"locks": N, "held": N, "free": N, "stale": N, "skipped": N},
     "locks": [{"path": str, "kind": str, "guards": str, "state": "held" | "free",
                "mode": "exclusive" | "shared" | null, "pids": [int], "waiters": int,
                "holder": {"pid", "host", "since", "purpose", "version"} | null,
                "claim": {"loop_name", "scope", "pid", "started_at", "singleton", "kernel_held"} | null,
                "stale": bool, "stale_reason": str | null}],
     "skipped": [{"path": str, "reason": str}]}

and that of ``clean`` is ``{"version": 1, "dry_run": bool, "removed": [{"path", "kind", "reason"}],
"skipped": [{"path", "reason"}]}``. ``skipped`` lists what could not be looked at (or removed): an
unreadable directory, a directory swapped for a symlink, a FIFO where a lock file was. Both commands go
on past such entries, list them on stderr, and then exit with status 1 (as ``find`` does); otherwise 0.

``kind`` is one of ``lock_file``, ``logist_job``, ``logist_index``, ``workspace_setup``,
``scope_claim``, ``scope_sentinel``, ``todo2_state``, ``todo2_task``, ``blackbox5_state``.
"""

from __future__ import annotations

import json
import os
import sys
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ._ferrolock import _clean_locks, _scan_locks

JSON_VERSION = 1
COLUMNS = ("state", "mode", "kind", "guards", "holder", "path")

#: Unicode categories written as escapes: controls, invisible format characters (bidirectional
#: overrides among them), surrogates (undecodable bytes), and line and paragraph separators.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def shown(text: str) -> str:
    """``text`` as it may reach a terminal: see the module's docstring."""
    if text.isprintable() and "\\" not in text:
        return text  # the common case, decided in C
    return "".join(_escape(ch) for ch in text)


def _escape(ch: str) -> str:
    if ch in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[ch]
    if unicodedata.category(ch) not in _ESCAPED_CATEGORIES:
        return ch
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, as os.fsdecode keeps it
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _rich_console() -> Any | None:
    if os.environ.get("FERROLOCK_PLAIN"):
        return None
    try:
        from rich.console import Console
    except ImportError:
        return None
    return Console(stderr=False)


@contextmanager
def _progress(label: str, enabled: bool) -> Iterator[Callable[[int], None] | None]:
    """A live "files looked at" counter on stderr for large trees (rich), or nothing."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    try:
        from rich.progress import Progress, SpinnerColumn, TextColumn
    except ImportError:
        yield None
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True) as bar:
        task = bar.add_task(label)
        yield lambda seen: bar.update(task, description=f"{label}: {seen} files")


def _holder_text(lock: dict[str, Any]) -> str:
    if lock["claim"] is not None:
        c = lock["claim"]
        how = "kernel-held" if lock["state"] == "held" else ("stale" if lock["stale"] else "pid-judged")
        return f"{c['loop_name']} pid {c['pid']} since {c['started_at']} ({how}) scope {', '.join(c['scope'])}"
    h = lock["holder"]
    if h is not None:
        text = f"pid {h['pid']} on {h['host']} since {h['since']}"
        return f"{text} ({h['purpose']})" if h.get("purpose") else text
    if lock["pids"]:
        return "pid " + ", ".join(str(p) for p in lock["pids"]) + " (no record)"
    return ""


def _row(lock: dict[str, Any], roots: list[str]) -> tuple[str, ...]:
    state = "STALE" if lock["stale"] else lock["state"]
    if lock["waiters"]:
        state += f" (+{lock['waiters']} waiting)"
    path = lock["path"]
    for root in roots:
        if path.startswith(root.rstrip("/") + "/"):
            path = os.path.relpath(path, root)
            break
    cells = (state, lock["mode"] or "", lock["kind"], lock["guards"], _holder_text(lock), path)
    return tuple(shown(cell) for cell in cells)


def _report_skipped(skipped: list[dict[str, str]]) -> int:
    """Lists what could not be looked at on stderr; the exit status (1 if anything was skipped)."""
    for item in skipped:
        print(f"ferrolock: skipped {shown(item['path'])}: {shown(item['reason'])}", file=sys.stderr)
    return 1 if skipped else 0


def status(roots: list[str], as_json: bool) -> int:
    with _progress("scanning", not as_json) as progress:
        found = _scan_locks(roots, progress)
    locks, skipped = found["locks"], found["skipped"]
    summary = {
        "locks": len(locks),
        "held": sum(lock["state"] == "held" for lock in locks),
        "free": sum(lock["state"] == "free" for lock in locks),
        "stale": sum(bool(lock["stale"]) for lock in locks),
        "skipped": len(skipped),
    }
    if as_json:
        doc = {"version": JSON_VERSION, "roots": roots, "summary": summary, "locks": locks, "skipped": skipped}
        print(json.dumps(doc, indent=2))
        return 1 if skipped else 0
    rows = [_row(lock, roots) for lock in locks]
    console = _rich_console()
    if console is not None:
        from rich.table import Table
        from rich.text import Text

        title = Text(f"{summary['locks']} locks under {', '.join(shown(root) for root in roots)}")
        table = Table(*COLUMNS, title=title, title_justify="left")
        for row in rows:
            style = "red" if row[0].startswith("STALE") else ("yellow" if row[0].startswith("held") else None)
            # Text, not str: rich would read "[...]" in a name as markup.
            table.add_row(*(Text(cell) for cell in row), style=style)
        console.print(table)
    else:
        _print_plain(rows)
    skipped_text = f", {len(skipped)} skipped" if skipped else ""
    print(f"{summary['held']} held, {summary['free']} free, {summary['stale']} stale{skipped_text}")
    return _report_skipped(skipped)


def _print_plain(rows: list[tuple[str, ...]]) -> None:
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(COLUMNS)]
    for row in [COLUMNS, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def clean(roots: list[str], dry_run: bool, as_json: bool) -> int:
    with _progress("cleaning", not as_json) as progress:
        done = _clean_locks(roots, dry_run, progress)
    removed, skipped = done["removed"], done["skipped"]
    if as_json:
        doc = {"version": JSON_VERSION, "dry_run": dry_run, "removed": removed, "skipped": skipped}
        print(json.dumps(doc, indent=2))
        return 1 if skipped else 0
    verb = "would remove" if dry_run else "removed"
    for item in removed:
        print(f"{verb} {shown(item['path'])} ({item['kind']}: {shown(item['reason'])})")
    print(f"{len(removed)} file(s) {verb}" if removed else "nothing to remove")
    return _report_skipped(skipped)
