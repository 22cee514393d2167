//! What `/proc` says about locks and open files, read once per scan.
//!
//! `/proc/locks` lists every flock lock with its mode and the pid that took it, and every blocked
//! request (`->`), without touching the files. `/proc/<pid>/fd` says which files any process has
//! open: a lock file that someone merely has open may be about to be locked by a process that does
//! not re-check the inode afterwards (every legacy module), so `clean` leaves such files alone.

use std::collections::HashSet;
use std::fs;

// The `/proc/locks` table is the platform layer's (lock holders are verified against it too).
pub(crate) use crate::sys::{FileKey, FlockInfo, flock_table, key_of};

/// Every file some other process has open, and whether every process could be looked at (without
/// root, other users' descriptors are hidden; then "nobody has it open" cannot be proven).
pub(crate) fn open_files() -> (HashSet<(u64, u64)>, bool) {
    use std::os::unix::fs::MetadataExt;
    let me = std::process::id().to_string();
    let mut open = HashSet::new();
    let mut complete = true;
    let Ok(procs) = fs::read_dir("/proc") else {
        return (open, false);
    };
    for entry in procs.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            // A process that exited meanwhile has no files; one we may not look at might.
            if entry.path().exists() {
                complete = false;
            }
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(meta) = fs::metadata(fd.path()) {
                open.insert((meta.dev(), meta.ino()));
            }
        }
    }
    (open, complete)
}
