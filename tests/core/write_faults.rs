//! The error path of every step of `atomic_write` (fault injection): the target must be unchanged, the
//! backup complete, and no temporary file left behind.
//!
//! Each test arms its fault points for its own thread only, so the other tests of the binary run on.

use std::fs;

use crate::common::{ATOMIC_WRITE_STEPS, TempDir, hidden};
use ferrolock::failpoints::{self, Failpoint, FaultAction};
use ferrolock::{WriteOptions, atomic_write};

#[test]
fn every_failing_step_leaves_the_target_and_backup_intact_and_no_litter() {
    let tmp = TempDir::new("faults");
    let dir = tmp.path().to_path_buf();
    let target = dir.join("s.json");
    let backup = dir.join("s.json.bak");
    let opts = WriteOptions {
        backup: Some(backup.clone()),
        ..WriteOptions::default()
    };
    atomic_write(&target, b"v1", &opts).unwrap();
    atomic_write(&target, b"v2", &opts).unwrap();
    for step in ATOMIC_WRITE_STEPS {
        failpoints::arm_on_this_thread(step, FaultAction::Error);
        let err = atomic_write(&target, b"v3-never", &opts).unwrap_err();
        failpoints::disarm();
        assert!(err.to_string().contains("Input/output error"), "{step}: {err}");
        assert_eq!(fs::read(&target).unwrap(), b"v2", "{step}");
        let kept = fs::read(&backup).unwrap();
        assert!(kept == b"v1" || kept == b"v2", "{step}: backup {kept:?}");
        assert!(hidden(&dir).is_empty(), "{step}: {:?}", hidden(&dir));
    }
    // A failed directory fsync fails the call although the rename happened: the caller must not
    // believe the write is durable.
    failpoints::arm_on_this_thread(Failpoint::AtomicWriteFsyncDir, FaultAction::Error);
    assert!(atomic_write(&target, b"v3", &opts).is_err());
    failpoints::disarm();
    assert_eq!(fs::read(&target).unwrap(), b"v3");
    assert!(hidden(&dir).is_empty(), "{:?}", hidden(&dir));
    fs::remove_dir_all(&dir).unwrap();
}
