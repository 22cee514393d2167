//! Atomic, durable replacement of a file, with an optional hard-link backup of the previous version.
//!
//! The sequence, in that order:
//!
//! 1. find the target's directory under the link rule ([`locate`]: in a directory other users can
//!    write, a symlink is followed only if it belongs to the caller or the directory's owner, on any
//!    component of the path), and do every later step relative to that directory's descriptor, so
//!    nothing swapped in after the check is written through;
//! 2. create a temporary file in that directory (`O_CREAT|O_EXCL|O_NOFOLLOW`, unique name, so the
//!    final rename stays within one filesystem) with the final mode (the old file's, or the one asked
//!    for), and set exactly that mode before the first byte: the new content is never readable by
//!    anyone the finished file would not let read it;
//! 3. write everything and `fsync` it (without this, ext4 can persist the rename before the data: the
//!    "empty file after a crash" failure);
//! 4. backup: hard-link the current target to a staging name, then rename that over the backup, so the
//!    backup is always a complete file (no copy, no window with a half-written backup);
//! 5. rename the temporary file over the target: readers see the old file or the new one, never a mix;
//! 6. `fsync` the directory, so the rename itself survives a crash.
//!
//! Any error (including a failed `fsync`) fails the call, removes the temporary files and leaves the
//! target as it was. Callers that need the read-modify-write to be atomic take a lock around it.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, renameat};
use nix::sys::stat::{FileStat, Mode, fchmod};
use nix::unistd::{UnlinkatFlags, linkat, unlinkat};

use crate::error::{Error, Result};
use crate::failpoints::{Failpoint, hit};
use crate::sys::fs::{create_new_at, open_untrusted_at};
use crate::sys::{FileKind, FinalLink, Located, locate};

/// How [`atomic_write`] names its temporary file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TempName {
    /// `.<name>.tmp-<pid>-<n>` beside the target: unique, safe without a lock.
    #[default]
    Unique,
    /// A fixed path (a legacy layout such as `BlackBox5`'s `STATE.tmp`). Only safe while the caller
    /// holds a lock that all writers take; a leftover from a crash is replaced.
    Fixed(PathBuf),
}

/// Options for [`atomic_write`].
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// Permission bits for the new file. `None` keeps the old file's bits, or uses `0o666` minus the
    /// umask for a new file (what `open()` would give).
    pub mode: Option<u32>,
    /// Keep the previous version of the target here (by hard link; by copy only where the filesystem
    /// has no hard links). Nothing is done if the target does not exist yet.
    pub backup: Option<PathBuf>,
    /// `fsync` the file and the directory. Default `true`; `false` only for scratch data.
    pub durable: bool,
    /// The temporary file's name.
    pub temp: TempName,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            mode: None,
            backup: None,
            durable: true,
            temp: TempName::Unique,
        }
    }
}

/// Why a file of another user in a shared directory is not replaced or read as ours.
pub(crate) const NOT_YOURS: &str = "its owner can replace or remove it at any moment";

/// Replaces `path` with `data` atomically and durably. See the module docs for the exact sequence.
///
/// If `path` is a symbolic link that the link rule lets ferrolock follow (outside shared directories,
/// or one that belongs to the caller or to the directory's owner), the file it points to is replaced
/// (the link stays a link) and the directory synced is the target's: a state file may legitimately
/// be a symlink.
///
/// # Errors
/// [`Error::UntrustedLink`] / [`Error::UntrustedFile`] for a path through something another user
/// controls; [`Error::Io`] naming the failed step. The target is then unchanged and no temporary file
/// remains. [`Error::InvalidArgument`] for a `mode` beyond `0o777`, before anything is touched.
pub fn atomic_write(path: &Path, data: &[u8], opts: &WriteOptions) -> Result<()> {
    opts.mode.map(crate::mode::check).transpose()?;
    let target = locate(path, FinalLink::Follow, false)?;
    write_at(&target, data, opts)
}

