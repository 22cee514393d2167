//! The error path of every step of a `StateFile` write and removal (fault injection): the file and its
//! backup stay as they were, no temporary file remains, and the lock is released so the next writer
//! succeeds. Crashes (SIGKILL at each step) are tested from Python with real processes.
//!
//! Each test arms its fault points for its own thread only, so the other tests of the binary run on.

use std::fs;

use crate::common::{ATOMIC_WRITE_STEPS, TempDir, hidden};
use ferrolock::failpoints::{self, Failpoint, FaultAction};
use ferrolock::{StateFile, StateFileOptions, Wait};

#[test]
fn every_failing_step_leaves_file_and_backup_intact_and_the_lock_free() {
    let tmp = TempDir::new("state-faults");
    let dir = tmp.path().to_path_buf();
    let state = StateFile::new(
        dir.join("state.json"),
        &StateFileOptions {
            backup_path: Some(dir.join("state.json.bak")),
            ..StateFileOptions::default()
        },
    )
    .unwrap();
    state.write(b"v1", Wait::Forever).unwrap();
    state.write(b"v2", Wait::Forever).unwrap();

    for step in ATOMIC_WRITE_STEPS {
        failpoints::arm_on_this_thread(step, FaultAction::Error);
        let err = state.write(b"never", Wait::Forever).unwrap_err();
        failpoints::disarm();
        assert!(err.to_string().contains("Input/output error"), "{step}: {err}");
        assert!(!state.lock().is_locked(), "{step}: lock released");
        assert_eq!(state.read().unwrap().as_deref(), Some(&b"v2"[..]), "{step}");
        let backup = state.read_backup().unwrap().unwrap();
        assert!(backup == b"v1" || backup == b"v2", "{step}: {backup:?}");
        assert!(hidden(&dir).is_empty(), "{step}: {:?}", hidden(&dir));
    }

    // Removal: linking the backup, unlinking, syncing the directory. (A successful write first: the
    // failed rename above left the backup as a second link to the file, which needs no new link.)
    state.write(b"v2", Wait::Forever).unwrap();
    for step in [
        Failpoint::AtomicWriteBackupLink,
        Failpoint::AtomicWriteBackupRename,
        Failpoint::StateFileUnlink,
    ] {
        failpoints::arm_on_this_thread(step, FaultAction::Error);
        assert!(state.remove(Wait::Forever).is_err(), "{step}");
        failpoints::disarm();
        assert_eq!(state.read().unwrap().as_deref(), Some(&b"v2"[..]), "{step}");
        assert!(!state.lock().is_locked(), "{step}");
        assert!(hidden(&dir).is_empty(), "{step}: {:?}", hidden(&dir));
    }
    failpoints::arm_on_this_thread(Failpoint::StateFileFsyncDir, FaultAction::Error);
    assert!(
        state.remove(Wait::Forever).is_err(),
        "a failed directory fsync fails the removal"
    );
    failpoints::disarm();
    assert_eq!(state.read().unwrap(), None);
    assert_eq!(state.read_backup().unwrap().as_deref(), Some(&b"v2"[..]));

    // And the next writer is not blocked by anything the failures left.
    state.write(b"v3", Wait::Try).unwrap();
    assert_eq!(state.read().unwrap().as_deref(), Some(&b"v3"[..]));
    fs::remove_dir_all(&dir).unwrap();
}
