//! One candidate lock file, opened relative to its directory: what it holds, and its removal after
//! checking that it is still exactly the file that was judged.
//!
//! Linux cannot unlink "this inode": `unlinkat` removes a name. So the removal narrows the gap as far
//! as it goes: the file is opened without following a symlink and taken exclusively (nobody holds
//! it, and nobody can take it meanwhile), its content is judged again under that lock, and right
//! before the unlink `fstatat` checks that the name in the verified directory still names the same
//! inode. What remains is a rename over that name in the instant between the last two calls, which
//! needs write access to the directory (and, in a sticky directory, ownership of the name), so it can
//! only make the remover unlink a name its own user could have unlinked anyway.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{FileStat, SFlag, fstat, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::tree::FileId;
use crate::lock::Holder;
use crate::sys::fs::{FileKind, open_untrusted_at};
use crate::sys::{self, FlockOp};

/// The most a lock file may hold to count as one: empty, a holder record, or a claim record.
pub(crate) const MAX_LOCK_FILE_LEN: u64 = 64 * 1024;

/// A file as it was judged: its identity, and when its inode last changed (a file removed and created
/// again may get the same inode number back, but not the same change time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Judged {
    pub(crate) id: FileId,
    changed: (i64, i64),
}

impl Judged {
    pub(crate) fn of(st: &FileStat) -> Self {
        Self {
            id: FileId::of(st),
            changed: (st.st_ctime, st.st_ctime_nsec),
        }
    }
}

/// Opens `name` in `dir` for reading: never through a symlink, never blocking on a FIFO, never
/// becoming a controlling terminal.
pub(crate) fn open_at(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<(File, FileStat)> {
    let file = open_untrusted_at(dir, name).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
    let st = fstat(&file)?;
    Ok((file, st))
}

pub(crate) fn is_regular(st: &FileStat) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFREG.bits()
}

/// The first [`MAX_LOCK_FILE_LEN`] bytes (and one more, so a longer file shows it is longer).
pub(crate) fn read_head(file: &File) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(MAX_LOCK_FILE_LEN + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Content a lock file of a legacy layout may have: nothing (the legacy modules write nothing) or a
/// holder record.
pub(crate) fn is_lock_content(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace) || Holder::parse(bytes).is_some()
}

/// What a removal decides about the file it has just re-read under its lock.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Still what was judged: remove it.
    Remove,
    /// It changed in an ordinary way (rewritten, in use again): leave it, nothing to report.
    Keep,
    /// It changed into something that must not be removed: leave it, and say why.
    Refuse(String),
}

/// What [`remove_at`] did.
#[derive(Debug)]
pub(crate) enum Outcome {
    Removed,
    /// Someone holds it (now): left alone.
    Held,
    /// Gone, replaced by another file, or no longer what was judged in an ordinary way: left alone.
    Left,
    /// Left alone, for the reason given: something that should be reported.
    Refused(String),
}

/// Removes `name` from `dir` if it is still the file that was judged (`want`, if given: same inode,
/// unchanged since), a regular file with a single link, held by nobody (it is taken exclusively,
/// without waiting), with content `judge` still accepts, and still linked under `name` when it is
/// unlinked.
pub(crate) fn remove_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    want: Option<Judged>,
    judge: &dyn Fn(&FileStat, &[u8]) -> Verdict,
) -> Outcome {
    let (file, st) = match open_at(dir, name) {
        Ok(opened) => opened,
        Err(Errno::ENOENT) => return Outcome::Left,
        Err(Errno::ELOOP) => return Outcome::Refused("is a symbolic link (never followed)".to_owned()),
        Err(e) => return Outcome::Refused(format!("cannot be opened: {}", e.desc())),
    };
    if !is_regular(&st) {
        return Outcome::Refused(format!(
            "is a {}, not a regular file",
            FileKind::of_mode(st.st_mode).word()
        ));
    }
    if want.is_some_and(|want| want.id != FileId::of(&st)) {
        return Outcome::Left;
    }
    if st.st_nlink != 1 {
        return Outcome::Refused(links_reason(st.st_nlink));
    }
    match sys::flock(file.as_fd(), FlockOp::Exclusive, true) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(nix::libc::EWOULDBLOCK) => return Outcome::Held,
        Err(e) => return Outcome::Refused(format!("cannot be locked: {e}")),
    }
    let outcome = remove_locked(dir, name, &file, &st, judge, want);
    // Unlock before closing, as everywhere else: a child forked meanwhile shares the description.
    let _ = sys::flock(file.as_fd(), FlockOp::Unlock, false);
    outcome
}

fn remove_locked(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    file: &File,
    st: &FileStat,
    judge: &dyn Fn(&FileStat, &[u8]) -> Verdict,
    want: Option<Judged>,
) -> Outcome {
    let bytes = match read_head(file) {
        Ok(bytes) => bytes,
        Err(e) => return Outcome::Refused(format!("cannot be read: {e}")),
    };
    match judge(st, &bytes) {
        Verdict::Remove => {}
        Verdict::Keep => return Outcome::Left,
        Verdict::Refuse(reason) => return Outcome::Refused(reason),
    }
    // Content fine, but changed (or created anew) since it was judged: in use, not ours to remove.
    if want.is_some_and(|want| want != Judged::of(st)) {
        return Outcome::Left;
    }
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(now) if FileId::of(&now) == FileId::of(st) => {}
        Ok(_) | Err(Errno::ENOENT) => return Outcome::Left,
        Err(e) => return Outcome::Refused(format!("cannot be checked: {}", e.desc())),
    }
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) => Outcome::Removed,
        Err(Errno::ENOENT) => Outcome::Left,
        Err(e) => Outcome::Refused(format!("cannot be removed: {}", e.desc())),
    }
}

/// Why a file with hard links is left alone: unlinking one name would not free the file, and the
/// other names may be somebody else's.
pub(crate) fn links_reason(links: impl std::fmt::Display) -> String {
    format!("has {links} hard links: left alone")
}