/// [`atomic_write`] to a target already located (its symlinks followed under the rule).
pub(crate) fn write_at(target: &Located, data: &[u8], opts: &WriteOptions) -> Result<()> {
    let old_mode = existing(target)?.map(|st| st.st_mode & 0o7777);
    let mode = opts.mode.or(old_mode);
    let fixed = match &opts.temp {
        TempName::Fixed(path) => Some(locate(path, FinalLink::Keep, false)?),
        TempName::Unique => None,
    };
    let mut temp = match &fixed {
        Some(fixed) => TempFile::create_fixed(fixed, mode)?,
        None => TempFile::create_unique(target, mode)?,
    };
    let result = (|| {
        temp.write(data)?;
        if opts.durable {
            hit(Failpoint::AtomicWriteFsyncTemp)
                .and_then(|()| temp.file.sync_all())
                .map_err(|e| Error::io("fsync", temp.path(), e))?;
        }
        if let Some(backup) = &opts.backup
            && old_mode.is_some()
        {
            replace_backup(target, backup, opts.durable)?;
        }
        hit(Failpoint::AtomicWriteRename)
            .and_then(|()| {
                Ok(renameat(
                    temp.at.dir.fd(),
                    temp.at.name.as_os_str(),
                    target.dir.fd(),
                    target.name.as_os_str(),
                )?)
            })
            .map_err(|e| Error::io("rename temporary file over", target.path(), e))?;
        temp.persisted = true;
        if opts.durable {
            hit(Failpoint::AtomicWriteFsyncDir)
                .and_then(|()| target.dir.sync())
                .map_err(|e| Error::io("fsync directory", target.dir.path(), e))?;
        }
        Ok(())
    })();
    drop(temp); // removes the temporary file unless it was renamed into place
    result
}

/// The status of the file at `target`, `None` if there is none. Anything but a regular file is an
/// error, and so is another user's file in a shared directory (see [`NOT_YOURS`]).
pub(crate) fn existing(target: &Located) -> Result<Option<FileStat>> {
    let st = target
        .dir
        .stat(&target.name)
        .map_err(|e| Error::io("stat", target.path(), e))?;
    let Some(st) = st else { return Ok(None) };
    match FileKind::of_mode(st.st_mode) {
        FileKind::Regular if target.dir.trusts(st.st_uid) => Ok(Some(st)),
        FileKind::Regular => Err(Error::UntrustedFile {
            path: target.path(),
            owner: st.st_uid,
            dir_owner: target.dir.uid(),
            why: NOT_YOURS,
        }),
        kind => Err(Error::NotRegularFile {
            path: target.path(),
            kind: kind.word(),
        }),
    }
}

/// Makes `backup` a complete copy of `target`'s current content: hard-link `target` to a staging
/// name beside the backup, then rename that over `backup`. At every instant `backup` is either the
/// previous backup or the current target, never partial. A symlink at `backup` is replaced, never
/// followed.
pub(crate) fn replace_backup(target: &Located, backup: &Path, durable: bool) -> Result<()> {
    let backup = locate(backup, FinalLink::Keep, false)?;
    if same_file(target, &backup) {
        // Already the current version (a previous write failed after updating the backup). rename(2)
        // of two links to one inode "does nothing and succeeds", which would strand the staging link.
        return Ok(());
    }
    let staging = unique_name(&backup.name, "bak");
    let remove_staging = || {
        let _ = unlinkat(backup.dir.fd(), staging.as_os_str(), UnlinkatFlags::NoRemoveDir);
    };
    let linked = hit(Failpoint::AtomicWriteBackupLink).and_then(|()| {
        Ok(linkat(
            target.dir.fd(),
            target.name.as_os_str(),
            backup.dir.fd(),
            staging.as_os_str(),
            AtFlags::empty(),
        )?)
    });
    if let Err(e) = linked {
        // No hard links here (some FUSE/SMB/exFAT mounts) or the backup is on another filesystem:
        // fall back to a copy, made as carefully as the temporary file of a write.
        if !matches!(
            e.raw_os_error(),
            Some(nix::libc::EPERM | nix::libc::EXDEV | nix::libc::ENOTSUP | nix::libc::EMLINK)
        ) {
            return Err(Error::io("hard-link backup of", target.path(), e));
        }
        copy_durably(target, &backup, &staging, durable).map_err(|e| {
            remove_staging();
            Error::io("copy backup of", target.path(), e)
        })?;
    }
    hit(Failpoint::AtomicWriteBackupRename)
        .and_then(|()| {
            Ok(renameat(
                backup.dir.fd(),
                staging.as_os_str(),
                backup.dir.fd(),
                backup.name.as_os_str(),
            )?)
        })
        .map_err(|e| {
            remove_staging();
            Error::io("rename backup into place at", backup.path(), e)
        })
}

fn same_file(a: &Located, b: &Located) -> bool {
    match (a.dir.stat(&a.name), b.dir.stat(&b.name)) {
        (Ok(Some(x)), Ok(Some(y))) => x.st_dev == y.st_dev && x.st_ino == y.st_ino,
        _ => false,
    }
}

/// Copies `from` to the new file `name` beside `to`, created with `from`'s mode before its first byte.
fn copy_durably(from: &Located, to: &Located, name: &OsStr, durable: bool) -> io::Result<()> {
    let source = open_untrusted_at(from.dir.fd(), &from.name)?;
    let meta = source.metadata()?;
    let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    (&source).read_to_end(&mut data)?;
    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777;
    let mut out = create_new_at(to.dir.fd(), name, mode)?;
    fchmod(&out, Mode::from_bits_truncate(mode))?;
    out.write_all(&data)?;
    if durable {
        out.sync_all()?;
    }
    Ok(())
}

