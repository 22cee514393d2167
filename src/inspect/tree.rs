//! A walked directory tree: the directories met, and a bounded chain of open descriptors from the
//! root down to the current directory, moved only by checked, descriptor-relative steps (see `walk.rs`
//! for why).
//!
//! * A directory is entered with `openat(parent, name, O_DIRECTORY | O_NOFOLLOW)`: a symlink in its
//!   place is refused by the kernel, never followed.
//! * At most [`MAX_OPEN_DIRS`] directory descriptors are open, whatever the depth: deeper levels keep
//!   only their device and inode. Climbing back opens `..` and checks it is the directory left; if that
//!   directory moved away, the level is found again by descending from the root, checking every step.
//! * A directory that is one of its own ancestors (a bind-mount loop) is not entered.
//! * Going back to a directory met earlier (for a removal after the scan) checks every directory on the
//!   way against the device and inode recorded when it was met.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, open, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};

use crate::error::{Error, Result};
use crate::sys::fs::FileKind;

/// The most directory descriptors a walk keeps open at once, whatever the depth of the tree.
pub const MAX_OPEN_DIRS: usize = 16;

/// A file's identity: its device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

impl FileId {
    pub(crate) fn of(st: &FileStat) -> Self {
        Self {
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }
}

/// Why a directory could not be entered (or entered again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Something else than a directory has its name now (a symlink, a file, ...).
    NotADirectory(&'static str),
    /// A different directory has its name now, or it moved away while the walk was below it.
    Moved,
    /// It is one of its own ancestors (a bind mount of a parent).
    Loop,
    /// Vanished: nothing has its name any more.
    Gone,
    /// The kernel refused (`EACCES`, `EIO`, ...).
    Os(Errno),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotADirectory("symbolic link") => f.write_str("is a symbolic link (never followed)"),
            Self::NotADirectory(kind) => write!(f, "is not a directory (a {kind})"),
            Self::Moved => f.write_str("was moved or replaced while being walked"),
            Self::Loop => f.write_str("is the same directory as one of its parents (a mount loop)"),
            Self::Gone => f.write_str("vanished"),
            Self::Os(errno) => write!(f, "cannot be opened: {}", errno.desc()),
        }
    }
}

/// A directory the walk has met: the tree of these is what a removal later finds its way back by.
#[derive(Debug)]
struct Node {
    parent: usize,
    name: OsString,
    id: FileId,
}

/// One level of the current chain: a node, and its descriptor while it is among the deepest
/// [`MAX_OPEN_DIRS`].
#[derive(Debug)]
struct Level {
    node: usize,
    fd: Option<OwnedFd>,
}

/// The directories of one walked tree, and a bounded chain of open descriptors from its root down to
/// the directory being looked at.
///
/// Invariant: `levels[0]` (the root) is always open, `levels[open_from..]` are open, and the levels
/// between are closed; a level left closed after a failed climb is unreachable and is left next.
#[derive(Debug)]
pub(crate) struct Tree {
    root: PathBuf,
    nodes: Vec<Node>,
    levels: Vec<Level>,
    open_from: usize,
    /// The identities on the current chain, to refuse a loop.
    chain: HashSet<FileId>,
}

