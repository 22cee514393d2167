//! Stale job-lock cleanup that cannot break a held lock, and cannot be steered out of the jobs
//! directory.
//!
//! logist's `cleanup_stale_locks` unlinked every `.lock` whose mtime was older than `max_age`, held or
//! not. The mtime is the time of the last *acquire*, not the holder's death, so a job held for longer
//! than `max_age` lost its lock file, and the next locker created a new inode and got a second,
//! simultaneous "exclusive" lock. Here age only picks candidates; the removal takes the file
//! exclusively first (acquirers re-verify the inode, so a waiter on a removed file moves to the new
//! one), and happens relative to the job directory's descriptor after re-checking the file (see
//! `inspect`'s removal), so a held lock, a file that is not a lock, or a file outside the jobs
//! directory is never removed.

// Paths in log lines are written with `{:?}`, which escapes them: a newline in a file name cannot
// forge a log line.
#![allow(clippy::unnecessary_debug_formatting)]

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, open, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstatat};
use nix::unistd::geteuid;

use super::layout::{JOB_LOCK_FILE, JOBS_INDEX_LOCK_FILE};
use crate::error::{Error, Result};
use crate::inspect::{EntryKind, Outcome, Refusal, Verdict, is_lock_content, list, open_dir_at, remove_at};

/// Removes `<base>/<job>/.lock` for every job directory (names not starting with `.`) and
/// `<base>/.jobs_index.lock`, when the file was last modified more than `max_age` ago, **nobody holds
/// it**, and it holds a lock's content (nothing, or a holder record). Returns the names of the jobs
/// whose lock file was removed, sorted (the index lock is never reported, as in logist).
///
/// A job directory that is a symlink is followed only if the symlink belongs to the calling user (one
/// planted by another user in a shared jobs directory is not: logist followed any). A missing jobs
/// directory is an empty result. Anything wrong with a single entry is logged (`ferrolock::job`) and
/// skipped.
///
/// # Errors
/// [`Error::Io`] if `base` exists but cannot be listed (not a directory, no permission).
pub fn cleanup_stale(base: &Path, max_age: Duration) -> Result<Vec<OsString>> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let base_fd = match open(base, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list jobs directory", base, e.into())),
    };
    let entries = list(base_fd.as_fd()).map_err(|e| Error::io("list jobs directory", base, e))?;
    let now = SystemTime::now();
    let mut cleaned = Vec::new();
    for entry in entries {
        if entry.name.as_bytes().starts_with(b".") {
            continue;
        }
        let shown = base.join(&entry.name);
        let job = match open_job_dir(base_fd.as_fd(), &entry.name, entry.kind) {
            Ok(Some(fd)) => fd,
            Ok(None) => continue,
            Err(why) => {
                log::warn!(target: "ferrolock::job", "skipping {shown:?}: {why}");
                continue;
            }
        };
        if remove_if_stale(job.as_fd(), &shown, JOB_LOCK_FILE, now, max_age) {
            cleaned.push(entry.name);
        }
    }
    remove_if_stale(base_fd.as_fd(), base, JOBS_INDEX_LOCK_FILE, now, max_age);
    cleaned.sort();
    Ok(cleaned)
}

/// The job directory `name` in `base`: a directory, or a symlink to one that the calling user owns.
/// `None` for anything else, `Err` if it cannot be opened.
fn open_job_dir(base: BorrowedFd<'_>, name: &OsStr, kind: EntryKind) -> Result<Option<OwnedFd>, String> {
    match kind {
        EntryKind::Directory => match open_dir_at(base, name) {
            Ok((fd, _)) => Ok(Some(fd)),
            Err(Refusal::Gone) => Ok(None),
            Err(refusal) => Err(refusal.to_string()),
        },
        EntryKind::File => Ok(None),
        EntryKind::Other => open_own_symlink(base, name),
    }
}

/// Follows the symlink `name` in `base` to a directory, if the calling user owns the symlink.
fn open_own_symlink(base: BorrowedFd<'_>, name: &OsStr) -> Result<Option<OwnedFd>, String> {
    let link = match fstatat(base, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFLNK.bits() => st,
        Ok(_) | Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(e.desc().to_owned()),
    };
    if link.st_uid != geteuid().as_raw() {
        return Err(format!(
            "a symlink owned by uid {}, not by this user: not followed",
            link.st_uid
        ));
    }
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let fd = match openat(base, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(None), // dangling, or not to a directory
        Err(e) => return Err(e.desc().to_owned()),
    };
    // The link followed must be the one checked. Another user cannot replace our link in a sticky
    // directory; in a directory they may write freely, they could remove every job anyway.
    match fstatat(base, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(again) if again.st_dev == link.st_dev && again.st_ino == link.st_ino => Ok(Some(fd)),
        _ => Err("the symlink changed while it was followed".to_owned()),
    }
}

/// True if the lock file `name` in `dir` (the directory shown as `shown`) was old enough, unheld,
/// a lock, and removed.
fn remove_if_stale(dir: BorrowedFd<'_>, shown: &Path, name: &str, now: SystemTime, max_age: Duration) -> bool {
    let path = shown.join(name);
    let age = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => age(&st, now),
        Err(Errno::ENOENT) => return false,
        Err(e) => {
            log::warn!(target: "ferrolock::job", "skipping {path:?}: {}", e.desc());
            return false;
        }
    };
    if age <= max_age {
        return false;
    }
    // Judged again on the file actually opened and locked.
    let judge = |st: &FileStat, bytes: &[u8]| {
        if self::age(st, now) <= max_age {
            Verdict::Keep
        } else if is_lock_content(bytes) {
            Verdict::Remove
        } else {
            Verdict::Refuse("holds something other than a lock's content".to_owned())
        }
    };
    match remove_at(dir, OsStr::new(name), None, &judge) {
        Outcome::Removed => true,
        Outcome::Held => {
            log::info!(target: "ferrolock::job", "kept {path:?}: untouched for {}s but held", age.as_secs());
            false
        }
        Outcome::Left => false,
        Outcome::Refused(why) => {
            log::warn!(target: "ferrolock::job", "skipping {path:?}: {why}");
            false
        }
    }
}

/// How long ago the file was last modified; a modification time in the future (clock skew) counts as
/// age zero.
fn age(st: &FileStat, now: SystemTime) -> Duration {
    let secs = u64::try_from(st.st_mtime).unwrap_or(0);
    let nanos = u32::try_from(st.st_mtime_nsec).unwrap_or(0);
    now.duration_since(UNIX_EPOCH + Duration::new(secs, nanos))
        .unwrap_or(Duration::ZERO)
}
