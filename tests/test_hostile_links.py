"""Links another user planted in a shared directory never make ferrolock write (or read for the
application) the victim's own files.

The scene: ``shared`` is sticky and world-writable (as ``/tmp``); the victim (uid 65533) keeps a private
file ``precious`` (0600) in its own 0700 directory ``private``; the attacker (uid 65534) plants a
symlink or a hard link in ``shared`` that leads there, then the victim uses ferrolock on a path in
``shared``. ferrolock applies the kernel's ``protected_symlinks`` rule itself, to every component of
the path and whatever the sysctl says: in a shared directory a symlink is followed only if it belongs to
the caller or to the directory's owner. Each refusal checked here is ferrolock's own
(``UntrustedPathError``, naming the link's owner), so these tests prove ferrolock's check even where the
kernel's would have stopped the attack too, and a symlinked *parent directory* is a case the kernel's
rule never covers when the link sits in a directory that is not the last one.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from users import ATTACKER, REPORT, VICTIM, give, needs_root, report_as, run_as_popen, shared_dir

pytestmark = [pytest.mark.timeout(90), needs_root]

PRECIOUS = b"precious: the victim's own data\n"
TODO2_STATE = json.dumps({"todos": [{"id": "T-1", "content": "mine", "status": "todo"}]}, indent=2).encode()


@dataclass
class Scene:
    shared: Path
    private: Path
    precious: Path

    def plant_symlink(self, name: str, target: Path, owner: int = ATTACKER) -> Path:
        link = self.shared / name
        link.symlink_to(target)
        return give(link, owner)

    def untouched(self) -> bool:
        st = self.precious.stat()
        return self.precious.read_bytes() == PRECIOUS and st.st_mode & 0o777 == 0o600 and st.st_nlink >= 1


def _dir(path: Path, owner: int, mode: int) -> Path:
    path.mkdir()
    return give(path, owner, mode)


def _symlink(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


@pytest.fixture
def scene() -> Iterator[Scene]:
    with shared_dir() as shared:
        private = _dir(shared / "victim-home", VICTIM, 0o700)
        precious = private / "precious"
        precious.write_bytes(PRECIOUS)
        give(precious, VICTIM, 0o600)
        yield Scene(shared, private, precious)


def victim(scene: Scene, code: str) -> dict[str, object]:
    """Run ``code`` as the victim with ``shared`` and ``private`` defined; it calls ``report`` once."""
    prelude = "from pathlib import Path\nshared, private = Path(sys.argv[1]), Path(sys.argv[2])\n"
    return report_as(VICTIM, prelude + code, str(scene.shared), str(scene.private))


def assert_refused_by_ferrolock(result: dict[str, object]) -> None:
    assert result["ok"] is False, f"the victim's call went through the planted link: {result}"
    assert result["untrusted"], f"refused, but not by ferrolock's own check: {result}"
    assert result["type"] == "UntrustedPathError"
    assert result["errno"] == 13
    message = str(result["message"])
    assert f"uid {ATTACKER}" in message, message
    assert "symbolic link" in message, message


# name: (what the attacker plants, what the victim runs)
ATTACKS: dict[str, tuple[Callable[[Scene], object], str]] = {
    "StateFile.write through a symlink at the state path": (
        lambda s: s.plant_symlink("state.json", s.precious),
        "report(lambda: ferrolock.StateFile(shared / 'state.json').write(b'pwned'))",
    ),
    "StateFile.write through a symlinked parent directory": (
        lambda s: s.plant_symlink("proj", s.private),
        "report(lambda: ferrolock.StateFile(shared / 'proj' / 'precious', lock_path=shared / 'my.lock')"
        ".write(b'pwned'))",
    ),
    "StateFile.edit hands the linked file to the application": (
        lambda s: s.plant_symlink("state.json", s.precious),
        "def leak():\n"
        "    with ferrolock.StateFile(shared / 'state.json').edit() as draft:\n"
        "        return draft.text\n"
        "report(leak)",
    ),
    "StateFile.read of a linked file": (
        lambda s: s.plant_symlink("state.json", s.precious),
        "report(lambda: ferrolock.StateFile(shared / 'state.json').read().decode())",
    ),
    "StateFile.remove through a symlinked parent directory": (
        lambda s: s.plant_symlink("proj", s.private),
        "report(lambda: ferrolock.StateFile(shared / 'proj' / 'precious', lock_path=shared / 'my.lock').remove())",
    ),
    "atomic_write through a symlink at the target": (
        lambda s: s.plant_symlink("out.txt", s.precious),
        "report(lambda: ferrolock.atomic_write(shared / 'out.txt', b'pwned'))",
    ),
    "atomic_write through a symlinked parent directory": (
        lambda s: s.plant_symlink("proj", s.private),
        "report(lambda: ferrolock.atomic_write(shared / 'proj' / 'precious', b'pwned'))",
    ),
    "atomic_write's backup through a symlinked parent directory": (
        lambda s: s.plant_symlink("bk", s.private),
        "ferrolock.atomic_write(shared / 'mine.txt', b'pwned')\n"
        "report(lambda: ferrolock.atomic_write(shared / 'mine.txt', b'v2', backup=shared / 'bk' / 'precious'))",
    ),
    "FileLock in a symlinked parent directory (the holder record)": (
        lambda s: s.plant_symlink("locks", s.private),
        "report(lambda: ferrolock.FileLock(shared / 'locks' / 'precious').acquire(timeout=0) and None)",
    ),
    "run_once: a marker symlinked to an existing file skips the setup": (
        lambda s: s.plant_symlink("done", s.precious),
        "report(lambda: ferrolock.run_once(shared / 'done', shared / 'setup.lock', lambda: None))",
    ),
    "run_once: a marker in a symlinked directory": (
        lambda s: s.plant_symlink("m", s.private),
        "report(lambda: ferrolock.run_once(shared / 'm' / 'marker', shared / 'setup.lock', lambda: None))",
    ),
    "scope claims in a symlinked loops directory": (
        lambda s: (s.plant_symlink("loops", s.private), _dir(s.private / ".running", VICTIM, 0o755)),
        "report(lambda: ferrolock.LockManager(shared / 'loops').acquire('job', ['src']))",
    ),
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_planted_symlink_is_not_followed(scene: Scene, attack: str) -> None:
    plant, code = ATTACKS[attack]
    plant(scene)
    before = sorted(p.name for p in scene.private.iterdir())
    result = victim(scene, code)
    assert_refused_by_ferrolock(result)
    assert scene.untouched(), "the victim's file was changed through the attacker's link"
    assert sorted(p.name for p in scene.private.iterdir()) == before, "files appeared in the victim's directory"


def test_the_todo2_state_writer_does_not_follow_a_planted_directory_link(scene: Scene) -> None:
    """todo2 keeps its state in ``<root>/.todo2/``: a ``.todo2`` planted in a shared root leads the
    victim's assignment into the victim's own private state."""
    private_state = scene.private / "state.todo2.json"
    private_state.write_bytes(TODO2_STATE)
    give(private_state, VICTIM, 0o600)
    scene.plant_symlink(".todo2", scene.private)
    result = victim(
        scene,
        "os.environ['PROJECT_ROOT'] = str(shared)\n"
        "report(lambda: ferrolock.compat.todo2.task_locking.atomic_assign_task('T-1', 'me', timeout=5))",
    )
    assert result["ok"] is True
    assigned, reason = result["value"]  # type: ignore[misc]
    assert assigned is False, "the assignment went through the planted link"
    assert f"uid {ATTACKER}" in reason, reason
    assert "symbolic link" in reason, reason
    assert private_state.read_bytes() == TODO2_STATE
    assert sorted(p.name for p in scene.private.iterdir()) == ["precious", "state.todo2.json"]


def test_a_hard_link_to_a_private_file_gets_no_holder_record(scene: Scene) -> None:
    """The kernel's ``protected_hardlinks`` stops the attacker from making this link; ferrolock must not
    rely on it. The lock works (flock changes nothing), but no record is written into the file."""
    os.link(scene.precious, scene.shared / "a.lock")
    result = victim(
        scene,
        "lock = ferrolock.FileLock(shared / 'a.lock')\n"
        "def cycle():\n"
        "    with lock:\n"
        "        return lock.is_locked\n"
        "report(cycle)",
    )
    assert result == {"ok": True, "value": True}
    assert scene.untouched(), "the holder record was written into a file with two links"


# --- links that are followed: the victim's own, the directory owner's, and any outside shared dirs ----


@pytest.mark.parametrize("owner", [VICTIM, 0], ids=["the victim's own link", "the directory owner's link"])
def test_a_trusted_symlinked_state_file_is_followed(scene: Scene, owner: int) -> None:
    scene.plant_symlink("state.json", scene.precious, owner=owner)
    result = victim(scene, "report(lambda: ferrolock.StateFile(shared / 'state.json').write(b'new'))")
    assert result == {"ok": True, "value": None}
    assert scene.precious.read_bytes() == b"new"
    assert (scene.shared / "state.json").is_symlink(), "the link stays a link"


def test_a_link_outside_shared_directories_is_followed_as_the_kernel_would(scene: Scene) -> None:
    """In a directory only its owner can write, its owner's links are that owner's choice."""
    own = _dir(scene.shared / "own", VICTIM, 0o755)
    (own / "state.json").symlink_to(scene.precious)
    give(own / "state.json", ATTACKER)
    result = victim(scene, "report(lambda: ferrolock.atomic_write(shared / 'own' / 'state.json', b'new'))")
    assert result == {"ok": True, "value": None}
    assert scene.precious.read_bytes() == b"new"


# --- races: a directory swapped for a symlink between the check and the use ---------------------------


def test_a_directory_swapped_during_an_edit_does_not_redirect_the_write(scene: Scene) -> None:
    """The edit reads ``open/proj/state.json``; while the application holds the edit, the attacker renames
    ``proj`` away (``open`` is world-writable without the sticky bit, so it may) and puts a symlink to the
    victim's private directory in its place. The write at the end of the edit must not follow it."""
    open_dir = _dir(scene.shared / "open", VICTIM, 0o777)
    proj = _dir(open_dir / "proj", VICTIM, 0o755)
    (proj / "state.json").write_bytes(b"v1")
    give(proj / "state.json", VICTIM, 0o600)
    (scene.private / "state.json").write_bytes(PRECIOUS)
    give(scene.private / "state.json", VICTIM, 0o600)
    code = (
        "sf = ferrolock.StateFile(shared / 'open' / 'proj' / 'state.json', lock_path=shared / 'state.lock')\n"
        "def edit():\n"
        "    with sf.edit() as draft:\n"
        "        print('in-edit', flush=True)\n"
        "        sys.stdin.readline()\n"
        "        draft.data = b'v2'\n"
        "report(edit)\n"
    )
    prelude = "from pathlib import Path\nshared = Path(sys.argv[1])\n"
    with run_as_popen(VICTIM, REPORT + prelude + code, str(scene.shared)) as proc:
        assert proc.stdout is not None
        assert proc.stdin is not None
        assert proc.stdout.readline().strip() == "in-edit"
        # The attacker's move, at the moment the victim is inside its edit.
        (open_dir / "proj").rename(open_dir / "moved")
        give(_symlink(open_dir / "proj", scene.private), ATTACKER)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        result = json.loads(proc.stdout.readline())
    assert_refused_by_ferrolock(result)
    assert (scene.private / "state.json").read_bytes() == PRECIOUS
    assert (open_dir / "moved" / "state.json").read_bytes() == b"v1"


