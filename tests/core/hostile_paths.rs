//! Paths through things another user controls: the link rule (the kernel's `protected_symlinks`,
//! applied by ferrolock to every component whatever the sysctl says), hard links and foreign content
//! at a lock path, and special files at a marker path.
//!
//! The tests that need another user's link run as root (CI does) and give the link to uid 65534 with
//! `lchown`; the caller is root, and the shared directory belongs to root. Each checks that the refusal
//! is ferrolock's own (`Error::UntrustedLink`), not the kernel's `EACCES`.

use std::fs;
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};

use crate::common::TempDir;
use ferrolock::{
    Error, FileLock, LockOptions, StateFile, StateFileOptions, Wait, WaitControl, WriteOptions, atomic_write,
};
use ferrolock::{RunOnce, RunOnceError, run_once};

const OTHER: u32 = 65534;
const PRECIOUS: &[u8] = b"precious\n";

/// A sticky, world-writable `shared` directory and a `private` one holding `precious`.
struct Scene {
    _tmp: TempDir,
    shared: PathBuf,
    private: PathBuf,
}

impl Scene {
    /// `None` (the test is skipped) unless running as root.
    fn new(tag: &str) -> Option<Self> {
        if !nix::unistd::geteuid().is_root() {
            return None;
        }
        let tmp = TempDir::new(tag);
        let shared = tmp.join("shared");
        let private = tmp.join("private");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        fs::create_dir(&private).unwrap();
        fs::write(private.join("precious"), PRECIOUS).unwrap();
        Some(Self {
            _tmp: tmp,
            shared,
            private,
        })
    }

    /// A symlink `shared/<name>` to `target`, belonging to `owner`.
    fn plant(&self, name: &str, target: &Path, owner: u32) -> PathBuf {
        let link = self.shared.join(name);
        symlink(target, &link).unwrap();
        lchown(&link, Some(owner), Some(owner)).unwrap();
        link
    }

    fn untouched(&self) -> bool {
        fs::read(self.private.join("precious")).unwrap() == PRECIOUS
            && fs::read_dir(&self.private).unwrap().count() == 1
    }
}

fn assert_untrusted_link(err: &Error) {
    match err {
        Error::UntrustedLink { owner, .. } => assert_eq!(*owner, OTHER, "{err}"),
        other => panic!("expected ferrolock's refusal of the link, got {other:?}"),
    }
    assert!(err.to_string().contains("uid 65534"), "{err}");
}

#[test]
fn a_symlinked_parent_directory_of_another_user_is_not_followed() {
    let Some(scene) = Scene::new("hostile-parent") else {
        return;
    };
    let proj = scene.plant("proj", &scene.private, OTHER);
    let err = atomic_write(&proj.join("precious"), b"pwned", &WriteOptions::default()).unwrap_err();
    assert_untrusted_link(&err);
    let state = StateFile::new(proj.join("precious"), &StateFileOptions::default()).unwrap();
    assert_untrusted_link(&state.read().unwrap_err());
    assert_untrusted_link(&state.write(b"pwned", Wait::Try).unwrap_err());
    let lock = FileLock::new(proj.join("precious"), &LockOptions::default()).unwrap();
    assert_untrusted_link(&lock.try_lock().map(drop).unwrap_err());
    assert!(scene.untouched());
}

#[test]
fn a_deeper_planted_link_is_judged_in_its_own_directory() {
    // shared/a is the caller's own directory; the link inside it belongs to the other user, but `a` is
    // not shared, so its owner (the caller) decides: followed. One level up, the same link is refused.
    let Some(scene) = Scene::new("hostile-depth") else {
        return;
    };
    let own = scene.shared.join("a");
    fs::create_dir(&own).unwrap();
    symlink(&scene.private, own.join("in")).unwrap();
    lchown(own.join("in"), Some(OTHER), Some(OTHER)).unwrap();
    atomic_write(&own.join("in").join("new"), b"ok", &WriteOptions::default()).unwrap();
    assert_eq!(fs::read(scene.private.join("new")).unwrap(), b"ok");
}

#[test]
fn a_final_symlink_of_another_user_is_not_followed_and_the_callers_own_is() {
    let Some(scene) = Scene::new("hostile-final") else {
        return;
    };
    let theirs = scene.plant("theirs.json", &scene.private.join("precious"), OTHER);
    let err = atomic_write(&theirs, b"pwned", &WriteOptions::default()).unwrap_err();
    assert_untrusted_link(&err);
    assert!(scene.untouched());
    let mine = scene.plant("mine.json", &scene.private.join("precious"), 0);
    atomic_write(&mine, b"mine", &WriteOptions::default()).unwrap();
    assert_eq!(fs::read(scene.private.join("precious")).unwrap(), b"mine");
    assert!(
        fs::symlink_metadata(&mine).unwrap().file_type().is_symlink(),
        "the link stays a link"
    );
}