impl Tree {
    /// Opens `root`, refusing a symlink unless `follow` (then the kernel resolves it, as the caller
    /// named it).
    pub(crate) fn open(root: &Path, follow: bool) -> Result<Self> {
        let mut flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        if !follow {
            flags |= OFlag::O_NOFOLLOW;
        }
        let fd = match open(root, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOTDIR) if !follow && is_symlink(root) => return Err(Error::Symlink { path: root.into() }),
            Err(Errno::ENOTDIR) => {
                return Err(Error::NotRegularFile {
                    path: root.into(),
                    kind: "file (expected a directory)",
                });
            }
            Err(e) => return Err(Error::io("open directory", root, e.into())),
        };
        let id = FileId::of(&fstat(&fd).map_err(|e| Error::io("stat directory", root, e.into()))?);
        Ok(Self {
            root: root.to_path_buf(),
            nodes: vec![Node {
                parent: 0,
                name: OsString::new(),
                id,
            }],
            levels: vec![Level { node: 0, fd: Some(fd) }],
            open_from: 1,
            chain: HashSet::from([id]),
        })
    }

    /// The directory the walk is in: the root, or the last one entered.
    pub(crate) fn node(&self) -> usize {
        self.levels.last().map_or(0, |l| l.node)
    }

    /// The descriptor of the directory the walk is in.
    pub(crate) fn dir(&self) -> Result<BorrowedFd<'_>, Refusal> {
        self.levels
            .last()
            .and_then(|l| l.fd.as_ref())
            .map(AsFd::as_fd)
            .ok_or(Refusal::Moved)
    }

    /// The path of `node`, for showing (the root as given, then the names met).
    pub(crate) fn path_of(&self, node: usize) -> PathBuf {
        let mut names = Vec::new();
        let mut at = node;
        while at != 0 {
            names.push(&self.nodes[at].name);
            at = self.nodes[at].parent;
        }
        let mut path = self.root.clone();
        path.extend(names.iter().rev());
        path
    }

    /// The name of `node` (for the root, the last component of its path) and its parent.
    pub(crate) fn name_of(&self, node: usize) -> (&OsStr, Option<usize>) {
        if node == 0 {
            return (self.root.file_name().unwrap_or_default(), None);
        }
        (&self.nodes[node].name, Some(self.nodes[node].parent))
    }

    /// Enters the subdirectory `name` of the current directory, met for the first time.
    pub(crate) fn enter(&mut self, name: &OsStr) -> Result<(), Refusal> {
        let (fd, id) = open_dir_at(self.dir()?, name)?;
        if !self.chain.insert(id) {
            return Err(Refusal::Loop);
        }
        self.nodes.push(Node {
            parent: self.node(),
            name: name.to_owned(),
            id,
        });
        self.push(self.nodes.len() - 1, fd);
        Ok(())
    }

    /// Goes back to the parent of the current directory. An `Err` means the parent could not be
    /// reached again (it moved away while the walk was below it): it is now current but unusable,
    /// and the caller should abandon it and leave again. The root is never left.
    pub(crate) fn leave(&mut self) -> Result<(), Refusal> {
        if self.levels.len() <= 1 {
            return Ok(());
        }
        let child = self.levels.pop().expect("more than the root");
        self.chain.remove(&self.nodes[child.node].id);
        let top = self.levels.len() - 1;
        if self.levels[top].fd.is_some() {
            return Ok(());
        }
        let want = self.nodes[self.levels[top].node].id;
        let fd = child
            .fd
            .and_then(|child| open_checked(child.as_fd(), OsStr::new(".."), want).ok())
            .map_or_else(|| self.reopen_from_root(top), Ok);
        self.open_from = top;
        let fd = fd.inspect_err(|_| self.open_from = top + 1)?;
        self.levels[top].fd = Some(fd);
        Ok(())
    }

    /// Makes `node` (a directory met by an earlier walk of this tree) the current directory, leaving
    /// and entering as needed and checking at every step that each directory is the one met then.
    /// On `Err`, the directory that could not be entered is returned with the reason.
    pub(crate) fn go_to(&mut self, node: usize) -> Result<(), (usize, Refusal)> {
        let mut chain = Vec::new();
        let mut at = node;
        while at != 0 {
            chain.push(at);
            at = self.nodes[at].parent;
        }
        chain.reverse();
        let common = self
            .levels
            .iter()
            .skip(1)
            .zip(&chain)
            .take_while(|(level, node)| level.node == **node)
            .count();
        while self.levels.len() > common + 1 {
            if let Err(refusal) = self.leave() {
                // The directory now current cannot be reached again: fatal only if it is on the way.
                if self.levels.len() - 1 <= common {
                    return Err((self.node(), refusal));
                }
            }
        }
        for &next in &chain[common..] {
            let dir = self.dir().map_err(|r| (self.node(), r))?;
            let (fd, id) = open_dir_at(dir, &self.nodes[next].name).map_err(|r| (next, r))?;
            if id != self.nodes[next].id {
                return Err((next, Refusal::Moved));
            }
            self.chain.insert(id);
            self.push(next, fd);
        }
        // `node` may be a level already current but lost (it moved away while the walk was below it).
        self.dir().map(|_| ()).map_err(|r| (node, r))
    }

    fn push(&mut self, node: usize, fd: OwnedFd) {
        self.levels.push(Level { node, fd: Some(fd) });
        // One for the root, the rest for the deepest levels: close the shallowest beyond that.
        if self.levels.len() - self.open_from >= MAX_OPEN_DIRS {
            self.levels[self.open_from].fd = None;
            self.open_from += 1;
        }
    }

    /// Opens level `top` again by descending from the root by name, checking every directory.
    fn reopen_from_root(&self, top: usize) -> Result<OwnedFd, Refusal> {
        let root = self.levels[0].fd.as_ref().expect("the root stays open");
        let mut fd: Option<OwnedFd> = None;
        for level in &self.levels[1..=top] {
            let node = &self.nodes[level.node];
            let parent = fd.as_ref().map_or(root.as_fd(), AsFd::as_fd);
            let next = open_checked(parent, &node.name, node.id).map_err(|_| Refusal::Moved)?;
            fd = Some(next);
        }
        fd.ok_or(Refusal::Moved)
    }
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Opens the directory `name` in `dir` without following a symlink, with its identity.
pub(crate) fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> Result<(OwnedFd, FileId), Refusal> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => {
            let st = fstat(&fd).map_err(Refusal::Os)?;
            Ok((fd, FileId::of(&st)))
        }
        // With O_DIRECTORY the kernel answers ENOTDIR for a symlink too: say which it is.
        Err(Errno::ENOTDIR) => Err(match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFREG.bits() => {
                Refusal::NotADirectory("regular file")
            }
            Ok(st) => Refusal::NotADirectory(FileKind::of_mode(st.st_mode).word()),
            Err(_) => Refusal::Gone,
        }),
        Err(Errno::ENOENT) => Err(Refusal::Gone),
        Err(e) => Err(Refusal::Os(e)),
    }
}

/// Opens the directory `name` in `dir` and checks that it is `want`.
fn open_checked(dir: BorrowedFd<'_>, name: &OsStr, want: FileId) -> Result<OwnedFd, Refusal> {
    let (fd, id) = open_dir_at(dir, name)?;
    if id == want { Ok(fd) } else { Err(Refusal::Moved) }
}
