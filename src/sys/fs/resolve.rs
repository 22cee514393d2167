//! Reaching a path without following a link another user planted.
//!
//! **The rule** is the kernel's `protected_symlinks`, applied by ferrolock itself (whatever the
//! sysctl says) to *every* component of a path, not only the last: in a *shared* directory, a
//! symbolic link is followed only if it belongs to the caller (the effective uid) or to the
//! directory's owner. A directory is shared when users other than its owner may create entries in
//! it: it is world-writable, or it is sticky and group-writable. Elsewhere links are followed as the
//! kernel follows them: a directory's owner decides what its links mean.
//!
//! **How.** When the path holds no symlink at all (the usual case), one `openat2(RESOLVE_NO_SYMLINKS)`
//! reaches the directory: there is nothing to judge. Otherwise the path is walked one component at a
//! time: `openat(O_PATH|O_NOFOLLOW)` and `fstat` on the result; a link is judged by the owner of that
//! very descriptor and read from it (`readlinkat(fd, "")`), so the link judged is the link followed.
//! At most [`MAX_LINKS`] links are followed. The result is a directory *descriptor*: callers do
//! everything after that relative to it (`openat`, `renameat`, `linkat`, `unlinkat`, `fsync`), so a
//! directory swapped for a symlink after the check changes nothing they do.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2, readlinkat};
use nix::sys::stat::{FileStat, Mode, fstat, fstatat, mkdirat};

use super::FileKind;
use crate::error::{Error, Result};

/// Symbolic links followed in one resolution before it fails with `ELOOP` (the kernel's limit).
const MAX_LINKS: u32 = 40;

const PATH_ONLY: OFlag = OFlag::O_PATH.union(OFlag::O_NOFOLLOW).union(OFlag::O_CLOEXEC);

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

    fn from_fd(fd: OwnedFd, path: PathBuf) -> Result<Self> {
        let st = fstat(&fd).map_err(|e| Error::io("stat directory", &path, e.into()))?;
        Ok(Self::with_stat(fd, path, &st))
    }

    fn with_stat(fd: OwnedFd, path: PathBuf, st: &FileStat) -> Self {
        Self {
            fd,
            path,
            uid: st.st_uid,
            mode: st.st_mode,
        }
    }

    fn try_clone(&self) -> Result<Self> {
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

    fn check_link(&self, link_uid: u32, link: &Path, asked: &Path) -> Result<()> {
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

/// A name in a directory reached under the rule.
#[derive(Debug)]
pub(crate) struct Located {
    /// The directory, open.
    pub(crate) dir: Dir,
    /// The final name in it.
    pub(crate) name: OsString,
}

impl Located {
    /// The file's path, for messages.
    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }
}

/// What [`locate`] does with a final component that is a symbolic link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FinalLink {
    /// Return the name as it is: a lock file refuses a link when it opens the name, and a name that
    /// is replaced or removed is the link itself, never its target.
    Keep,
    /// Follow it under the rule (repeatedly), so the name returned is not a link (or does not exist):
    /// a state file may be a symlink its owner made.
    Follow,
}

