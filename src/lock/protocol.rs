//! The on-disk protocol: open without truncation, flock, verify the path still names the locked inode.
//!
//! A flock lock belongs to an inode, not to a name. If a lock file is unlinked (or replaced) while
//! someone waits on the old inode, that waiter later "wins" a lock nobody else can see, while newcomers
//! lock the new file: two holders (tox-dev/filelock#574). Every acquisition here therefore ends with
//! `lstat(path)` and retries unless the path still names the inode it locked. That makes it safe to
//! delete a lock file while holding it exclusively, which is how ferrolock removes lock files nobody
//! holds instead of leaving them to pile up.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::errno::Errno;
use nix::libc;
use nix::sys::stat::{SFlag, lstat};

use super::holder::{self, is_would_block};
use super::wait::{self, Wait, WaitControl, WaitEnd};
use crate::error::{Error, Result};
use crate::sys::{self, FlockOp};

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
    pub(crate) file: File,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    /// False when the file could only be opened read-only (someone else's lock file in a shared
    /// directory): flock works, but no holder record is written.
    pub(crate) writable: bool,
}

impl LockFd {
    /// Opens (creating if needed) the lock file. Never truncates, never follows a final symlink,
    /// never blocks on a FIFO, refuses anything but a regular file.
    pub(crate) fn open(target: &Target) -> Result<Self> {
        let path = &target.path;
        let mut created_dirs = false;
        let (file, writable) = loop {
            let rw = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(target.file_mode)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(path);
            match rw {
                Ok(f) => break (f, true),
                Err(e) if e.kind() == io::ErrorKind::NotFound && target.create_dirs && !created_dirs => {
                    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                        std::fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
                    }
                    created_dirs = true;
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EROFS)) => {
                    // Someone else's lock file in a shared directory, or one on a read-only mount: a
                    // read-only descriptor locks just as well (flock needs no write access).
                    match open_read_only(path) {
                        Ok(f) => break (f, false),
                        Err(_) => return Err(Error::io("open lock file", path, e)),
                    }
                }
                Err(e) => return Err(open_error(path, e)),
            }
        };
        let meta = file.metadata().map_err(|e| Error::io("stat lock file", path, e))?;
        let kind = meta.file_type();
        if !kind.is_file() {
            return Err(Error::NotRegularFile {
                path: path.clone(),
                kind: file_kind(meta.mode()),
            });
        }
        Ok(Self {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            writable,
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

fn open_read_only(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
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

pub(crate) fn file_kind(mode: u32) -> &'static str {
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFDIR => "directory",
        SFlag::S_IFIFO => "FIFO",
        SFlag::S_IFSOCK => "socket",
        SFlag::S_IFCHR => "character device",
        SFlag::S_IFBLK => "block device",
        SFlag::S_IFLNK => "symbolic link",
        _ => "special file",
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
                    return Err(Error::WouldBlock {
                        path: target.path.clone(),
                        holder: holder::read_holder(&target.path).map(Box::new),
                    });
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
        WaitEnd::TimedOut => {
            let holder = holder::read_holder(&path).map(Box::new);
            Error::Timeout {
                path,
                waited: started.elapsed(),
                holder,
            }
        }
        WaitEnd::Cancelled => Error::Cancelled { path },
        WaitEnd::Interrupted => Error::Interrupted { path },
        WaitEnd::Io(e) => Error::io("wait for lock", path, e),
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
pub fn remove_if_unheld(path: &Path) -> Result<Removal> {
    let target = Target::new(path.to_path_buf(), 0o644, false)?;
    let Some(fd) = open_existing(&target)? else {
        return Ok(Removal::Missing);
    };
    match sys::flock(fd.as_fd(), FlockOp::Exclusive, true) {
        Ok(()) => {}
        Err(e) if is_would_block(&e) => return Ok(Removal::Held),
        Err(e) => return Err(Error::io("lock", path, e)),
    }
    let outcome = if fd.still_linked(&target)? {
        std::fs::remove_file(path).map_err(|e| Error::io("remove lock file", path, e))?;
        Removal::Removed
    } else {
        // Someone replaced it between our open and our lock; what is there now is not ours to judge.
        Removal::Missing
    };
    let _ = fd.unlock();
    Ok(outcome)
}

pub(crate) fn open_existing(target: &Target) -> Result<Option<LockFd>> {
    match open_read_only(&target.path) {
        Ok(file) => {
            let meta = file
                .metadata()
                .map_err(|e| Error::io("stat lock file", &target.path, e))?;
            if !meta.file_type().is_file() {
                return Err(Error::NotRegularFile {
                    path: target.path.clone(),
                    kind: file_kind(meta.mode()),
                });
            }
            Ok(Some(LockFd {
                file,
                dev: meta.dev(),
                ino: meta.ino(),
                writable: false,
            }))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(open_error(&target.path, e)),
    }
}
