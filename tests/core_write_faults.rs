//! The error path of every step of `atomic_write` (fault injection): the target must be unchanged, the
//! backup complete, and no temporary file left behind.
//!
//! Fault points are process-global, so this binary holds a single test that arms one point at a time.

use std::fs;
use std::path::{Path, PathBuf};

use ferrolock::durable::faults::{self, FaultAction};
use ferrolock::{WriteOptions, atomic_write};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrolock-faults-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn litter(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.retain(|n| n.starts_with('.'));
    names
}

#[test]
fn every_failing_step_leaves_the_target_and_backup_intact_and_no_litter() {
    let dir = temp_dir("faults");
    let target = dir.join("s.json");
    let backup = dir.join("s.json.bak");
    let opts = WriteOptions {
        backup: Some(backup.clone()),
        ..WriteOptions::default()
    };
    atomic_write(&target, b"v1", &opts).unwrap();
    atomic_write(&target, b"v2", &opts).unwrap();
    let steps = [
        "atomic_write:create_temp",
        "atomic_write:write",
        "atomic_write:chmod",
        "atomic_write:fsync_temp",
        "atomic_write:backup_link",
        "atomic_write:backup_rename",
        "atomic_write:rename",
    ];
    for step in steps {
        faults::arm(step, FaultAction::Error);
        let err = atomic_write(&target, b"v3-never", &opts).unwrap_err();
        faults::disarm();
        assert!(err.to_string().contains("Input/output error"), "{step}: {err}");
        assert_eq!(fs::read(&target).unwrap(), b"v2", "{step}");
        let kept = fs::read(&backup).unwrap();
        assert!(kept == b"v1" || kept == b"v2", "{step}: backup {kept:?}");
        assert!(litter(&dir).is_empty(), "{step}: {:?}", litter(&dir));
    }
    // A failed directory fsync fails the call although the rename happened: the caller must not
    // believe the write is durable.
    faults::arm("atomic_write:fsync_dir", FaultAction::Error);
    assert!(atomic_write(&target, b"v3", &opts).is_err());
    faults::disarm();
    assert_eq!(fs::read(&target).unwrap(), b"v3");
    assert!(litter(&dir).is_empty(), "{:?}", litter(&dir));
    fs::remove_dir_all(&dir).unwrap();
}
