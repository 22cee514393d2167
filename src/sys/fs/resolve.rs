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
//! Once a link is judged, the rest of the path (its target, then what followed the link) is tried
//! with one more `openat2(RESOLVE_NO_SYMLINKS)` relative to the link's directory, as a second link is
//! rare. At most [`MAX_LINKS`] links are followed. The result is a directory *descriptor*: callers do
//! everything after that relative to it (`openat`, `renameat`, `linkat`, `unlinkat`, `fsync`), so a
//! directory swapped for a symlink after the check changes nothing they do.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, OpenHow, ResolveFlag, openat, openat2, readlinkat};
use nix::sys::stat::{Mode, fstat, mkdirat};

use super::FileKind;
use super::dir::Dir;
use crate::error::{Error, Result};

/// Symbolic links followed in one resolution before it fails with `ELOOP` (the kernel's limit).
const MAX_LINKS: u32 = 40;

const PATH_ONLY: OFlag = OFlag::O_PATH.union(OFlag::O_NOFOLLOW).union(OFlag::O_CLOEXEC);

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
pub(super) struct Walk<'a> {
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
    pub(super) fn new(asked: &'a Path, create: bool) -> Self {
        Self {
            asked,
            links: 0,
            create,
        }
    }

    /// The directory `path`, relative to `base` (or the working directory).
    pub(super) fn dir(&mut self, base: Option<&Dir>, path: &Path) -> Result<Dir> {
        // Messages show the path as given: `state.json`, not `./state.json`.
        let shown = base.map_or_else(|| path.to_path_buf(), |b| b.path().join(path));
        let path = if path.as_os_str().is_empty() {
            Path::new(".")
        } else {
            path
        };
        if let Some(dir) = self.direct(base.map_or(AT_FDCWD, Dir::fd), path, shown)? {
            return Ok(dir);
        }
        self.walk(base, path)
    }

    /// One `openat2(RESOLVE_NO_SYMLINKS)` of the directory `path` relative to `at`: when no component
    /// is a link there is nothing to judge. `None` when the walk must go component by component: a
    /// link on the way (`ELOOP`), no `openat2` here (an old kernel, a seccomp filter), or a missing
    /// directory this walk creates.
    fn direct(&self, at: BorrowedFd<'_>, path: &Path, shown: PathBuf) -> Result<Option<Dir>> {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
        match openat2(at, path, how) {
            Ok(fd) => Dir::from_fd(fd, shown).map(Some),
            Err(Errno::ELOOP | Errno::ENOSYS | Errno::EPERM | Errno::EINVAL | Errno::E2BIG) => Ok(None),
            Err(Errno::ENOENT) if self.create => Ok(None),
            Err(e) => Err(Error::io("open directory", shown, e.into())),
        }
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
                    // Usually no other link follows: the rest (target and what came after the link)
                    // is then one more openat2, relative to the link's directory.
                    let rest = render_parts(&pending);
                    if let Some(dir) = self.direct(cur.fd(), &rest, cur.path().join(&rest))? {
                        return Ok(dir);
                    }
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

    pub(super) fn count_link(&mut self, link: &Path) -> Result<()> {
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

/// `parts` as a path again (an absolute one if they start at the root); `.` for none.
fn render_parts(parts: &VecDeque<Part>) -> PathBuf {
    if parts.is_empty() {
        return PathBuf::from(".");
    }
    let mut path = PathBuf::new();
    for part in parts {
        match part {
            Part::Root => path = PathBuf::from("/"),
            Part::Parent => path.push(".."),
            Part::Name(name) => path.push(name),
        }
    }
    path
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