/// Finds `path`'s directory under the rule (creating missing directories if `create_dirs`) and its
/// final name, following a final symlink under the rule if `final_link` says so.
///
/// # Errors
/// [`Error::UntrustedLink`] for a link the rule does not follow; [`Error::InvalidName`] if `path` has
/// no final name; [`Error::Io`] (`ELOOP` past [`MAX_LINKS`] links, `ENOENT`, `ENOTDIR`, ...).
pub(crate) fn locate(path: &Path, final_link: FinalLink, create_dirs: bool) -> Result<Located> {
    let (parent, name) = split(path, path)?;
    let mut walk = Walk::new(path, create_dirs);
    let mut dir = walk.dir(None, parent)?;
    let mut name = name.to_os_string();
    if final_link == FinalLink::Keep {
        return Ok(Located { dir, name });
    }
    loop {
        // One fstatat in the usual case (not a link); the link itself is then opened, so the owner
        // judged and the target read are those of one inode.
        match dir.stat(&name) {
            Ok(Some(st)) if FileKind::of_mode(st.st_mode) == FileKind::Symlink => {}
            Ok(_) => return Ok(Located { dir, name }),
            Err(e) => return Err(Error::io("stat", dir.join(&name), e)),
        }
        let link_path = dir.join(&name);
        let fd = match openat(dir.fd(), name.as_os_str(), PATH_ONLY, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(Located { dir, name }),
            Err(e) => return Err(Error::io("open", link_path, e.into())),
        };
        let st = fstat(&fd).map_err(|e| Error::io("stat", &link_path, e.into()))?;
        if FileKind::of_mode(st.st_mode) != FileKind::Symlink {
            return Ok(Located { dir, name }); // replaced by a file meanwhile: that is what is there
        }
        dir.check_link(st.st_uid, &link_path, path)?;
        walk.count_link(&link_path)?;
        let target = PathBuf::from(readlinkat(&fd, "").map_err(|e| Error::io("read symlink", &link_path, e.into()))?);
        let (target_parent, target_name) = split(&target, path)?;
        dir = walk.dir(Some(&dir), target_parent)?;
        name = target_name.to_os_string();
    }
}

/// Opens the file `path` with `flags` (plus `O_NOFOLLOW`: a final symlink is `ELOOP`, never followed)
/// and `mode`, reaching it under the rule: one `openat2(RESOLVE_NO_SYMLINKS)` when no component is a
/// link (the cost of a plain `open`), else through [`locate`], which also creates missing directories
/// if `create_dirs`. The outer error is the resolution's (an untrusted link, a missing directory); the
/// inner one is the final open's errno, for the caller to judge. The located directory is returned when
/// the slow path ran.
pub(crate) fn open_file(
    path: &Path,
    flags: OFlag,
    mode: Mode,
    create_dirs: bool,
) -> Result<(io::Result<OwnedFd>, Option<Located>)> {
    let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let how = OpenHow::new()
        .flags(flags)
        .mode(mode)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
    match openat2(AT_FDCWD, path, how) {
        Ok(fd) => return Ok((Ok(fd), None)),
        Err(Errno::ELOOP | Errno::ENOSYS | Errno::EPERM | Errno::EINVAL | Errno::E2BIG) => {}
        Err(Errno::ENOENT) if create_dirs => {}
        Err(e) => return Ok((Err(e.into()), None)),
    }
    let at = locate(path, FinalLink::Keep, create_dirs)?;
    let opened = openat(at.dir.fd(), at.name.as_os_str(), flags, mode).map_err(io::Error::from);
    Ok((opened, Some(at)))
}

/// A path's directory part and final name: `a/b` gives `a` and `b`; `b` gives an empty path and `b`.
fn split<'a>(path: &'a Path, asked: &Path) -> Result<(&'a Path, &'a OsStr)> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => Ok((parent, name)),
        _ => Err(Error::InvalidName {
            what: "path",
            name: asked.display().to_string(),
            reason: "names no file (it ends in `..` or is a root)",
        }),
    }
}

/// One resolution: the path asked for (for messages), the links followed so far, and whether to
/// create missing directories.
struct Walk<'a> {
    asked: &'a Path,
    links: u32,
    create: bool,
}

enum Part {
    Root,
    Parent,
    Name(OsString),
}

impl<'a> Walk<'a> {
    fn new(asked: &'a Path, create: bool) -> Self {
        Self {
            asked,
            links: 0,
            create,
        }
    }

