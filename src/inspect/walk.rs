//! Walking a directory tree that other users may write to, one descriptor-relative step at a time.
//!
//! A walker that works by path can be steered: swap a directory for a symlink between the moment it
//! is listed and the moment it is opened (or between a scan and a removal) and the walker reads, or
//! removes, files outside the tree. Here every step is relative to a directory already opened and
//! checked (see `tree.rs`), files are opened, judged and removed relative to their directory's
//! descriptor (see `candidate.rs`), and paths are built only to be shown, so a chain deeper than
//! `PATH_MAX` is walked like any other. Whatever goes wrong with one entry is handed to the visitor as
//! a skip, and the walk goes on.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::AtFlags;
use nix::libc;
use nix::sys::stat::{SFlag, fstatat};

use super::tree::{Refusal, Tree};
use crate::sys;

/// What a directory entry is, as far as a walk cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Directory,
    File,
    /// A symlink, FIFO, socket or device: never entered, never a lock.
    Other,
}

/// One directory entry, as listed.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) name: OsString,
    pub(crate) kind: Kind,
}

/// Room for a few hundred entries per `getdents64` call.
const LISTING_CHUNK: usize = 32 * 1024;

/// The entries of `dir` (without `.` and `..`), in the order the kernel lists them. The type comes
/// from the listing itself, or, on filesystems that do not report it, from `fstatat` without
/// following. `dir` must be freshly opened: the listing reads from its offset to the end.
pub(crate) fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<Entry>> {
    let mut buf = Vec::with_capacity(LISTING_CHUNK);
    let mut entries = Vec::new();
    while sys::getdents64(dir, &mut buf)? > 0 {
        let mut records = buf.as_slice();
        while !records.is_empty() {
            // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
            let malformed = || io::Error::new(io::ErrorKind::InvalidData, "malformed directory listing");
            let len = records
                .get(16..18)
                .map(|b| usize::from(u16::from_ne_bytes([b[0], b[1]])));
            let record = len
                .filter(|&len| len > 19)
                .and_then(|len| records.get(..len))
                .ok_or_else(malformed)?;
            records = &records[record.len()..];
            let name = &record[19..];
            let name = OsStr::from_bytes(&name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())]);
            if name == "." || name == ".." {
                continue;
            }
            let kind = match record[18] {
                libc::DT_DIR => Kind::Directory,
                libc::DT_REG => Kind::File,
                libc::DT_UNKNOWN => kind_by_stat(dir, name),
                _ => Kind::Other,
            };
            entries.push(Entry {
                name: name.to_owned(),
                kind,
            });
        }
    }
    Ok(entries)
}

/// An I/O error in words, as `strerror` says it ("Permission denied").
fn describe(e: &io::Error) -> String {
    e.raw_os_error().map_or_else(
        || e.to_string(),
        |code| nix::errno::Errno::from_raw(code).desc().to_owned(),
    )
}

fn kind_by_stat(dir: BorrowedFd<'_>, name: &OsStr) -> Kind {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits() => Kind::Directory,
        Ok(st) if st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFREG.bits() => Kind::File,
        _ => Kind::Other,
    }
}

/// What a walk calls back with.
pub(crate) trait Visitor {
    /// Whether to enter the directory `name` (at `path`).
    fn descend(&mut self, name: &OsStr, path: &Path) -> bool;
    /// A regular file `name` (at `path`) in the tree's current directory.
    fn file(&mut self, tree: &Tree, name: &OsStr, path: PathBuf);
    /// Something at `path` that could not be looked at, and why.
    fn skip(&mut self, path: PathBuf, reason: String);
}

/// Walks `tree` depth first, in listing order, from its current directory (the root).
pub(crate) fn walk(tree: &mut Tree, visitor: &mut dyn Visitor) {
    let root = tree.path_of(tree.node());
    let listed = tree
        .dir()
        .map_err(|r| r.to_string())
        .and_then(|fd| list(fd).map_err(|e| describe(&e)));
    let entries = match listed {
        Ok(entries) => entries,
        Err(reason) => return visitor.skip(root, format!("cannot be listed: {reason}")),
    };
    let mut frames = vec![(entries.into_iter(), root)];
    while let Some((entries, path)) = frames.last_mut() {
        let Some(entry) = entries.next() else {
            frames.pop();
            climb(tree, &mut frames, visitor);
            continue;
        };
        let path = path.join(&entry.name);
        match entry.kind {
            Kind::File => visitor.file(tree, &entry.name, path),
            Kind::Directory if visitor.descend(&entry.name, &path) => {
                if let Err(refusal) = tree.enter(&entry.name) {
                    if refusal != Refusal::Gone {
                        visitor.skip(path, refusal.to_string());
                    }
                    continue;
                }
                match tree.dir().map(list) {
                    Ok(Ok(entries)) => frames.push((entries.into_iter(), path)),
                    Ok(Err(e)) => {
                        visitor.skip(path, format!("cannot be listed: {}", describe(&e)));
                        climb(tree, &mut frames, visitor);
                    }
                    Err(refusal) => {
                        visitor.skip(path, refusal.to_string());
                        climb(tree, &mut frames, visitor);
                    }
                }
            }
            Kind::Directory | Kind::Other => {}
        }
    }
}

/// Leaves the current directory; every parent that cannot be reached again is abandoned (reported
/// with what it had left unexamined) and left in turn.
fn climb(tree: &mut Tree, frames: &mut Vec<(std::vec::IntoIter<Entry>, PathBuf)>, visitor: &mut dyn Visitor) {
    while let Err(refusal) = tree.leave() {
        let Some((rest, path)) = frames.pop() else { return };
        let left = rest.len();
        visitor.skip(path, format!("{refusal}; {left} entries of it were not examined"));
    }
}
