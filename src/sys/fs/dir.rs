//! [`Dir`]: a directory reached under the link rule (see [`super::resolve`]), held open so that
//! every later operation is relative to this very directory, and the rule's two questions about it:
//! is it shared, and whose entries in it may be trusted.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, fstat, fstatat};

use super::resolve::Walk;
use crate::error::{Error, Result};

/// The effective uid: the user whose links and files are trusted in shared directories.
pub(crate) fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// A directory reached under the rule, held open (`O_PATH`) so that later operations are relative to
/// this very directory, whatever happens to the path meanwhile.
#[derive(Debug)]
pub(crate) struct Dir {
    fd: OwnedFd,
    /// How the directory was reached, for messages.
    path: PathBuf,
    uid: u32,
    mode: u32,
}

impl Dir {
    /// Opens the directory `path` under the rule, creating missing components (mode `0o777` minus the
    /// umask) when `create` is set.
    pub(crate) fn open(path: &Path, create: bool) -> Result<Self> {
        Walk::new(path, create).dir(None, path)
    }

    pub(super) fn from_fd(fd: OwnedFd, path: PathBuf) -> Result<Self> {
        let st = fstat(&fd).map_err(|e| Error::io("stat directory", &path, e.into()))?;
        Ok(Self::with_stat(fd, path, &st))
    }

    pub(super) fn with_stat(fd: OwnedFd, path: PathBuf, st: &FileStat) -> Self {
        Self {
            fd,
            path,
            uid: st.st_uid,
            mode: st.st_mode,
        }
    }

    pub(super) fn try_clone(&self) -> Result<Self> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| Error::io("duplicate descriptor of", &self.path, e))?;
        Ok(Self {
            fd,
            path: self.path.clone(),
            uid: self.uid,
            mode: self.mode,
        })
    }

    /// The descriptor every operation in this directory is relative to.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The path the directory was reached by (for messages only: never opened again).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's owner.
    pub(crate) fn uid(&self) -> u32 {
        self.uid
    }

    /// `name` in this directory, as a path for messages.
    pub(crate) fn join(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// Whether users other than the owner may create entries here: world-writable, or sticky and
    /// group-writable.
    pub(crate) fn is_shared(&self) -> bool {
        let has = |bit: nix::libc::mode_t| self.mode & bit != 0;
        has(nix::libc::S_IWOTH) || (has(nix::libc::S_ISVTX) && has(nix::libc::S_IWGRP))
    }

    /// Whether an entry here that belongs to `owner` may be trusted: anything outside a shared
    /// directory, and inside one only the caller's entries and the directory owner's (who may remove
    /// or replace anything in it anyway).
    pub(crate) fn trusts(&self, owner: u32) -> bool {
        !self.is_shared() || owner == euid() || owner == self.uid
    }

    /// `name`'s status without following a link; `None` if there is no such entry.
    pub(crate) fn stat(&self, name: &OsStr) -> io::Result<Option<FileStat>> {
        match fstatat(self.fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `fsync` of the directory itself, making creations, renames and removals in it durable. (An
    /// `O_PATH` descriptor cannot be synced; the directory is reopened through it, not by path.)
    pub(crate) fn sync(&self) -> io::Result<()> {
        let readable = openat(
            self.fd(),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        nix::unistd::fsync(&readable)?;
        Ok(())
    }

    pub(super) fn check_link(&self, link_uid: u32, link: &Path, asked: &Path) -> Result<()> {
        if self.trusts(link_uid) {
            return Ok(());
        }
        Err(Error::UntrustedLink {
            path: asked.to_path_buf(),
            link: link.to_path_buf(),
            owner: link_uid,
            dir_owner: self.uid,
        })
    }
}
