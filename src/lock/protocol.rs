//! The on-disk protocol: open without truncation, flock, verify the path still names the locked inode.
//!
//! A flock lock belongs to an inode, not to a name. If a lock file is unlinked (or replaced) while
//! someone waits on the old inode, that waiter later "wins" a lock nobody else can see, while newcomers
//! lock the new file: two holders (tox-dev/filelock#574). Every acquisition here therefore ends with
//! `lstat(path)` and retries unless the path still names the inode it locked. That makes it safe to
//! delete a lock file while holding it exclusively, which is how ferrolock removes lock files nobody
//! holds instead of leaving them to pile up.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::libc;
use nix::sys::stat::{FileStat, Mode, fstat, fstatat, lstat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::holder::{self, is_would_block};
use super::wait::{self, Wait, WaitControl, WaitEnd};
use crate::error::{Error, Result};
use crate::sys::fs::open_untrusted_at;
use crate::sys::{self, FileKind, FinalLink, FlockOp, LockFile};

/// Where a lock lives and how to create it.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) path: PathBuf,
    c_path: CString,
    /// Permission bits for a newly created lock file (the umask still applies).
    pub(crate) file_mode: u32,
    /// Create missing parent directories.
    pub(crate) create_dirs: bool,
}

impl Target {
    pub(crate) fn new(path: PathBuf, file_mode: u32, create_dirs: bool) -> Result<Self> {
        let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::InvalidName {
            what: "lock path",
            name: path.display().to_string(),
            reason: "contains a NUL byte",
        })?;
        if path.as_os_str().is_empty() {
            return Err(Error::InvalidName {
                what: "lock path",
                name: String::new(),
                reason: "is empty",
            });
        }
        Ok(Self {
            path,
            c_path,
            file_mode,
            create_dirs,
        })
    }
}

/// An open lock file: the descriptor plus the identity of the inode it refers to.
#[derive(Debug)]
pub(crate) struct LockFd {
    /// Closed at once in a forked child (see `sys::LockFile`).
    pub(crate) file: LockFile,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    /// Whether a holder record may be written into the file: it was opened read-write, it has exactly
    /// one link, and it holds nothing but a holder record (or nothing). A hard link to somebody's file,
    /// or a data file named as a lock by mistake, is locked (flock changes nothing) but never written.
    pub(crate) may_record: bool,
}

impl LockFd {
    /// Opens (creating if needed) the lock file. Never truncates, never follows a final symlink (nor a
    /// link on the way that the link rule refuses), never blocks on a FIFO, refuses anything but a
    /// regular file.
    pub(crate) fn open(target: &Target) -> Result<Self> {
        let path = &target.path;
        let read_write = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NONBLOCK;
        let mode = Mode::from_bits_truncate(target.file_mode);
        let (opened, mut located) = sys::fs::open_file(path, read_write, mode, target.create_dirs)?;
        let (fd, writable) = match opened {
            Ok(fd) => (fd, true),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EROFS)) => {
                // Someone else's lock file, or one on a read-only mount: a read-only descriptor locks
                // just as well (flock needs no write access).
                match sys::fs::open_file(path, OFlag::O_RDONLY | OFlag::O_NONBLOCK, Mode::empty(), false)? {
                    (Ok(fd), at) => {
                        located = at;
                        (fd, false)
                    }
                    (Err(_), _) => return Err(Error::io("open lock file", path, e)),
                }
            }
            Err(e) => return Err(open_error(path, e)),
        };
        let file = File::from(fd);
        let st = fstat(&file).map_err(|e| Error::io("stat lock file", path, e.into()))?;
        let kind = FileKind::of_mode(st.st_mode);
        if kind != FileKind::Regular {
            return Err(Error::NotRegularFile {
                path: path.clone(),
                kind: kind.word(),
            });
        }
        if st.st_uid != sys::euid() {
            refuse_if_untrusted(path, &st, located.map(|at| at.dir))?;
        }
        let may_record = writable && record_allowed(&file, &st, path);
        Ok(Self {
            file: LockFile::new(file),
            dev: st.st_dev,
            ino: st.st_ino,
            may_record,
        })
    }

    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// True if `target`'s path still names the inode this descriptor refers to.
    pub(crate) fn still_linked(&self, target: &Target) -> Result<bool> {
        match lstat(target.c_path.as_c_str()) {
            Ok(st) => Ok(st.st_dev == self.dev && st.st_ino == self.ino),
            Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(false),
            Err(e) => Err(Error::io("stat lock file", &target.path, e.into())),
        }
    }

    pub(crate) fn unlock(&self) -> io::Result<()> {
        sys::flock(self.as_fd(), FlockOp::Unlock, false)
    }
}

