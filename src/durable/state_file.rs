//! [`StateFile`]: a file that any number of processes update by a locked read-modify-write.
//!
//! * Every change happens while holding an exclusive [`FileLock`] on a separate lock file. The state
//!   file itself cannot carry the lock: each write replaces it by `rename`, and a flock lives on the
//!   inode that rename swaps out.
//! * Every write is an [`atomic_write`]: readers that take no lock see the old content or the new, never
//!   a mix, and a crash at any point leaves the file complete (old or new) and the backup complete (the
//!   previous version, kept by hard link).
//! * Every operation finds the file under the link rule (see [`atomic_write`]): in a directory other
//!   users can write, a symlink that is neither the caller's nor the directory owner's is never
//!   followed, on any component of the path, and another user's file there is neither read nor
//!   replaced. A symlinked state file of one's own is followed (the link stays a link).
//! * A crashed writer can leave a temporary file or a backup staging link behind. The next writer
//!   removes them while it holds the lock, when nobody else can be writing, so crashes never pile up
//!   litter (this assumes every writer of the file goes through the same lock file).
//!
//! ```
//! use ferrolock::durable::{StateFile, StateFileOptions};
//! use ferrolock::Wait;
//!
//! let dir = std::env::temp_dir().join(format!("ferrolock-state-doc-{}", std::process::id()));
//! let state = StateFile::new(dir.join("counter.txt"), &StateFileOptions::default())?;
//! let edit = state.edit(Wait::Forever)?; // exclusive until `edit` is committed or dropped
//! let n: u64 = edit.current().map_or(0, |b| String::from_utf8_lossy(b).trim().parse().unwrap_or(0));
//! edit.commit((n + 1).to_string().as_bytes())?;
//! assert_eq!(state.read()?.as_deref(), Some(&b"1"[..]));
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), ferrolock::Error>(())
//! ```

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::atomic::{NOT_YOURS, TempName, WriteOptions, existing, replace_backup, sweep, write_at};
use crate::error::{Error, Result};
use crate::failpoints::{Failpoint, hit};
use crate::lock::{FileLock, LockOptions, Owner, Wait, WaitControl};
use crate::sys::fs::open_untrusted_at;
use crate::sys::{FileKind, FinalLink, ForkLocal, Located, locate};

/// Where a [`StateFile`] keeps its lock, backup and temporary file.
#[derive(Clone, Debug, Default)]
pub struct StateFileOptions {
    /// The lock file. Default: the state file's path plus `.lock`.
    pub lock_path: Option<PathBuf>,
    /// Keep the previous version here on every write (by hard link). Default: no backup.
    pub backup_path: Option<PathBuf>,
    /// A fixed temporary path (legacy layouts such as `STATE.tmp`). Default: a unique hidden name
    /// beside the file.
    pub temp_path: Option<PathBuf>,
    /// Permission bits of the file. Default: keep the old file's (a new file gets `0o666` minus the
    /// umask).
    pub mode: Option<u32>,
    /// Written into the lock's holder record while a process holds it.
    pub purpose: Option<String>,
}

/// A file updated only under its lock and only by atomic, durable replacement. See the module docs.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    lock: FileLock,
    write: WriteOptions,
    /// Owners inside an edit of this object, with the fork generation they were recorded in. A nested
    /// edit by the same owner would re-enter the lock, and the outer edit's write would then silently
    /// undo the inner one's: refused instead. A forked child edits nothing of its parent's.
    editing: ForkLocal<Vec<Owner>>,
}

