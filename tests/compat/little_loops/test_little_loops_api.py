"""The little-loops surface: names, signatures, ScopeLock, resolve_scope, the files on disk, and the
hooks legacy tests patch."""

from __future__ import annotations

import errno
import inspect
import json
import os
import pickle
from pathlib import Path
from unittest.mock import patch

import ferrolock
import pytest
from ferrolock.compat import little_loops as ll


@pytest.fixture
def manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ll.LockManager:
    monkeypatch.chdir(tmp_path)
    return ll.LockManager(tmp_path / ".loops")


def test_module_names() -> None:
    for name in ("RUNNING_DIR", "logger", "_CONTEXT_VAR_RE", "resolve_scope", "_process_alive", "_iso_now"):
        assert hasattr(ll, name), name
    assert ll.RUNNING_DIR == ".running"
    assert ll._CONTEXT_VAR_RE.pattern == r"\$\{context\.([^}]+)\}"
    assert ferrolock.ScopeLock is ll.ScopeLock
    assert issubclass(ll.LockManager, ferrolock.LockManager)


OPT_STR = "'str | None' = None"
SIGNATURES = {
    "acquire": f"(self, loop_name: 'str', scope: 'list[str]', instance_id: {OPT_STR}, *, singleton: 'bool' = False)"
    " -> 'bool'",
    "release": f"(self, loop_name: 'str', instance_id: {OPT_STR}) -> 'None'",
    "find_conflict": f"(self, scope: 'list[str]', *, caller_loop_name: {OPT_STR}, caller_singleton: 'bool' = False)"
    " -> 'ScopeLock | None'",
    "list_locks": "(self) -> 'list[ScopeLock]'",
    "wait_for_scope": f"(self, scope: 'list[str]', timeout: 'float' = 300, *, loop_name: {OPT_STR},"
    " singleton: 'bool' = False) -> 'bool'",
    "_get_ancestry": "(self) -> 'set[int]'",
    "_scopes_overlap": "(self, scope1: 'list[str]', scope2: 'list[str]') -> 'bool'",
    "_paths_overlap": "(self, path1: 'str', path2: 'str') -> 'bool'",
    "_normalize_path": "(self, path: 'str') -> 'str'",
    "_process_alive": "(self, pid: 'int') -> 'bool'",
    "__init__": "(self, loops_dir: 'Path | None' = None) -> 'None'",
}


@pytest.mark.parametrize(("func", "expected"), SIGNATURES.items())
def test_lock_manager_signatures(func: str, expected: str) -> None:
    assert str(inspect.signature(getattr(ll.LockManager, func))) == expected


def test_manager_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert ll.LockManager().running_dir == Path(".loops/.running")
    m = ll.LockManager(tmp_path / "x")
    assert m.loops_dir == tmp_path / "x"
    assert m.running_dir == tmp_path / "x" / ".running"


def test_scope_lock_dict_round_trip() -> None:
    lock = ll.ScopeLock(loop_name="a", scope=["s/"], pid=5, started_at="t")
    assert list(lock.to_dict()) == ["loop_name", "scope", "pid", "started_at"]
    single = ll.ScopeLock("a", ["s/"], 5, "t", singleton=True)
    assert single.to_dict()["singleton"] is True
    assert ll.ScopeLock.from_dict(single.to_dict()) == single
    odd = ll.ScopeLock.from_dict({"loop_name": 1, "scope": "x", "pid": "7", "started_at": 2, "extra": 0})
    assert odd == ll.ScopeLock("1", ["x"], 7, "2", False)
    with pytest.raises(KeyError):
        ll.ScopeLock.from_dict({"loop_name": "a", "scope": [], "pid": 1})


def test_resolve_scope() -> None:
    assert ll.resolve_scope(["${context.a}/${context.b}", "${env.X}", "${context.u}"], {"a": 1, "b": "y"}) == [
        "1/y",
        "${env.X}",
        "${context.u}",
    ]


def test_iso_now_format() -> None:
    now = ll._iso_now()
    assert now.endswith("+00:00")
    assert "T" in now


def test_process_alive_uses_os_kill_at_call_time() -> None:
    assert ll._process_alive(os.getpid())
    with patch("os.kill", side_effect=OSError(errno.EPERM, "no")):
        assert ll._process_alive(123)
    with patch("os.kill", side_effect=OSError(errno.ESRCH, "no")):
        assert not ll._process_alive(os.getpid())


def test_record_on_disk_is_the_legacy_json_plus_a_marker(manager: ll.LockManager, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    assert manager.acquire("fix", ["src"], singleton=True)
    text = (tmp_path / ".loops" / ".running" / "fix.lock").read_text()
    data = json.loads(text)
    assert list(data) == ["loop_name", "scope", "pid", "started_at", "singleton", "ferrolock"]
    legacy = {k: data[k] for k in ["loop_name", "scope", "pid", "started_at", "singleton"]}
    # Byte for byte what the legacy `json.dump(lock.to_dict(), f)` wrote, then the marker.
    assert text == json.dumps(legacy)[:-1] + ', "ferrolock": 1}'
    assert data["scope"] == [str(tmp_path / "src")]
    assert data["pid"] == os.getpid()
    assert ll.ScopeLock.from_dict(data) == manager.list_locks()[0]
    assert (tmp_path / ".loops" / ".running" / ".acquire.lock").read_bytes() == b""


def test_record_pid_and_time_come_from_the_python_hooks(manager: ll.LockManager, tmp_path: Path) -> None:
    with patch("os.getpid", return_value=4242), patch.object(ll, "_iso_now", return_value="T0"):
        assert manager.acquire("fix", [])
    data = json.loads((tmp_path / ".loops" / ".running" / "fix.lock").read_text())
    assert (data["pid"], data["started_at"], data["scope"]) == (4242, "T0", [str(tmp_path)])


def _legacy_record(path: Path, pid: int, scope: list[str], name: str = "other") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"loop_name": name, "scope": scope, "pid": pid, "started_at": "t"}))


