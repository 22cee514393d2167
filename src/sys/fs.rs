//! Files another user may control: what kind a file is, opening one for inspection without following
//! links, and (in [`resolve`]) reaching a path under the kernel's link-protection rules, so that the
//! directory every later operation is relative to is the one that was checked.

mod dir;
mod resolve;

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::{AT_FDCWD, OFlag, openat};
use nix::sys::stat::{Mode, SFlag};

pub(crate) use dir::{Dir, euid};
pub(crate) use resolve::{FinalLink, Located, locate, open_file};

/// What kind of file a mode describes, in the words error messages and logs use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    Regular,
    Directory,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Unknown,
}

impl FileKind {
    /// The kind encoded in an `st_mode`.
    pub(crate) fn of_mode(mode: u32) -> Self {
        match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
            SFlag::S_IFREG => Self::Regular,
            SFlag::S_IFDIR => Self::Directory,
            SFlag::S_IFLNK => Self::Symlink,
            SFlag::S_IFIFO => Self::Fifo,
            SFlag::S_IFSOCK => Self::Socket,
            SFlag::S_IFCHR => Self::CharDevice,
            SFlag::S_IFBLK => Self::BlockDevice,
            _ => Self::Unknown,
        }
    }

    /// "directory", "FIFO", ...: what `path is a {word}, not a regular file` says.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Self::Regular => "regular file",
            Self::Directory => "directory",
            Self::Symlink => "symbolic link",
            Self::Fifo => "FIFO",
            Self::Socket => "socket",
            Self::CharDevice => "character device",
            Self::BlockDevice => "block device",
            Self::Unknown => "special file",
        }
    }
}

/// The flags every read-only look at an untrusted file uses: a final symlink is an error (`ELOOP`)
/// instead of being followed, a FIFO does not block the open, a terminal device never becomes the
/// controlling terminal, and the descriptor is not inherited by programs the application starts.
const UNTRUSTED_READ: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_NONBLOCK)
    .union(OFlag::O_NOCTTY)
    .union(OFlag::O_CLOEXEC);

/// Opens `path` read-only to inspect it (probe its lock, read its record): never through a final
/// symlink, never blocking on a FIFO. The caller checks the file's kind on the descriptor.
pub(crate) fn open_untrusted(path: &Path) -> io::Result<File> {
    Ok(File::from(openat(AT_FDCWD, path, UNTRUSTED_READ, Mode::empty())?))
}

/// Creates the new file `name` in the directory open as `dir`, read-write, with `mode` (minus the
/// umask) from the start: `O_CREAT|O_EXCL|O_NOFOLLOW`, so an existing file or a planted symlink at
/// `name` is an error (`EEXIST`), never opened.
pub(crate) fn create_new_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<File> {
    let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    Ok(File::from(openat(dir, name, flags, Mode::from_bits_truncate(mode))?))
}

/// The names in the directory open as `dir` (without `.` and `..`), read through that descriptor.
pub(crate) fn entry_names(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut listing = nix::dir::Dir::openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for entry in listing.iter() {
        let entry = entry?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name != "." && name != ".." {
            names.push(name.to_os_string());
        }
    }
    Ok(names)
}

/// [`open_untrusted`] for the entry `name` of the directory open as `dir`.
pub(crate) fn open_untrusted_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<File> {
    Ok(File::from(openat(dir, name, UNTRUSTED_READ, Mode::empty())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_one_wording() {
        assert_eq!(FileKind::of_mode(0o100_644), FileKind::Regular);
        assert_eq!(FileKind::of_mode(0o040_755).word(), "directory");
        assert_eq!(FileKind::of_mode(0o010_644).word(), "FIFO");
        assert_eq!(FileKind::of_mode(0o120_777).word(), "symbolic link");
        assert_eq!(FileKind::of_mode(0).word(), "special file");
    }
}