impl StateFile {
    /// A state file at `path`. Nothing is created until the first write (the lock file at the first
    /// lock).
    ///
    /// # Errors
    /// [`Error::InvalidName`] if `path` is empty or has no file name, or if the lock, backup or
    /// temporary path is the state file itself (the lock would be replaced by the first write);
    /// [`Error::InvalidArgument`] for a `mode` beyond `0o777`.
    pub fn new(path: impl Into<PathBuf>, options: &StateFileOptions) -> Result<Self> {
        options.mode.map(crate::mode::check).transpose()?;
        let path = path.into();
        if path.file_name().is_none() {
            return Err(Error::InvalidName {
                what: "state file path",
                name: path.display().to_string(),
                reason: "has no file name",
            });
        }
        let lock_path = options
            .lock_path
            .clone()
            .unwrap_or_else(|| with_suffix_appended(&path, ".lock"));
        for (what, other) in [
            ("lock path", Some(&lock_path)),
            ("backup path", options.backup_path.as_ref()),
            ("temporary path", options.temp_path.as_ref()),
        ] {
            if other.is_some_and(|p| p == &path) {
                return Err(Error::InvalidName {
                    what,
                    name: path.display().to_string(),
                    reason: "is the state file itself",
                });
            }
        }
        let lock = FileLock::new(
            lock_path,
            &LockOptions {
                purpose: options.purpose.clone(),
                ..LockOptions::default()
            },
        )?;
        Ok(Self {
            path,
            lock,
            editing: ForkLocal::new(Vec::new(), Vec::new),
            write: WriteOptions {
                mode: options.mode,
                backup: options.backup_path.clone(),
                durable: true,
                temp: options.temp_path.clone().map_or(TempName::Unique, TempName::Fixed),
            },
        })
    }

    /// The state file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lock every writer takes.
    #[must_use]
    pub fn lock(&self) -> &FileLock {
        &self.lock
    }

    /// Where the previous version is kept, if anywhere.
    #[must_use]
    pub fn backup_path(&self) -> Option<&Path> {
        self.write.backup.as_deref()
    }

    /// The fixed temporary path, if one was configured.
    #[must_use]
    pub fn temp_path(&self) -> Option<&Path> {
        match &self.write.temp {
            TempName::Fixed(p) => Some(p),
            TempName::Unique => None,
        }
    }

    /// The current content, or `None` if there is no file. Takes no lock: every write is an atomic
    /// rename, so this sees a complete version.
    pub fn read(&self) -> Result<Option<Vec<u8>>> {
        read_optional(&self.path)
    }

    /// The backup's content, or `None` if there is no backup (or none configured).
    pub fn read_backup(&self) -> Result<Option<Vec<u8>>> {
        match &self.write.backup {
            Some(backup) => read_optional(backup),
            None => Ok(None),
        }
    }

