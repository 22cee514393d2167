//! Idle descriptors: released lock objects keep their descriptor for the next acquisition, but the
//! process keeps at most `idle_descriptor_bound()` of them, however many objects stay alive.

use std::fs;
use std::path::Path;

use crate::common::TempDir;
use ferrolock::{FileLock, LockOptions, Wait, idle_descriptor_bound};

/// Descriptors of this process that refer to files under `dir` (other tests run in parallel threads
/// and open their own).
fn open_under(dir: &Path) -> usize {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

#[test]
fn released_lock_objects_keep_a_bounded_number_of_descriptors() {
    let dir = TempDir::new("idle-bound");
    let bound = idle_descriptor_bound();
    assert!((4..=64).contains(&bound), "bound {bound}");
    let locks: Vec<FileLock> = (0..1500)
        .map(|i| {
            let lock = FileLock::new(dir.join(&format!("{i}.lock")), &LockOptions::default()).unwrap();
            lock.acquire(Wait::Try).unwrap();
            assert!(lock.release().unwrap());
            lock
        })
        .collect();
    let kept = open_under(dir.path());
    assert!(
        kept <= bound,
        "1500 released locks keep {kept} descriptors (bound {bound})"
    );
    // The most recently released object still finds its descriptor; re-acquiring opens nothing new.
    let last = locks.last().unwrap();
    last.acquire(Wait::Try).unwrap();
    assert!(open_under(dir.path()) <= kept);
    last.release().unwrap();
    drop(locks);
    assert_eq!(open_under(dir.path()), 0, "dropped lock objects left descriptors open");
}