    /// The directory `path`, relative to `base` (or the working directory).
    fn dir(&mut self, base: Option<&Dir>, path: &Path) -> Result<Dir> {
        // Messages show the path as given: `state.json`, not `./state.json`.
        let shown = base.map_or_else(|| path.to_path_buf(), |b| b.path.join(path));
        let path = if path.as_os_str().is_empty() {
            Path::new(".")
        } else {
            path
        };
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
        match openat2(base.map_or(AT_FDCWD, Dir::fd), path, how) {
            Ok(fd) => return Dir::from_fd(fd, shown),
            // A symlink somewhere (ELOOP), or no openat2 here (an old kernel, a seccomp filter).
            Err(Errno::ELOOP | Errno::ENOSYS | Errno::EPERM | Errno::EINVAL | Errno::E2BIG) => {}
            Err(Errno::ENOENT) if self.create => {}
            Err(e) => return Err(Error::io("open directory", shown, e.into())),
        }
        self.walk(base, path)
    }

    fn walk(&mut self, base: Option<&Dir>, path: &Path) -> Result<Dir> {
        let mut pending = VecDeque::new();
        push_parts(&mut pending, path);
        let mut cur = match (pending.front(), base) {
            (Some(Part::Root), _) => {
                pending.pop_front();
                open_start("/")?
            }
            (_, Some(base)) => base.try_clone()?,
            (_, None) => open_start(".")?,
        };
        while let Some(part) = pending.pop_front() {
            let name = match part {
                Part::Root => {
                    cur = open_start("/")?;
                    continue;
                }
                Part::Parent => OsString::from(".."),
                Part::Name(name) => name,
            };
            let here = cur.join(&name);
            let fd = self.open_component(&cur, &name, &here)?;
            let st = fstat(&fd).map_err(|e| Error::io("stat", &here, e.into()))?;
            match FileKind::of_mode(st.st_mode) {
                FileKind::Directory => cur = Dir::with_stat(fd, here, &st),
                FileKind::Symlink => {
                    cur.check_link(st.st_uid, &here, self.asked)?;
                    self.count_link(&here)?;
                    let target = readlinkat(&fd, "").map_err(|e| Error::io("read symlink", &here, e.into()))?;
                    let mut parts = VecDeque::new();
                    push_parts(&mut parts, Path::new(&target));
                    parts.append(&mut pending);
                    pending = parts;
                }
                _ => return Err(Error::io("open directory", here, Errno::ENOTDIR.into())),
            }
        }
        Ok(cur)
    }

    /// Opens one component (`O_PATH`, not following it), creating it as a directory if it is missing
    /// and this walk creates directories.
    fn open_component(&self, cur: &Dir, name: &OsStr, here: &Path) -> Result<OwnedFd> {
        // A concurrent remover can undo our mkdir; a few rounds, then report what we saw.
        for _ in 0..4 {
            match openat(cur.fd(), name, PATH_ONLY, Mode::empty()) {
                Ok(fd) => return Ok(fd),
                Err(Errno::ENOENT) if self.create && name != ".." => {
                    match mkdirat(cur.fd(), name, Mode::from_bits_truncate(0o777)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(Error::io("create directory", here, e.into())),
                    }
                }
                Err(e) => return Err(Error::io("open directory", here, e.into())),
            }
        }
        Err(Error::io("open directory", here, Errno::ENOENT.into()))
    }

    fn count_link(&mut self, link: &Path) -> Result<()> {
        self.links += 1;
        if self.links > MAX_LINKS {
            return Err(Error::io("resolve", link, Errno::ELOOP.into()));
        }
        Ok(())
    }
}

fn open_start(path: &str) -> Result<Dir> {
    let fd = openat(
        AT_FDCWD,
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open directory", path, e.into()))?;
    // The working directory is shown as nothing, so relative paths read as they were given.
    Dir::from_fd(fd, PathBuf::from(if path == "." { "" } else { path }))
}

fn push_parts(parts: &mut VecDeque<Part>, path: &Path) {
    for component in path.components() {
        match component {
            Component::RootDir => parts.push_back(Part::Root),
            Component::ParentDir => parts.push_back(Part::Parent),
            Component::Normal(name) => parts.push_back(Part::Name(name.to_os_string())),
            Component::CurDir | Component::Prefix(_) => {}
        }
    }
}