/// A temporary file that removes itself unless `persisted`.
struct TempFile<'a> {
    at: TempAt<'a>,
    file: File,
    persisted: bool,
}

/// Where a temporary file is: a name in a located directory (the target's, or a fixed path's).
struct TempAt<'a> {
    dir: &'a crate::sys::Dir,
    name: OsString,
}

impl<'a> TempFile<'a> {
    /// `.<name>.tmp-*` beside the target.
    fn create_unique(target: &'a Located, mode: Option<u32>) -> Result<Self> {
        hit(Failpoint::AtomicWriteCreateTemp).map_err(|e| Error::io("create temporary file for", target.path(), e))?;
        loop {
            let name = unique_name(&target.name, "tmp");
            match create_new_at(target.dir.fd(), &name, mode.unwrap_or(0o666)) {
                Ok(file) => return Self::with_mode(TempAt { dir: &target.dir, name }, file, mode),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("create temporary file", target.dir.join(&name), e)),
            }
        }
    }

    /// The fixed path, replacing a leftover of a crashed writer (the caller holds the writers' lock,
    /// so any file there is stale; a symlink there is removed, not followed).
    fn create_fixed(fixed: &'a Located, mode: Option<u32>) -> Result<Self> {
        hit(Failpoint::AtomicWriteCreateTemp).map_err(|e| Error::io("create temporary file for", fixed.path(), e))?;
        match unlinkat(fixed.dir.fd(), fixed.name.as_os_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) => log::info!(target: "ferrolock::durable", "removed stale {}", fixed.path().display()),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::io("remove stale temporary file", fixed.path(), e.into())),
        }
        let file = create_new_at(fixed.dir.fd(), &fixed.name, mode.unwrap_or(0o666))
            .map_err(|e| Error::io("create temporary file", fixed.path(), e))?;
        Self::with_mode(
            TempAt {
                dir: &fixed.dir,
                name: fixed.name.clone(),
            },
            file,
            mode,
        )
    }

    /// Sets the final mode exactly (the umask may have taken bits away) before anything is written.
    fn with_mode(at: TempAt<'a>, file: File, mode: Option<u32>) -> Result<Self> {
        let temp = Self {
            at,
            file,
            persisted: false,
        };
        if let Some(mode) = mode {
            hit(Failpoint::AtomicWriteChmod)
                .and_then(|()| Ok(fchmod(&temp.file, Mode::from_bits_truncate(mode))?))
                .map_err(|e| Error::io("set permissions of", temp.path(), e))?;
        }
        Ok(temp)
    }

    fn path(&self) -> PathBuf {
        self.at.dir.join(&self.at.name)
    }

    fn write(&mut self, data: &[u8]) -> Result<()> {
        // Write in two halves with a fault point between them, so a crash mid-write can be simulated.
        let (first, second) = data.split_at(data.len() / 2);
        self.file
            .write_all(first)
            .and_then(|()| hit(Failpoint::AtomicWriteWrite))
            .and_then(|()| self.file.write_all(second))
            .map_err(|e| Error::io("write temporary file", self.path(), e))
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = unlinkat(self.at.dir.fd(), self.at.name.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// `.<name>.<tag>-<pid>-<nanos>-<n>`: unique across processes (pid) and within one (a counter), and
/// hidden so directory listings and globs skip it.
fn unique_name(name: &OsStr, tag: &str) -> OsString {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut unique = OsString::from(".");
    unique.push(name);
    unique.push(format!(".{tag}-{}-{nanos:x}-{n}", std::process::id()));
    unique
}

/// `fsync` on a directory, making renames and creations in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes regular files named `.<name>.<tag>-*` beside `at` (the names `atomic_write` gives its
/// temporary files and backup staging links). Only safe while holding a lock that every writer of
/// the file holds while such a file exists: then they are all leftovers of crashed writers.
pub(crate) fn sweep(at: &Located, tag: &str) {
    let mut prefix = OsString::from(".");
    prefix.push(&at.name);
    prefix.push(format!(".{tag}-"));
    let Ok(names) = crate::sys::fs::entry_names(at.dir.fd()) else {
        return;
    };
    for name in names {
        let stale = name.as_bytes().starts_with(prefix.as_bytes())
            && matches!(at.dir.stat(&name), Ok(Some(st)) if FileKind::of_mode(st.st_mode) == FileKind::Regular);
        if !stale {
            continue;
        }
        let leftover = at.dir.join(&name);
        match unlinkat(at.dir.fd(), name.as_os_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) => {
                log::info!(target: "ferrolock::durable", "removed {} left by a crashed writer", leftover.display());
            }
            Err(e) => log::warn!(target: "ferrolock::durable", "could not remove {}: {e}", leftover.display()),
        }
    }
}
