"""Golden ``STATE.md`` files: what the legacy BlackBox5 module writes for a fixed set of states and calls,
so that CI (which has no mirrors) checks ferrolock's renderer byte for byte.

The cases are defined here, in terms of a module that has ``TaskState``, ``WorkflowState`` and
``StateManager`` (the legacy one or ``ferrolock.compat.blackbox5``). ``golden_render.json`` next to this
file holds the legacy module's output for each case: rendering output, not legacy code. Regenerate it
after adding a case (it needs the legacy mirror, see ``tests/legacy_source.py``):

    FERROLOCK_MIRRORS=/path/to/mirrors .venv/bin/python tests/compat/blackbox5/golden_cases.py

The cases stay clear of the two deliberate differences (pending tasks of the current or an earlier wave,
line breaks inside a field); ``test_blackbox5_fixes.py`` and ``test_hostile_state_md.py`` cover those.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from collections import OrderedDict, UserDict
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

GOLDEN_FILE = Path(__file__).with_name("golden_render.json")
T0 = datetime(2025, 1, 15, 10, 0, 0)
T1 = datetime(2025, 1, 15, 12, 30, 5)
RANDOM_STATES = 120


class Shout(str):
    """A ``str`` subclass whose ``format()`` differs from its value: f-strings show it upper-cased, while
    ``", ".join`` (the legacy ``Files`` line) uses the value itself."""

    def __format__(self, spec: str) -> str:
        return self.upper()


class Tag:
    """A value of no known kind: the legacy code showed ``format(value)``."""

    def __format__(self, spec: str) -> str:
        return "<tag>"


def random_state(rnd: random.Random, m: ModuleType) -> Any:
    """States with the values ``update()`` produces and a few odd ones (ints as ids, None as metadata)."""
    words = ["fix", "the", "bug", "Ünïcode", "🎉", "日本", "a-b", "x*y", "`t`", "(IN PROGRESS)", "## Completed"]

    def phrase() -> str:
        return " ".join(rnd.choice(words) for _ in range(rnd.randint(0, 4)))

    current, total = rnd.randint(0, 6), rnd.randint(-1, 6)
    tasks = {}
    for i in range(rnd.randint(0, 10)):
        status = rnd.choice(["completed", "in_progress", "pending", "failed", "blocked"])
        wave = current + 1 + rnd.randint(0, 2) if status == "pending" else rnd.randint(0, 5)
        task_id: Any = rnd.choice([f"t{i}", i, f"t {i} {phrase()}"])
        files = [f"{phrase()}.py" for _ in range(rnd.randint(0, 5))]
        tasks[task_id] = m.TaskState(
            task_id, phrase(), status, wave, files, rnd.choice([None, "", "abc"]), rnd.choice([None, "", phrase()])
        )
    notes = [phrase() for _ in range(rnd.randint(0, 3))]
    metadata = {phrase(): rnd.choice([phrase(), 3, None, 2.5]) for _ in range(rnd.randint(0, 3))}
    return m.WorkflowState(phrase(), phrase(), current, total, tasks, T0, T1, notes, metadata)


def _workflow(m: ModuleType, current: Any, total: Any, tasks: list[Any], **extra: Any) -> Any:
    return m.WorkflowState("wf", "Odd values", current, total, {t.task_id: t for t in tasks}, T0, T1, **extra)


def _odd_states(m: ModuleType) -> dict[str, Callable[[], Any]]:
    """Values of kinds the dataclasses do not declare but the legacy code formatted anyway."""
    ts = m.TaskState
    return {
        "str_subclasses": lambda: m.WorkflowState(
            Shout("wf-id"),
            Shout("shouted name"),
            1,
            2,
            {
                Shout("a"): ts(Shout("a"), Shout("desc"), Shout("completed"), 1, [Shout("x.py"), "y.py"], Shout("c1")),
                "b": ts("b", "plain", "failed", 1, error=Shout("boom")),
            },
            T0,
            T1,
            [Shout("note")],
            {Shout("key"): Shout("value")},
        ),
        "float_waves": lambda: _workflow(
            m,
            1.5,
            4.0,
            [
                ts("a", "A", "completed", 1.0),
                ts("b", "B", "completed", 2.5),
                ts("c", "C", "completed", 1),
                ts("d", "D", "pending", 3.5),
                ts("e", "E", "pending", 2),
            ],
        ),
        "bool_waves": lambda: _workflow(m, True, True, [ts("a", "A", "completed", True), ts("b", "B", "pending", 2)]),
        "huge_ints": lambda: _workflow(
            m, 10**30, 10**31, [ts("a", "A", "completed", 10**40), ts("b", "B", "completed", -(10**40))]
        ),
        "past_float_precision": lambda: _workflow(m, 2**53 + 1, 2**53 + 3, []),
        "fraction_waves": lambda: _workflow(
            m, Fraction(29), Fraction(100), [ts("a", "A", "completed", Fraction(1, 2))]
        ),
        "decimal_waves": lambda: _workflow(m, Decimal("7"), Decimal("20"), []),
        "string_waves": lambda: _workflow(
            m, 0, 0, [ts("a", "A", "completed", "w2"), ts("b", "B", "completed", "w10"), ts("c", "C", "failed", "x")]
        ),
        "zero_and_negative_total": lambda: _workflow(m, 3, -2, [ts("a", "A", "in_progress", None)]),
        "over_100_percent": lambda: _workflow(m, 7, 2, []),
        "negative_current": lambda: _workflow(m, -3, 4, []),
        "odd_statuses": lambda: _workflow(
            m,
            1,
            2,
            [
                ts("a", "A", None, 1),
                ts("b", "B", 3, 1),
                ts("c", "C", Shout("in_progress"), 1),
                ts("d", "D", "Completed", 1),
            ],
        ),
        "odd_files": lambda: _workflow(
            m,
            1,
            2,
            [
                ts("a", "A", "completed", 1, ("t1.py", "t2.py", "t3.py", "t4.py")),
                ts("b", "B", "completed", 1, "abcd"),
                ts("c", "C", "completed", 1, ["only.py", 7, 8, 9][:1] + ["x"] * 9),
                ts("d", "D", "failed", 1, []),
            ],
        ),
        "falsy_and_odd_details": lambda: _workflow(
            m,
            1,
            2,
            [
                ts("a", "A", "completed", 1, commit_hash=0, error=0),
                ts("b", "B", "completed", 1, commit_hash="0", error=Tag()),
                ts("c", "C", "in_progress", 1, commit_hash=12345, error=["e1", "e2"]),
                ts(7, 8.5, "failed", 1, error=Shout("")),
            ],
        ),
        "odd_notes_and_metadata": lambda: _workflow(
            m,
            1,
            2,
            [],
            notes=(1, None, Tag(), "text"),
            metadata=OrderedDict([(1, None), ("list", [1, "a"]), (None, {"k": 2}), ("float", 1e100)]),
        ),
        "odd_header": lambda: m.WorkflowState(Tag(), 42, 0, 0, {}, T0, T1),
        "unicode_everywhere": lambda: _workflow(
            m, 2, 3, [ts("ü", "日本語 🎉 \u200b zero-width", "completed", 2, ["é.py"], "ç", None)], notes=["✅"]
        ),
    }


def _odd_tasks(m: ModuleType) -> dict[str, Callable[[], Any]]:
    """``TaskState.to_markdown()`` alone."""
    ts = m.TaskState
    return {
        "task_plain": lambda: ts("t", "Do it", "pending", 1),
        "task_everything": lambda: ts("t", "Do it", "completed", 1, ["a", "b", "c", "d", "e"], "abc", "err"),
        "task_in_progress": lambda: ts("t", "Do it", "in_progress", 0, ["a"]),
        "task_unknown_status": lambda: ts("t", "Do it", "blocked", 0, [], "", ""),
        "task_odd_values": lambda: ts(Tag(), Shout("shout"), Shout("completed"), 2.5, ("x",), Tag(), 0),
    }


def render_cases(m: ModuleType) -> dict[str, str]:
    """Case name -> the ``to_markdown()`` text of the state (or task) the case builds with ``m``'s classes."""
    out: dict[str, str] = {}
    rnd = random.Random(5)
    for i in range(RANDOM_STATES):
        out[f"random_{i:03d}"] = random_state(rnd, m).to_markdown()
    for name, build in {**_odd_states(m), **_odd_tasks(m)}.items():
        out[name] = build().to_markdown()
    return out