    /// Takes the lock for the calling thread (waiting as `wait` allows) and reads the current content.
    pub fn edit(&self, wait: Wait) -> Result<StateEdit<'_>> {
        self.edit_as(Owner::current_thread(), wait, &mut WaitControl::default())
    }

    /// [`edit`](Self::edit) for an explicit owner, with cancellation and interrupt checks.
    ///
    /// # Errors
    /// [`Error::NestedEdit`] if `owner` is already inside an edit of this object (see
    /// [`begin_edit`](Self::begin_edit)); the lock's errors; the read's.
    pub fn edit_as(&self, owner: Owner, wait: Wait, ctl: &mut WaitControl<'_>) -> Result<StateEdit<'_>> {
        self.begin_edit(owner)?;
        if let Err(e) = self.lock.acquire_as(owner, wait, ctl) {
            self.end_edit(owner);
            return Err(e);
        }
        let mut edit = StateEdit {
            file: self,
            owner,
            current: None,
        };
        edit.current = self.read()?; // on error, dropping `edit` releases the lock and ends the edit
        Ok(edit)
    }

    /// Records that `owner` starts an edit of this object, refusing a nested one: the nested edit
    /// would re-enter the lock, and the outer edit's write would silently undo the inner one's. For
    /// bindings that cannot hold a [`StateEdit`] across calls (a Python `with` block); pair it with
    /// [`end_edit`](Self::end_edit). [`edit_as`](Self::edit_as) does both.
    ///
    /// # Errors
    /// [`Error::NestedEdit`].
    pub fn begin_edit(&self, owner: Owner) -> Result<()> {
        self.with_editors(|editors| {
            if editors.contains(&owner) {
                return Err(Error::NestedEdit {
                    path: self.path.clone(),
                });
            }
            editors.push(owner);
            Ok(())
        })
    }

    /// Records that `owner`'s edit of this object is over.
    pub fn end_edit(&self, owner: Owner) {
        self.with_editors(|editors| editors.retain(|o| *o != owner));
    }

    /// Runs `f` on the owners editing, after forgetting those inherited through fork.
    fn with_editors<T>(&self, f: impl FnOnce(&mut Vec<Owner>) -> T) -> T {
        f(&mut self.editing.lock())
    }

    /// Replaces the content under the lock (a blind write).
    pub fn write(&self, data: &[u8], wait: Wait) -> Result<()> {
        self.write_as(Owner::current_thread(), data, wait, &mut WaitControl::default())
    }

    /// [`write`](Self::write) for an explicit owner. An owner that already holds the lock (inside an
    /// edit) writes at once.
    pub fn write_as(&self, owner: Owner, data: &[u8], wait: Wait, ctl: &mut WaitControl<'_>) -> Result<()> {
        self.with_lock(owner, wait, ctl, || self.replace_locked(data))
    }

    /// Removes the file under the lock. With a backup path, the removed content becomes the backup, so
    /// a removal is as recoverable as a write. `Ok(false)` if there was no file.
    pub fn remove(&self, wait: Wait) -> Result<bool> {
        self.remove_as(Owner::current_thread(), wait, &mut WaitControl::default())
    }

    /// [`remove`](Self::remove) for an explicit owner.
    pub fn remove_as(&self, owner: Owner, wait: Wait, ctl: &mut WaitControl<'_>) -> Result<bool> {
        self.with_lock(owner, wait, ctl, || match &self.write.backup {
            Some(backup) => self.move_locked(Some(backup)),
            None => self.move_locked(None),
        })
    }

    /// Moves the current file to `dest` under the lock (for a file that must not become the backup,
    /// such as a corrupt one). The next write then starts fresh and leaves the backup alone.
    /// `Ok(false)` if there was no file.
    pub fn set_aside_as(&self, owner: Owner, dest: &Path, wait: Wait, ctl: &mut WaitControl<'_>) -> Result<bool> {
        self.with_lock(owner, wait, ctl, || self.move_locked(Some(dest)))
    }

    fn with_lock<T>(
        &self,
        owner: Owner,
        wait: Wait,
        ctl: &mut WaitControl<'_>,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        self.lock.acquire_as(owner, wait, ctl)?;
        let outcome = f();
        let released = self.lock.release_as(owner, false);
        let value = outcome?; // the operation's error matters more than a failed unlock
        released?;
        Ok(value)
    }

    /// The write itself; the caller holds the lock.
    fn replace_locked(&self, data: &[u8]) -> Result<()> {
        let target = locate(&self.path, FinalLink::Follow, false)?;
        self.sweep_leftovers(&target);
        write_at(&target, data, &self.write)
    }

    /// Unlinks the state file, first keeping its content at `keep` (by hard link) if given. The
    /// caller holds the lock. A symlinked state file loses only the link.
    fn move_locked(&self, keep: Option<&Path>) -> Result<bool> {
        let at = match locate(&self.path, FinalLink::Keep, false) {
            Ok(at) => at,
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let st = at.dir.stat(&at.name).map_err(|e| Error::io("stat", at.path(), e))?;
        let Some(st) = st else { return Ok(false) };
        match FileKind::of_mode(st.st_mode) {
            FileKind::Symlink => {} // only the link goes; what it points to stays
            FileKind::Regular => {
                existing(&at)?; // another user's file in a shared directory is not ours to remove
                if let Some(keep) = keep {
                    // Link first, unlink second: a crash in between leaves the file in place (still valid).
                    replace_backup(&at, keep, self.write.durable)?;
                }
            }
            kind => {
                return Err(Error::NotRegularFile {
                    path: at.path(),
                    kind: kind.word(),
                });
            }
        }
        hit(Failpoint::StateFileUnlink)
            .and_then(|()| Ok(unlinkat(at.dir.fd(), at.name.as_os_str(), UnlinkatFlags::NoRemoveDir)?))
            .map_err(|e| Error::io("remove", at.path(), e))?;
        hit(Failpoint::StateFileFsyncDir)
            .and_then(|()| at.dir.sync())
            .map_err(|e| Error::io("fsync directory", at.dir.path(), e))?;
        Ok(true)
    }

    /// Removes what crashed writers left: unique temporary files of this state file and staging
    /// links of its backup. Safe only under the lock, which every writer holds while such a file
    /// exists. Failures are logged, never fatal: the write does not depend on them.
    fn sweep_leftovers(&self, target: &Located) {
        if self.write.temp == TempName::Unique {
            sweep(target, "tmp");
        }
        if let Some(backup) = &self.write.backup
            && let Ok(backup) = locate(backup, FinalLink::Keep, false)
        {
            sweep(&backup, "bak");
        }
    }
}

/// Holds a [`StateFile`]'s lock with the content read under it. Dropping it without
/// [`commit`](Self::commit) releases the lock and changes nothing.
#[derive(Debug)]
#[must_use = "the lock is released as soon as the edit is dropped"]
pub struct StateEdit<'a> {
    file: &'a StateFile,
    owner: Owner,
    current: Option<Vec<u8>>,
}

