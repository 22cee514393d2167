//! Atomic, durable replacement of a file, with an optional hard-link backup of the previous version.
//!
//! The sequence (`spec/anchors.md` section 4, in that order):
//!
//! 1. create a temporary file in the target's directory (`O_CREAT|O_EXCL`, unique name), so the final
//!    `rename` stays within one filesystem;
//! 2. write everything, give it the old file's permission bits, `fsync` it (without this, ext4 can
//!    persist the rename before the data: the "empty file after a crash" failure);
//! 3. backup: hard-link the current target to a temporary name, then rename that over the backup, so
//!    the backup is always a complete file (no copy, no window with a half-written backup);
//! 4. `rename` the temporary file over the target: readers see the old file or the new one, never a mix;
//! 5. `fsync` the directory, so the rename itself survives a crash.
//!
//! Any error (including a failed `fsync`) fails the call, removes the temporary files and leaves the
//! target as it was. Callers that need the read-modify-write to be atomic take a lock around it.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::libc;

use crate::error::{Error, Result};
use crate::failpoints::{Failpoint, hit};
use crate::sys::FileKind;

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

/// Replaces `path` with `data` atomically and durably. See the module docs for the exact sequence.
///
/// If `path` is a symbolic link, the file it points to is replaced (the link stays a link), and the
/// directory synced is the target's: a state file may legitimately be a symlink.
///
/// # Errors
/// [`Error::Io`] naming the failed step. The target is then unchanged and no temporary file remains.
pub fn atomic_write(path: &Path, data: &[u8], opts: &WriteOptions) -> Result<()> {
    let target = resolve_symlink(path)?;
    let dir = parent_dir(&target);
    let old_mode = match fs::metadata(&target) {
        Ok(meta) if meta.is_file() => Some(meta.permissions().mode() & 0o7777),
        Ok(meta) => {
            // "directory" maps to IsADirectoryError in Python, as `open()` of a directory raises.
            let kind = FileKind::of_mode(std::os::unix::fs::MetadataExt::mode(&meta)).word();
            return Err(Error::NotRegularFile { path: target, kind });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("stat", &target, e)),
    };
    let mut temp = TempFile::create(&target, &opts.temp)?;
    let result = (|| {
        temp.write(data)?;
        if let Some(mode) = opts.mode.or(old_mode) {
            hit(Failpoint::AtomicWriteChmod)
                .and_then(|()| temp.file.set_permissions(fs::Permissions::from_mode(mode)))
                .map_err(|e| Error::io("set permissions of", &temp.path, e))?;
        }
        if opts.durable {
            hit(Failpoint::AtomicWriteFsyncTemp)
                .and_then(|()| temp.file.sync_all())
                .map_err(|e| Error::io("fsync", &temp.path, e))?;
        }
        if let Some(backup) = &opts.backup
            && old_mode.is_some()
        {
            replace_backup(&target, backup, opts.durable)?;
        }
        hit(Failpoint::AtomicWriteRename)
            .and_then(|()| fs::rename(&temp.path, &target))
            .map_err(|e| Error::io("rename temporary file over", &target, e))?;
        temp.persisted = true;
        if opts.durable {
            hit(Failpoint::AtomicWriteFsyncDir)
                .and_then(|()| sync_dir(&dir))
                .map_err(|e| Error::io("fsync directory", &dir, e))?;
        }
        Ok(())
    })();
    drop(temp); // removes the temporary file unless it was renamed into place
    result
}