/// Why another user's lock file in a shared directory is refused.
const DELETABLE: &str = "its owner can delete it at any moment, and a second process would then lock a new file \
                         at the same path while you still hold this one";

/// Refuses a lock file of another user in a shared directory (see [`DELETABLE`]). Files of the caller
/// are never asked about (no directory lookup on the usual path); the directory is the one the path
/// was resolved through, or is looked up under the link rule now.
fn refuse_if_untrusted(path: &Path, st: &FileStat, dir: Option<sys::Dir>) -> Result<()> {
    let dir = if let Some(dir) = dir {
        dir
    } else {
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        sys::Dir::open(parent, false)?
    };
    if dir.trusts(st.st_uid) {
        return Ok(());
    }
    Err(Error::UntrustedFile {
        path: path.to_path_buf(),
        owner: st.st_uid,
        dir_owner: dir.uid(),
        why: DELETABLE,
    })
}

/// Whether a holder record may go into this (writable) lock file: one link only (a second name could
/// be a hard link someone made to a file of yours), and nothing in it but a record (see
/// [`holder::holds_only_a_record`]). Logged when refused: the lock itself works all the same.
fn record_allowed(file: &File, st: &FileStat, path: &Path) -> bool {
    if st.st_nlink != 1 {
        log::warn!(
            target: "ferrolock::lock",
            "{} has {} links; no holder record is written into it", path.display(), st.st_nlink
        );
        return false;
    }
    let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
    if !holder::holds_only_a_record(file, size) {
        log::warn!(
            target: "ferrolock::lock",
            "{} holds something other than a holder record; no holder record is written into it", path.display()
        );
        return false;
    }
    true
}

fn open_error(path: &Path, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) => Error::Symlink { path: path.into() },
        Some(libc::EISDIR) => Error::NotRegularFile {
            path: path.into(),
            kind: "directory",
        },
        _ => Error::io("open lock file", path, e),
    }
}

/// Called once the first attempt failed and before sleeping: `true` means the caller would wait for
/// itself (it already holds this inode through another lock object).
pub(crate) type DeadlockCheck<'a> = &'a dyn Fn(&LockFd) -> bool;

/// Acquires `target` in `op` mode: the whole protocol, including reopening after a lock file was
/// removed or replaced. `reuse` is an already open, unlocked descriptor to try first.
pub(crate) fn acquire(
    target: &Target,
    reuse: Option<LockFd>,
    op: FlockOp,
    wait: Wait,
    ctl: &mut WaitControl<'_>,
    would_deadlock: Option<DeadlockCheck<'_>>,
) -> Result<LockFd> {
    let started = Instant::now();
    let mut next = reuse;
    loop {
        let fd = match next.take() {
            Some(fd) => fd,
            None => LockFd::open(target)?,
        };
        match sys::flock(fd.as_fd(), op, true) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                next = Some(fd);
                continue;
            }
            Err(e) if is_would_block(&e) => {
                if wait == Wait::Try {
                    return Err(held_error(&target.path, None));
                }
                if would_deadlock.is_some_and(|check| check(&fd)) {
                    return Err(Error::WouldDeadlock {
                        path: target.path.clone(),
                    });
                }
                log::debug!(target: "ferrolock::lock", "waiting for {}", target.path.display());
                match wait::block_until_locked(fd.as_fd(), op, wait.deadline(), ctl) {
                    Ok(()) => {}
                    Err(end) => return Err(wait_error(target, end, started)),
                }
            }
            Err(e) => return Err(Error::io("lock", &target.path, e)),
        }
        if fd.still_linked(target)? {
            return Ok(fd);
        }
        // We locked an inode that no longer has this name: the file was removed (or replaced) while we
        // waited. That lock guards nothing; drop it and lock whatever the path names now.
        log::debug!(target: "ferrolock::lock", "{} was replaced while waiting; retrying", target.path.display());
        let _ = fd.unlock();
    }
}

