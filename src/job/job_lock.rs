//! [`JobLock`]: an exclusive lock that belongs to an object, not to a thread.
//!
//! logist's `FileLock` is held by the instance: acquiring it again while held returns at once, and any
//! thread may release it (a manager unlocks jobs that another thread locked). [`FileLock`] re-enters
//! per thread instead, so this type records the owner a hold was taken as and releases that owner.
//! Everything else comes from the core: kernel waits, verification of the inode, holder records,
//! fork safety, and deadlock detection when one thread takes the same file through two objects.

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::{Error, Result};
use crate::lock::{Acquired, FileLock, Holder, LockMode, LockOptions, Owner, Wait, WaitControl};

/// An exclusive `flock(2)` lock on one file, held by this object (whichever thread took it).
///
/// * [`acquire`](Self::acquire) while this object holds the lock returns `true` at once (no count:
///   one [`release`](Self::release) undoes any number of acquires, as in logist).
/// * Any thread may release it; a thread that merely shares the object never releases another
///   object's lock.
/// * Lock files are created with mode `0o666` minus the umask, as `Path.touch()` creates them.
/// * After `fork()` the child holds nothing, and releasing there never releases the parent's lock.
#[derive(Debug)]
pub struct JobLock {
    lock: FileLock,
    /// The owner (the acquiring thread) the current hold was taken as.
    holder: Mutex<Option<Owner>>,
}

impl JobLock {
    /// A lock on `path`; `purpose` goes into the holder record. Nothing is opened until acquired.
    ///
    /// # Errors
    /// [`Error::InvalidName`] if `path` is empty or contains a NUL byte.
    pub fn new(path: impl Into<PathBuf>, purpose: Option<String>) -> Result<Self> {
        let options = LockOptions {
            mode: LockMode::Exclusive,
            file_mode: 0o666,
            purpose,
            create_dirs: true,
            holder_record: true,
            detect_deadlock: true,
            ..LockOptions::default()
        };
        Ok(Self {
            lock: FileLock::new(path, &options)?,
            holder: Mutex::new(None),
        })
    }

    /// The lock file.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.lock.path()
    }

    /// Takes the lock for this object, waiting as `wait` allows; `Ok(true)` once held (also when this
    /// object already held it and the kernel confirms it), `Ok(false)` if `wait` is [`Wait::Try`] and
    /// someone else holds it.
    ///
    /// A hold that no longer protects the file (the file was deleted or replaced, or someone unlocked
    /// a description shared with this process) is dropped and the lock taken afresh.
    ///
    /// # Errors
    /// [`Error::Timeout`]; [`Error::WouldDeadlock`] if the calling thread holds the same file through
    /// another lock object; [`Error::Cancelled`] / [`Error::Interrupted`] from `ctl`; I/O errors.
    pub fn acquire(&self, wait: Wait, ctl: &mut WaitControl<'_>) -> Result<bool> {
        {
            let mut holder = self.holder();
            if let Some(owner) = *holder {
                if self.lock.verify(owner)? {
                    return Ok(true);
                }
                *holder = None;
                self.lock.release_as(owner, true)?;
            }
        }
        let me = Owner::current_thread();
        match self.lock.acquire_as(me, wait, ctl) {
            Ok(Acquired::Fresh) => {}
            // Only reachable if another thread released this object while we were acquiring; keep
            // one level so a single release frees it.
            Ok(Acquired::Reentered) => {
                self.lock.release_as(me, false)?;
            }
            Err(Error::WouldBlock { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
        *self.holder() = Some(me);
        Ok(true)
    }

    /// Releases the lock if this object holds it (from any thread); `Ok(false)` if it held nothing.
    ///
    /// # Errors
    /// [`Error::Io`] if the unlock fails (the hold is forgotten anyway; closing releases it).
    pub fn release(&self) -> Result<bool> {
        let mut holder = self.holder();
        match holder.take() {
            Some(owner) => self.lock.release_as(owner, true),
            None => Ok(false),
        }
    }

    /// Whether this object holds the lock in this process, by its own bookkeeping (fork-aware: false
    /// in a forked child). Cheap; [`is_locked`](Self::is_locked) also asks the kernel.
    #[must_use]
    pub fn is_held(&self) -> bool {
        let holder = *self.holder();
        holder.is_some_and(|owner| self.lock.lock_count(owner) > 0)
    }

    /// Whether this object holds the lock *and* the lock still protects the path: see
    /// [`FileLock::verify`]. If the kernel cannot be asked (an I/O error while probing, logged), the
    /// bookkeeping answers, so this never fails.
    #[must_use]
    pub fn is_locked(&self) -> bool {
        let holder = *self.holder();
        holder.is_some_and(|owner| {
            self.lock.verify(owner).unwrap_or_else(|e| {
                log::warn!(target: "ferrolock::job", "could not verify the lock on {}: {e}", self.path().display());
                self.lock.lock_count(owner) > 0
            })
        })
    }

    /// True if this object holds the lock and the calling thread took it.
    #[must_use]
    pub fn held_by_current_thread(&self) -> bool {
        let me = Owner::current_thread();
        *self.holder() == Some(me) && self.lock.lock_count(me) > 0
    }

    /// The descriptor the lock is held through, if held (logist's `_lock_fd`; owned by this object).
    #[must_use]
    pub fn raw_fd(&self) -> Option<RawFd> {
        let holder = *self.holder();
        holder.and_then(|owner| self.lock.raw_fd(owner))
    }

    /// The live holder record of the file (ours or anybody's), if it is held exclusively.
    #[must_use]
    pub fn holder_record(&self) -> Option<Holder> {
        self.lock.holder()
    }

    fn holder(&self) -> MutexGuard<'_, Option<Owner>> {
        self.holder.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