impl StateEdit<'_> {
    /// The content read after the lock was taken; `None` if there was no file.
    #[must_use]
    pub fn current(&self) -> Option<&[u8]> {
        self.current.as_deref()
    }

    /// Writes `data` (atomically, keeping the backup) and releases the lock.
    pub fn commit(self, data: &[u8]) -> Result<()> {
        self.file.replace_locked(data)
    }

    /// Removes the file (see [`StateFile::remove`]) and releases the lock.
    pub fn remove(self) -> Result<bool> {
        self.file.move_locked(self.file.write.backup.as_deref())
    }
}

impl Drop for StateEdit<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.file.lock.release_as(self.owner, false) {
            log::warn!(target: "ferrolock::state", "release of {} failed: {e}", self.file.lock.path().display());
        }
        self.file.end_edit(self.owner);
    }
}

/// The content of `path`, or `None` if there is no file. The path is found under the link rule, and
/// another user's file in a shared directory is refused rather than handed to the application. The
/// file is opened with `O_NONBLOCK` and checked to be a regular file before reading: a FIFO planted
/// (or left) at a state file's path would otherwise block the reader forever, and an `edit` would
/// hold the lock while it blocked, hanging every writer.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    let at = match locate(path, FinalLink::Follow, false) {
        Ok(at) => at,
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let file: File = match open_untrusted_at(at.dir.fd(), &at.name) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        // A symlink swapped in after the link was judged: not followed.
        Err(e) if e.raw_os_error() == Some(Errno::ELOOP as i32) => return Err(Error::Symlink { path: at.path() }),
        Err(e) => return Err(Error::io("read", at.path(), e)),
    };
    let st = nix::sys::stat::fstat(&file).map_err(|e| Error::io("stat", at.path(), e.into()))?;
    match FileKind::of_mode(st.st_mode) {
        FileKind::Regular if at.dir.trusts(st.st_uid) => {}
        FileKind::Regular => {
            return Err(Error::UntrustedFile {
                path: at.path(),
                owner: st.st_uid,
                dir_owner: at.dir.uid(),
                why: NOT_YOURS,
            });
        }
        kind => {
            return Err(Error::NotRegularFile {
                path: at.path(),
                kind: kind.word(),
            });
        }
    }
    let mut data = Vec::with_capacity(usize::try_from(st.st_size).unwrap_or(0).saturating_add(1));
    (&file)
        .read_to_end(&mut data)
        .map_err(|e| Error::io("read", at.path(), e))?;
    Ok(Some(data))
}

/// `path` with `suffix` appended to its file name (`STATE.md` -> `STATE.md.lock`).
fn with_suffix_appended(path: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(suffix);
    PathBuf::from(s)
}