#[test]
fn a_group_writable_sticky_directory_is_shared_and_a_private_one_is_not() {
    let Some(scene) = Scene::new("hostile-modes") else {
        return;
    };
    for (mode, shared) in [(0o1770, true), (0o1755, false), (0o0777, true), (0o0775, false)] {
        fs::set_permissions(&scene.shared, fs::Permissions::from_mode(mode)).unwrap();
        let link = scene.plant("p", &scene.private, OTHER);
        let outcome = atomic_write(&link.join("out"), b"x", &WriteOptions::default());
        assert_eq!(outcome.is_err(), shared, "mode {mode:o}: {outcome:?}");
        fs::remove_file(&link).unwrap();
        let _ = fs::remove_file(scene.private.join("out"));
    }
}

#[test]
fn run_once_does_not_trust_a_marker_link_of_another_user() {
    let Some(scene) = Scene::new("hostile-marker") else {
        return;
    };
    let marker = scene.plant("done", &scene.private.join("precious"), OTHER);
    let spec = RunOnce::new(&marker, scene.shared.join("setup.lock"));
    let mut ran = false;
    let outcome = run_once(&spec, &mut WaitControl::default(), || -> Result<Vec<u8>, ()> {
        ran = true;
        Ok(b"done".to_vec())
    });
    match outcome {
        Err(RunOnceError::Coordination(e)) => assert_untrusted_link(&e),
        other => panic!("the planted marker was trusted: {other:?}"),
    }
    assert!(!ran);
    assert!(scene.untouched());
}

#[test]
fn a_link_loop_is_refused_with_eloop() {
    let tmp = TempDir::new("link-loop");
    symlink(tmp.join("b"), tmp.join("a")).unwrap();
    symlink(tmp.join("a"), tmp.join("b")).unwrap();
    let err = atomic_write(&tmp.join("a").join("x"), b"x", &WriteOptions::default()).unwrap_err();
    match &err {
        Error::Io { source, .. } => assert_eq!(source.raw_os_error(), Some(nix::libc::ELOOP), "{err}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn relative_links_and_dot_dot_resolve_as_the_kernel_resolves_them() {
    let tmp = TempDir::new("link-relative");
    fs::create_dir_all(tmp.join("real/sub")).unwrap();
    symlink("real/sub", tmp.join("via")).unwrap();
    symlink("../sub/target.txt", tmp.join("real/sub/up")).unwrap();
    atomic_write(&tmp.join("via/../sub/./up"), b"through", &WriteOptions::default()).unwrap();
    assert_eq!(fs::read(tmp.join("real/sub/target.txt")).unwrap(), b"through");
    assert!(
        fs::symlink_metadata(tmp.join("real/sub/up"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn a_hard_link_or_foreign_content_gets_no_holder_record() {
    let tmp = TempDir::new("record-refused");
    let data = tmp.join("data.txt");
    fs::write(&data, b"somebody's data\n").unwrap();
    let alias = tmp.join("alias.lock");
    let empty = tmp.join("empty.txt");
    fs::write(&empty, b"").unwrap();
    fs::hard_link(&empty, &alias).unwrap();
    for path in [&data, &alias] {
        let lock = FileLock::new(path, &LockOptions::default()).unwrap();
        let guard = lock.try_lock().unwrap();
        drop(guard);
    }
    assert_eq!(fs::read(&data).unwrap(), b"somebody's data\n");
    assert_eq!(
        fs::read(&empty).unwrap(),
        b"",
        "the record went into a file with two links"
    );
    // A lock file of its own gets one, and keeps getting one over an older record.
    let own = FileLock::new(tmp.join("own.lock"), &LockOptions::default()).unwrap();
    for _ in 0..2 {
        let _held = own.try_lock().unwrap();
        assert_eq!(own.holder().map(|h| h.pid), Some(std::process::id()));
    }
}

#[test]
fn a_fifo_at_a_marker_path_is_refused_not_taken_for_a_marker() {
    let tmp = TempDir::new("fifo-marker");
    let marker = tmp.join("done");
    nix::unistd::mkfifo(&marker, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let spec = RunOnce::new(&marker, tmp.join("setup.lock"));
    let outcome = run_once(&spec, &mut WaitControl::default(), || -> Result<Vec<u8>, ()> {
        Ok(b"x".to_vec())
    });
    match outcome {
        Err(RunOnceError::Coordination(Error::NotRegularFile { kind, .. })) => assert_eq!(kind, "FIFO"),
        other => panic!("a FIFO counted as the marker: {other:?}"),
    }
}