def test_legacy_records_are_judged_through_the_patchable_hooks(manager: ll.LockManager, tmp_path: Path) -> None:
    record = tmp_path / ".loops" / ".running" / "other.lock"
    _legacy_record(record, 12345, ["src/"])
    with patch.object(ll, "_process_alive", return_value=True) as alive:
        conflict = manager.find_conflict(["src"])
    alive.assert_called_once_with(12345)
    assert conflict is not None
    assert conflict.loop_name == "other"
    with patch.object(ll.LockManager, "_get_ancestry", return_value={12345}):
        assert manager.find_conflict(["src"]) is None
    with patch("os.kill", side_effect=OSError(errno.ESRCH, "gone")):
        assert manager.list_locks() == []
    assert not record.exists()


def test_patched_overlap_hooks_are_used(manager: ll.LockManager) -> None:
    assert manager.acquire("a", ["/x"])
    assert manager.find_conflict(["/y"]) is None
    with patch.object(ll.LockManager, "_scopes_overlap", return_value=True) as hook:
        assert manager.find_conflict(["/y"]) is not None
    assert hook.called
    with patch.object(manager, "_paths_overlap", return_value=True):
        assert not manager.acquire("b", ["/z"])


def test_hook_exceptions_propagate(manager: ll.LockManager, tmp_path: Path) -> None:
    _legacy_record(tmp_path / ".loops" / ".running" / "other.lock", 12345, ["/"])
    with patch.object(manager, "_process_alive", side_effect=RuntimeError("boom")), pytest.raises(RuntimeError):
        manager.find_conflict(["/"])


def test_paths_overlap_is_lexical(manager: ll.LockManager) -> None:
    assert manager._paths_overlap("/a", "/a/b")
    assert manager._paths_overlap("/a/b", "/a")
    assert not manager._paths_overlap("/a", "/ab")
    assert manager._scopes_overlap(["/x", "/a"], ["/a/c"])
    assert not manager._scopes_overlap(["/x"], ["/y"])
    assert manager._normalize_path(".") == str(Path.cwd().resolve())


def test_not_reentrant_and_scopes(manager: ll.LockManager, tmp_path: Path) -> None:
    (tmp_path / "src" / "api").mkdir(parents=True)
    (tmp_path / "lib").mkdir()
    assert manager.acquire("one", ["src"])
    assert not manager.acquire("two", ["src/api"])
    assert not manager.acquire("one", ["src"])
    assert manager.acquire("three", ["lib"])
    assert {lock.loop_name for lock in manager.list_locks()} == {"one", "three"}
    conflict = manager.find_conflict(["src/api/x"])
    assert conflict is not None
    assert conflict.loop_name == "one"
    manager.release("one")
    assert manager.acquire("two", ["src/api"])


def test_singleton_rule(manager: ll.LockManager) -> None:
    assert manager.acquire("auto", ["/r1"], instance_id="auto-1", singleton=True)
    assert not manager.acquire("auto", ["/r2"], instance_id="auto-2", singleton=True)
    assert manager.acquire("auto", ["/r3"], instance_id="auto-3")
    assert manager.acquire("other", ["/r4"], instance_id="other-1", singleton=True)
    conflict = manager.find_conflict(["/r9"], caller_loop_name="auto", caller_singleton=True)
    assert conflict is not None
    assert conflict.scope == ["/r1"]


def test_running_dir_can_be_reassigned(manager: ll.LockManager, tmp_path: Path) -> None:
    manager.running_dir = tmp_path / "elsewhere"
    assert manager.acquire("x", ["/q"])
    assert (tmp_path / "elsewhere" / "x.lock").exists()


def test_wait_for_scope_non_positive_timeout_does_not_check(manager: ll.LockManager) -> None:
    """As in little-loops: `timeout <= 0` returns False at once, even for a free scope."""
    assert manager.wait_for_scope(["/free"], timeout=0) is False
    assert manager.wait_for_scope(["/free"], timeout=-1) is False
    assert manager.wait_for_scope(["/free"], timeout=1) is True


def test_any_manager_of_the_process_can_release_and_managers_pickle(manager: ll.LockManager, tmp_path: Path) -> None:
    assert manager.acquire("fix", ["/q"])
    other = pickle.loads(pickle.dumps(manager))
    assert other.running_dir == manager.running_dir
    assert not other.acquire("again", ["/q"])
    other.release("fix")
    assert not (tmp_path / ".loops" / ".running" / "fix.lock").exists()
    assert manager.acquire("again", ["/q"])