def test_a_directory_swapped_inside_one_atomic_write_does_not_redirect_it(scene: Scene) -> None:
    """The window inside one call: the writer stops itself (a test-only fault point) after it has
    checked the path and before it creates its temporary file; the attacker swaps the directory for a
    symlink; the writer continues. Every step after the check is relative to the directory descriptor
    it verified, so the write lands in the directory it checked (now under the attacker's new name)."""
    from ferrolock import _ferrolock

    if not hasattr(_ferrolock, "_set_failpoint"):
        pytest.skip("a release build has no fault points")
    open_dir = _dir(scene.shared / "open", VICTIM, 0o777)
    proj = _dir(open_dir / "proj", VICTIM, 0o755)
    (scene.private / "state.json").write_bytes(PRECIOUS)
    give(scene.private / "state.json", VICTIM, 0o600)
    code = (
        "from ferrolock import _ferrolock\n"
        "_ferrolock._set_failpoint('atomic_write:create_temp', 'stop')\n"
        "report(lambda: ferrolock.atomic_write(Path(sys.argv[1]) / 'state.json', b'written'))\n"
    )
    with run_as_popen(VICTIM, REPORT + "from pathlib import Path\n" + code, str(proj)) as proc:
        _, status = os.waitpid(proc.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), "the writer did not stop at the fault point"
        proj.rename(open_dir / "moved")
        give(_symlink(open_dir / "proj", scene.private), ATTACKER)
        os.kill(proc.pid, signal.SIGCONT)
        assert proc.stdout is not None
        result = json.loads(proc.stdout.readline())
    assert result == {"ok": True, "value": None}
    assert (scene.private / "state.json").read_bytes() == PRECIOUS, "the write followed the swapped-in link"
    assert (open_dir / "moved" / "state.json").read_bytes() == b"written"
