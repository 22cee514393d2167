//! Files another user may control: what kind a file is, and opening one for inspection without
//! following links.

use std::fs::File;
use std::io;
use std::path::Path;

use nix::fcntl::{AT_FDCWD, OFlag, openat};
use nix::sys::stat::{Mode, SFlag};

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
/// instead of being followed, a FIFO does not block the open, and the descriptor is not inherited
/// by programs the application starts.
const UNTRUSTED_READ: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_NONBLOCK)
    .union(OFlag::O_CLOEXEC);

/// Opens `path` read-only to inspect it (probe its lock, read its record): never through a final
/// symlink, never blocking on a FIFO. The caller checks the file's kind on the descriptor.
pub(crate) fn open_untrusted(path: &Path) -> io::Result<File> {
    Ok(File::from(openat(AT_FDCWD, path, UNTRUSTED_READ, Mode::empty())?))
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