fn wait_error(target: &Target, end: WaitEnd, started: Instant) -> Error {
    let path = target.path.clone();
    match end {
        WaitEnd::TimedOut => held_error(&path, Some(started.elapsed())),
        WaitEnd::Cancelled => Error::Cancelled { path },
        WaitEnd::Interrupted => Error::Interrupted { path },
        WaitEnd::Io(e) => Error::io("wait for lock", path, e),
    }
}

/// The error for a lock someone else holds: [`Error::Timeout`] after waiting `waited`, else
/// [`Error::WouldBlock`], naming the holder as far as the kernel confirms it (a record another writer
/// forged is not repeated).
pub(crate) fn held_error(path: &Path, waited: Option<Duration>) -> Error {
    let seen = holder::observe(path).unwrap_or_default();
    let (holder, held_by) = (seen.record.map(Box::new), seen.pid);
    let path = path.to_path_buf();
    match waited {
        Some(waited) => Error::Timeout {
            path,
            waited,
            holder,
            held_by,
        },
        None => Error::WouldBlock { path, holder, held_by },
    }
}

/// What [`remove_if_unheld`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Nobody held the file; it was removed.
    Removed,
    /// Someone holds the file; it was left alone.
    Held,
    /// There was no file.
    Missing,
}

/// Removes the lock file at `path` if, and only if, nobody holds it: take it exclusively without
/// waiting, check it is still the file at `path`, unlink it while holding it, then release.
/// Waiters that had the old file open notice the unlink when they win and move to the new file.
/// The path is reached under the link rule, and the removal is relative to the directory checked.
pub fn remove_if_unheld(path: &Path) -> Result<Removal> {
    Target::new(path.to_path_buf(), 0o644, false)?;
    let at = match sys::locate(path, FinalLink::Keep, false) {
        Ok(at) => at,
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(Removal::Missing),
        Err(e) => return Err(e),
    };
    remove_if_unheld_at(at.dir.fd(), &at.name, path)
}

/// [`remove_if_unheld`] for the entry `name` of the directory open as `dir` (`path` names it in
/// messages): for walkers that hold the directory they verified.
pub(crate) fn remove_if_unheld_at(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<Removal> {
    let file = match open_untrusted_at(dir, name) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Removal::Missing),
        Err(e) => return Err(open_error(path, e)),
    };
    let st = fstat(&file).map_err(|e| Error::io("stat lock file", path, e.into()))?;
    let kind = FileKind::of_mode(st.st_mode);
    if kind != FileKind::Regular {
        return Err(Error::NotRegularFile {
            path: path.into(),
            kind: kind.word(),
        });
    }
    match sys::flock(file.as_fd(), FlockOp::Exclusive, true) {
        Ok(()) => {}
        Err(e) if is_would_block(&e) => return Ok(Removal::Held),
        Err(e) => return Err(Error::io("lock", path, e)),
    }
    let still_there = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(now) => now.st_dev == st.st_dev && now.st_ino == st.st_ino,
        Err(Errno::ENOENT) => false,
        Err(e) => {
            let _ = sys::flock(file.as_fd(), FlockOp::Unlock, false);
            return Err(Error::io("stat lock file", path, e.into()));
        }
    };
    let outcome = if still_there {
        unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)
            .map(|()| Removal::Removed)
            .map_err(|e| Error::io("remove lock file", path, e.into()))
    } else {
        // Someone replaced it between our open and our lock; what is there now is not ours to judge.
        Ok(Removal::Missing)
    };
    let _ = sys::flock(file.as_fd(), FlockOp::Unlock, false);
    outcome
}

/// Opens an existing lock file read-only (to probe it), under the link rule; `None` if it is missing.
pub(crate) fn open_existing(target: &Target) -> Result<Option<LockFd>> {
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK;
    let file = match sys::fs::open_file(&target.path, flags, Mode::empty(), false) {
        Ok((Ok(fd), _)) => File::from(fd),
        Ok((Err(e), _)) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Ok((Err(e), _)) => return Err(open_error(&target.path, e)),
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let st = fstat(&file).map_err(|e| Error::io("stat lock file", &target.path, e.into()))?;
    let kind = FileKind::of_mode(st.st_mode);
    if kind != FileKind::Regular {
        return Err(Error::NotRegularFile {
            path: target.path.clone(),
            kind: kind.word(),
        });
    }
    Ok(Some(LockFd {
        file: LockFile::new(file),
        dev: st.st_dev,
        ino: st.st_ino,
        may_record: false,
    }))
}