# (method, kwargs) calls on one StateManager, in order; the file after each call is a golden output.
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("initialize", {"workflow_id": "wf", "workflow_name": "Calls", "total_waves": 3,
                    "all_waves": [[{"task_id": "a", "description": "A"}, {"agent_id": "b", "task": "B"}],
                                  [{"prompt": "P" * 150}, {"task_id": 7, "description": ""}]],
                    "metadata": {"v": 1}}),
    ("update", {"workflow_id": "wf", "workflow_name": "Calls", "wave_id": 1, "total_waves": 3,
                "completed_tasks": [{"task_id": "a", "description": "A", "wave_id": 1,
                                     "result": {"files_created": ["x.py", "y.py"]}},
                                    {"agent_id": 3, "prompt": "from a prompt", "commit_hash": "c0ffee"},
                                    {"task_id": "e", "description": "E", "error": "late", "wave_id": 2.5}],
                "current_wave_tasks": [{"agent_id": "b", "task": "B", "result": {"success": True}},
                                       {"task_id": "c", "prompt": "C", "result": {"error": "E"}},
                                       {"task_id": "d", "description": "D", "result": {}},
                                       {"task_id": "f", "description": "F", "result": {"success": True,
                                        "files_modified": ["1", "2", "3", "4"]}, "commit_hash": "own"},
                                       {"task_id": "g", "description": "G", "result": {"success": False}},
                                       {"task_id": "h", "description": "", "task": "", "result": None}],
                "pending_waves": [[{"description": "no id"}, {"task": "also no id"}],
                                  [{"task_id": "z", "description": "Z"}, {"task_id": "a", "description": "again"}]],
                "commit_hash": "deadbeef", "notes": ["n1"], "metadata": {"v": 2}}),
    ("update", {"workflow_id": "wf", "workflow_name": "Calls", "wave_id": 2, "total_waves": 3,
                "completed_tasks": [], "current_wave_tasks": [], "pending_waves": [], "notes": ["n2", 5],
                "metadata": {}}),
    # Ids compare as dict keys: 1, 1.0 and True are one task (the last wins, in the first's place);
    # 1 and "1" are two. Task records may be any mapping with `get`.
    ("update", {"workflow_id": "wf", "workflow_name": "Keys", "wave_id": 1, "total_waves": 2,
                "completed_tasks": [{"agent_id": 1, "description": "int"}, {"agent_id": "1", "description": "str"},
                                    UserDict({"task_id": 1.0, "description": "float", "wave_id": 1}),
                                    {"task_id": True, "description": "bool", "commit_hash": "b"}],
                "current_wave_tasks": [UserDict({"task_id": "u", "prompt": "é" * 120,
                                                 "result": UserDict({"success": 0, "error": "bad"})})],
                "pending_waves": [[{"description": "x"}, {"task_id": None, "description": "none id"}]],
                "commit_hash": "", "notes": None, "metadata": {"k": None}}),
]  # fmt: skip


def call_outputs(m: ModuleType) -> dict[str, str]:
    """Call name -> ``STATE.md`` after the call, with ``m.datetime.now()`` pinned to ``T0``."""
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="ferrolock-golden-") as scratch:
        path = Path(scratch) / "STATE.md"
        for i, (method, kwargs) in enumerate(CALLS):
            with mock.patch.object(m, "datetime", wraps=datetime) as patched:
                patched.now.return_value = T0
                getattr(m.StateManager(path), method)(**kwargs)
            out[f"call_{i}_{method}"] = path.read_text(encoding="utf-8")
    return out


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import legacy_blackbox5

    legacy = legacy_blackbox5.legacy_module()
    if legacy is None:
        print("the legacy module is not available: set FERROLOCK_MIRRORS", file=sys.stderr)
        return 1
    golden = {**render_cases(legacy), **call_outputs(legacy)}
    GOLDEN_FILE.write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(golden)} cases to {GOLDEN_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
