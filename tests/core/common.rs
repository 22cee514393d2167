//! Scaffolding shared by the core's integration-test modules.
#![allow(dead_code)] // not every helper is used by every module

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ferrolock::failpoints::Failpoint;

/// The steps of `atomic_write` before its rename, in order: a failure at any of them must leave the
/// target (and backup) as they were.
pub const ATOMIC_WRITE_STEPS: [Failpoint; 7] = [
    Failpoint::AtomicWriteCreateTemp,
    Failpoint::AtomicWriteWrite,
    Failpoint::AtomicWriteChmod,
    Failpoint::AtomicWriteFsyncTemp,
    Failpoint::AtomicWriteBackupLink,
    Failpoint::AtomicWriteBackupRename,
    Failpoint::AtomicWriteRename,
];

/// A fresh directory under the system temp dir, removed on drop. `tag` names it for a human; the pid
/// keeps concurrent runs apart and a counter keeps the tests of one run (parallel threads) apart.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ferrolock-test-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Hidden entries (temporary files, staging links): what a write must not leave behind.
    pub fn hidden(&self) -> Vec<String> {
        hidden(&self.0)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The hidden entries of `dir`, sorted.
pub fn hidden(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// True while some process (or thread) is blocked in the kernel waiting for a lock on `path`'s inode:
/// a `->` line of `/proc/locks` naming it. Lets a test act once a waiter really sleeps.
pub fn has_blocked_waiter(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::metadata(path) else { return false };
    let inode = format!(":{}", meta.ino());
    fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&"->") && fields.get(6).is_some_and(|id| id.ends_with(&inode))
        })
}