/// Makes `backup` a complete copy of `target`'s current content: hard-link `target` to a temporary
/// name, then rename that over `backup`. At every instant `backup` is either the previous backup or
/// the current target, never partial.
pub(crate) fn replace_backup(target: &Path, backup: &Path, durable: bool) -> Result<()> {
    if same_file(target, backup) {
        // Already the current version (a previous write failed after updating the backup). rename(2)
        // of two links to one inode "does nothing and succeeds", which would strand the staging link.
        return Ok(());
    }
    let staging = unique_sibling(backup, "bak");
    let linked = hit(Failpoint::AtomicWriteBackupLink).and_then(|()| fs::hard_link(target, &staging));
    if let Err(e) = linked {
        // No hard links here (some FUSE/SMB/exFAT mounts): fall back to copy + fsync.
        if !matches!(
            e.raw_os_error(),
            Some(libc::EPERM | libc::EXDEV | libc::ENOTSUP | libc::EMLINK)
        ) {
            return Err(Error::io("hard-link backup of", target, e));
        }
        copy_durably(target, &staging, durable).map_err(|e| {
            let _ = fs::remove_file(&staging);
            Error::io("copy backup of", target, e)
        })?;
    }
    hit(Failpoint::AtomicWriteBackupRename)
        .and_then(|()| fs::rename(&staging, backup))
        .map_err(|e| {
            let _ = fs::remove_file(&staging);
            Error::io("rename backup into place at", backup, e)
        })
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

fn copy_durably(from: &Path, to: &Path, durable: bool) -> io::Result<()> {
    let data = fs::read(from)?;
    let mut out = OpenOptions::new().write(true).create_new(true).mode(0o600).open(to)?;
    out.write_all(&data)?;
    out.set_permissions(fs::metadata(from)?.permissions())?;
    if durable {
        out.sync_all()?;
    }
    Ok(())
}

/// A temporary file that removes itself unless `persisted`.
struct TempFile {
    path: PathBuf,
    file: File,
    persisted: bool,
}

impl TempFile {
    fn create(target: &Path, name: &TempName) -> Result<Self> {
        hit(Failpoint::AtomicWriteCreateTemp).map_err(|e| Error::io("create temporary file for", target, e))?;
        let open = |path: &Path| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o666)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
                .open(path)
        };
        let (path, file) = match name {
            TempName::Unique => loop {
                let path = unique_sibling(target, "tmp");
                match open(&path) {
                    Ok(file) => break (path, file),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(Error::io("create temporary file", path, e)),
                }
            },
            TempName::Fixed(path) => {
                // A leftover from a crashed writer: the caller holds the writers' lock, so it is stale.
                match fs::remove_file(path) {
                    Ok(()) => log::info!(target: "ferrolock::durable", "removed stale {}", path.display()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("remove stale temporary file", path, e)),
                }
                let file = open(path).map_err(|e| Error::io("create temporary file", path, e))?;
                (path.clone(), file)
            }
        };
        Ok(Self {
            path,
            file,
            persisted: false,
        })
    }

    fn write(&mut self, data: &[u8]) -> Result<()> {
        // Write in two halves with a fault point between them, so a crash mid-write can be simulated.
        let (first, second) = data.split_at(data.len() / 2);
        self.file
            .write_all(first)
            .and_then(|()| hit(Failpoint::AtomicWriteWrite))
            .and_then(|()| self.file.write_all(second))
            .map_err(|e| Error::io("write temporary file", &self.path, e))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// `.<name>.<tag>-<pid>-<nanos>-<n>` in `path`'s directory: unique across processes (pid) and
/// within one (a counter), and hidden so directory listings and globs skip it.
fn unique_sibling(path: &Path, tag: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut name = OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".{tag}-{}-{nanos:x}-{n}", std::process::id()));
    parent_dir(path).join(name)
}

pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Follows a symlinked target to the file it names (one level at a time, relative links resolved
/// against the link's directory), so the rename replaces that file and not the link.
pub(crate) fn resolve_symlink(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match fs::read_link(&current) {
            Ok(dest) => current = parent_dir(&current).join(dest),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) || e.kind() == io::ErrorKind::NotFound => {
                return Ok(current);
            }
            Err(e) => return Err(Error::io("read symlink", &current, e)),
        }
    }
    Err(Error::io(
        "resolve symlink",
        path,
        io::Error::from_raw_os_error(libc::ELOOP),
    ))
}

/// `fsync` on a directory, making renames and creations in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes regular files named `.<name>.<tag>-*` beside `path` (the names `atomic_write` gives its
/// temporary files and backup staging links). Only safe while holding a lock that every writer of
/// `path` holds while such a file exists: then they are all leftovers of crashed writers.
pub(crate) fn sweep(path: &Path, tag: &str) {
    let Some(name) = path.file_name() else { return };
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(format!(".{tag}-"));
    let dir = parent_dir(path);
    let Ok(entries) = fs::read_dir(&dir) else { return };
    for entry in entries.flatten() {
        let stale =
            entry.file_name().as_bytes().starts_with(prefix.as_bytes()) && entry.file_type().is_ok_and(|t| t.is_file());
        if !stale {
            continue;
        }
        let leftover = entry.path();
        match fs::remove_file(&leftover) {
            Ok(()) => {
                log::info!(target: "ferrolock::durable", "removed {} left by a crashed writer", leftover.display());
            }
            Err(e) => log::warn!(target: "ferrolock::durable", "could not remove {}: {e}", leftover.display()),
        }
    }
}
