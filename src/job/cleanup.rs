//! Stale job-lock cleanup that cannot break a held lock.
//!
//! logist's `cleanup_stale_locks` unlinked every `.lock` whose mtime was older than `max_age`, held or
//! not. The mtime is the time of the last *acquire*, not the holder's death, so a job held for longer
//! than `max_age` lost its lock file, and the next locker created a new inode and got a second,
//! simultaneous "exclusive" lock. Here age only picks candidates; the removal itself goes through
//! [`remove_if_unheld`], which unlinks only while holding the file exclusively, and acquirers re-verify
//! the inode, so a held lock is never removed and a waiter on a removed file moves to the new one.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::layout::{JOB_LOCK_FILE, JOBS_INDEX_LOCK_FILE};
use crate::error::{Error, Result};
use crate::lock::{Removal, remove_if_unheld};

/// Removes `<base>/<job>/.lock` for every job directory (names not starting with `.`; symlinked
/// directories count, as in logist) and `<base>/.jobs_index.lock`, when the file was last modified more
/// than `max_age` ago **and nobody holds it**. Returns the names of the jobs whose lock file was
/// removed, sorted (the index lock is never reported, as in logist).
///
/// A missing jobs directory is an empty result. Lock files that are symlinks or not regular files are
/// left alone, and errors on single files are logged (`ferrolock::job`) and skipped.
///
/// # Errors
/// [`Error::Io`] if `base` exists but cannot be listed (not a directory, no permission).
pub fn cleanup_stale(base: &Path, max_age: Duration) -> Result<Vec<OsString>> {
    let entries = match fs::read_dir(base) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list jobs directory", base, e)),
    };
    let now = SystemTime::now();
    let mut cleaned = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                log::warn!(target: "ferrolock::job", "listing {}: {e}", base.display());
                continue;
            }
        };
        let name = entry.file_name();
        let dir = entry.path();
        if name.as_bytes().starts_with(b".") || !fs::metadata(&dir).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        if remove_if_stale(&dir.join(JOB_LOCK_FILE), now, max_age) {
            cleaned.push(name);
        }
    }
    remove_if_stale(&base.join(JOBS_INDEX_LOCK_FILE), now, max_age);
    cleaned.sort();
    Ok(cleaned)
}

/// True if the lock file at `path` was old enough, unheld, and removed.
fn remove_if_stale(path: &Path, now: SystemTime, max_age: Duration) -> bool {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return false,
        Err(e) => {
            log::warn!(target: "ferrolock::job", "skipping {}: {e}", path.display());
            return false;
        }
    };
    if !meta.file_type().is_file() {
        log::warn!(target: "ferrolock::job", "skipping {}: not a regular file", path.display());
        return false;
    }
    // A modification time in the future (clock skew) counts as age zero.
    let age = meta
        .modified()
        .ok()
        .and_then(|m| now.duration_since(m).ok())
        .unwrap_or(Duration::ZERO);
    if age <= max_age {
        return false;
    }
    match remove_if_unheld(path) {
        Ok(Removal::Removed) => true,
        Ok(Removal::Held) => {
            log::info!(target: "ferrolock::job", "kept {}: untouched for {}s but held", path.display(), age.as_secs());
            false
        }
        Ok(Removal::Missing) => false,
        Err(e) => {
            log::warn!(target: "ferrolock::job", "skipping {}: {e}", path.display());
            false
        }
    }
}
