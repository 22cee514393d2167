//! [`FileLock`]: one lock file, re-entrant per owner, safe to share between threads and across fork.

use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::MutexGuard;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::holder::{self, Holder, RecordTemplate};
use super::protocol::{self, DeadlockCheck, LockFd, Target};
use super::wait::{Wait, WaitControl};
use super::{idle, registry};
use crate::error::{Error, Result};
use crate::sys::{self, FlockOp, ForkLocal};

/// Exclusive (one holder) or shared (any number of shared holders, no exclusive one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LockMode {
    /// `LOCK_EX`.
    #[default]
    Exclusive,
    /// `LOCK_SH`.
    Shared,
}

/// How a [`FileLock`] opens and records its file.
// Independent switches, each with its own default, set by name (`..LockOptions::default()`).
#[allow(clippy::struct_excessive_bools)]
#[derive(Clone, Debug)]
pub struct LockOptions {
    /// Exclusive or shared.
    pub mode: LockMode,
    /// Permission bits for a newly created lock file (the umask applies, unless `exact_mode`). Default `0o644`.
    pub file_mode: u32,
    /// Written into the holder record ("rebase job 17").
    pub purpose: Option<String>,
    /// Create missing parent directories. Default `true`.
    pub create_dirs: bool,
    /// Write a holder record after winning an exclusive lock. Default `true`.
    pub holder_record: bool,
    /// Fail with [`Error::WouldDeadlock`] instead of waiting when the same owner already holds the
    /// file through another lock object. Default `true`.
    pub detect_deadlock: bool,
    /// With `detect_deadlock`, also refuse a wait that has a deadline (`true`, the default). `false` is
    /// py-filelock's rule: only a wait without end is refused, and one with a deadline runs to it and ends
    /// in [`Error::Timeout`] (another thread may drop the other lock object meanwhile).
    pub deadlock_on_deadline: bool,
    /// After winning, set the file's permission bits to exactly `file_mode`, whatever the umask made of
    /// them, if the file belongs to this process's effective user (never someone else's file in a
    /// shared directory). Default `false`: the umask (and default ACLs) decide.
    pub exact_mode: bool,
    /// After winning an exclusive lock, truncate the file to zero bytes (before any holder record is
    /// written), for callers that write their own content through the descriptor. A contender never
    /// touches the file. Default `false`.
    pub truncate: bool,
}

impl Default for LockOptions {
    fn default() -> Self {
        Self {
            mode: LockMode::Exclusive,
            file_mode: 0o644,
            purpose: None,
            create_dirs: true,
            holder_record: true,
            detect_deadlock: true,
            deadlock_on_deadline: true,
            exact_mode: false,
            truncate: false,
        }
    }
}

/// Who holds a re-entrant acquisition: a thread by default, or any id the caller chooses (the asyncio
/// layer uses one per event loop, so a loop's tasks and the loop's thread are different owners).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Owner(u64);

impl Owner {
    /// The calling thread. Each thread gets an id that no other thread of the process ever gets, so a
    /// thread that ends while holding a lock leaves the hold to nobody: a later thread (which may get
    /// the same `pthread_self()` and Python `threading.get_ident()`) neither re-enters nor releases it.
    /// Thread ids have the top bit set.
    #[must_use]
    pub fn current_thread() -> Self {
        Self(sys::current_thread_owner())
    }

    /// An owner id chosen by the caller. Ids below `2^63` never equal a thread's.
    #[must_use]
    pub const fn from_raw(id: u64) -> Self {
        Self(id)
    }

    /// The id, as given to [`from_raw`](Self::from_raw) or made for a thread.
    #[must_use]
    pub const fn as_raw(self) -> u64 {
        self.0
    }

    /// A fresh owner id that no thread and no other call of this function in the process ever gets
    /// (a lock object that is its own owner, an event loop): ids are never reused, so an owner that goes
    /// away holding a lock leaves it to nobody.
    #[must_use]
    pub fn unique() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed) & !sys::THREAD_OWNER_BIT)
    }

    /// True for an owner made by [`current_thread`](Self::current_thread).
    #[must_use]
    pub const fn is_thread(self) -> bool {
        self.0 & sys::THREAD_OWNER_BIT != 0
    }
}

/// Whether [`FileLock::acquire_as`] took the file or only counted a re-entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// The owner now holds the file.
    Fresh,
    /// The owner already held it; its count went up by one.
    Reentered,
}

/// A cross-process lock on one file (`flock(2)`), following the protocol in [`crate::lock`].
///
/// * Each owner (thread, or caller-chosen id) that holds the lock has its own open file description,
///   so two owners exclude each other in the kernel (exclusive mode) exactly as two processes do.
///   Re-entry by the same owner only increments a counter.
/// * After `fork()`, the child holds nothing: inherited descriptors are closed without unlocking
///   (which would release the parent's lock) and never reused.
/// * A released descriptor is kept open for the next acquisition, among at most
///   [`idle_descriptor_bound`](crate::idle_descriptor_bound) such descriptors per process.
/// * Dropping the lock releases what this process holds through it.
#[derive(Debug)]
pub struct FileLock {
    target: Target,
    mode: LockMode,
    template: Option<RecordTemplate>,
    /// When the deadlock check runs: never, for waits without end only, or for every wait.
    deadlock_check: Option<DeadlockRule>,
    /// What the winner does to the file before anything else: see [`LockOptions`].
    exact_mode: bool,
    truncate: bool,
    /// Distinguishes lock objects in the deadlock registry and the idle-descriptor cache (addresses
    /// would change on a move).
    object_id: usize,
    state: ForkLocal<State>,
}

static NEXT_OBJECT_ID: AtomicUsize = AtomicUsize::new(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DeadlockRule {
    EveryWait,
    WaitsWithoutEnd,
}

/// What one process holds through one lock object. A forked child starts with a fresh one.
#[derive(Debug)]
struct State {
    /// Written into holder records; a forked child's is its own.
    pid: u32,
    holds: Vec<Hold>,
}

impl State {
    fn fresh() -> Self {
        Self {
            pid: std::process::id(),
            holds: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct Hold {
    owner: Owner,
    count: u32,
    fd: LockFd,
}

impl FileLock {
    /// A lock on `path`. Nothing is opened or created until the first acquisition.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a `file_mode` beyond `0o777`; [`Error::InvalidName`] for an
    /// empty path or one with a NUL byte.
    pub fn new(path: impl Into<PathBuf>, options: &LockOptions) -> Result<Self> {
        crate::mode::check(options.file_mode)?;
        let target = Target::new(path.into(), options.file_mode, options.create_dirs)?;
        let template = (options.holder_record && options.mode == LockMode::Exclusive)
            .then(|| RecordTemplate::new(options.purpose.as_deref()));
        Ok(Self {
            target,
            mode: options.mode,
            template,
            deadlock_check: options.detect_deadlock.then_some(if options.deadlock_on_deadline {
                DeadlockRule::EveryWait
            } else {
                DeadlockRule::WaitsWithoutEnd
            }),
            exact_mode: options.exact_mode,
            truncate: options.truncate && options.mode == LockMode::Exclusive,
            object_id: NEXT_OBJECT_ID.fetch_add(1, Ordering::Relaxed),
            state: ForkLocal::new(State::fresh(), State::fresh),
        })
    }

    /// The lock file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.target.path
    }

    /// Exclusive or shared.
    #[must_use]
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// Acquires for the calling thread, waiting as `wait` allows.
    pub fn acquire(&self, wait: Wait) -> Result<Acquired> {
        self.acquire_as(Owner::current_thread(), wait, &mut WaitControl::default())
    }

    /// Acquires for `owner`. Re-entry by an owner that already holds the lock only counts.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] (`Wait::Try`) or [`Error::Timeout`] when someone else holds it;
    /// [`Error::Cancelled`] / [`Error::Interrupted`] from `ctl`; [`Error::WouldDeadlock`] if the owner
    /// holds the file through another `FileLock`; I/O and bad-path errors from the protocol.
    pub fn acquire_as(&self, owner: Owner, wait: Wait, ctl: &mut WaitControl<'_>) -> Result<Acquired> {
        let pid = {
            let mut st = self.state();
            if let Some(h) = st.holds.iter_mut().find(|h| h.owner == owner) {
                h.count = h.count.checked_add(1).ok_or_else(|| Error::ReentryOverflow {
                    path: self.target.path.clone(),
                })?;
                return Ok(Acquired::Reentered);
            }
            st.pid
        };
        let object = self.object_id();
        let reuse = idle::take(object);
        let would_deadlock = |fd: &LockFd| registry::held_elsewhere(fd.dev, fd.ino, owner.0, object);
        let check_this_wait = match self.deadlock_check {
            Some(DeadlockRule::EveryWait) => true,
            Some(DeadlockRule::WaitsWithoutEnd) => wait == Wait::Forever,
            None => false,
        };
        let check: Option<DeadlockCheck<'_>> = check_this_wait.then_some(&would_deadlock);
        let fd = protocol::acquire(&self.target, reuse, self.flock_op(), wait, ctl, check)?;
        self.prepare_won_file(&fd);
        if let Some(template) = &self.template
            && fd.may_record
            && let Err(e) = holder::write_record(&fd.file, &template.render(pid))
        {
            // The record is advice for humans; the lock itself is held and valid.
            log::warn!(target: "ferrolock::lock", "could not write holder record to {}: {e}", self.target.path.display());
        }
        registry::insert(fd.dev, fd.ino, owner.0, object);
        self.state().holds.push(Hold { owner, count: 1, fd });
        Ok(Acquired::Fresh)
    }

    /// Releases one level of `owner`'s hold (all levels with `force`). Returns `false`, doing nothing,
    /// if `owner` holds nothing here: a non-holder can never release someone else's lock.
    pub fn release_as(&self, owner: Owner, force: bool) -> Result<bool> {
        let hold = {
            let mut st = self.state();
            let Some(i) = st.holds.iter().position(|h| h.owner == owner) else {
                return Ok(false);
            };
            if !force && st.holds[i].count > 1 {
                st.holds[i].count -= 1;
                return Ok(true);
            }
            st.holds.swap_remove(i)
        };
        registry::remove(hold.fd.dev, hold.fd.ino, owner.0, self.object_id());
        // Unlock explicitly before the descriptor can be closed: a child forked by another thread may
        // share the open file description, and only an unlock releases it for both.
        hold.fd
            .unlock()
            .map_err(|e| Error::io("unlock", &self.target.path, e))?;
        idle::put(self.object_id(), hold.fd);
        Ok(true)
    }

    /// Releases one level of the calling thread's hold.
    pub fn release(&self) -> Result<bool> {
        self.release_as(Owner::current_thread(), false)
    }

    /// Blocks until the calling thread holds the lock; released when the guard drops.
    pub fn lock(&self) -> Result<FileLockGuard<'_>> {
        self.acquire(Wait::Forever)?;
        Ok(FileLockGuard {
            lock: self,
            owner: Owner::current_thread(),
        })
    }

    /// One attempt; [`Error::WouldBlock`] if someone else holds it.
    pub fn try_lock(&self) -> Result<FileLockGuard<'_>> {
        self.acquire(Wait::Try)?;
        Ok(FileLockGuard {
            lock: self,
            owner: Owner::current_thread(),
        })
    }

    /// True if some owner in this process holds the lock through this object.
    #[must_use]
    pub fn is_locked(&self) -> bool {
        !self.state().holds.is_empty()
    }

    /// How many times `owner` has acquired without releasing (0 if it does not hold the lock).
    #[must_use]
    pub fn lock_count(&self, owner: Owner) -> u32 {
        self.state()
            .holds
            .iter()
            .find(|h| h.owner == owner)
            .map_or(0, |h| h.count)
    }

    /// The live holder record of the file (ours or anybody's), if it is held exclusively.
    #[must_use]
    pub fn holder(&self) -> Option<Holder> {
        holder::read_holder(&self.target.path)
    }

    /// The descriptor number `owner` holds the lock through, if it holds it. The descriptor stays owned
    /// by this lock (legacy APIs expose it as `_lock_fd`); never close or unlock it yourself.
    #[must_use]
    pub fn raw_fd(&self, owner: Owner) -> Option<RawFd> {
        let st = self.state();
        st.holds
            .iter()
            .find(|h| h.owner == owner)
            .map(|h| h.fd.file.as_raw_fd())
    }

    /// Asks the kernel whether `owner`'s hold still protects the path, instead of trusting the
    /// bookkeeping: `owner` holds the lock here, the path still names the locked inode (a tool that
    /// deletes lock files may have removed it), and the description still holds the lock (anyone
    /// sharing it, such as a child forked from this process, could have unlocked it).
    ///
    /// The last check is a non-blocking conflicting lock on a fresh descriptor, which must fail, then a
    /// non-blocking re-lock of our own description in the mode it already holds, which must succeed
    /// (flock makes that a no-op, and it fails if the conflicting holder is someone else).
    pub fn verify(&self, owner: Owner) -> Result<bool> {
        let st = self.state();
        let Some(hold) = st.holds.iter().find(|h| h.owner == owner) else {
            return Ok(false);
        };
        if !hold.fd.still_linked(&self.target)? {
            return Ok(false);
        }
        let conflicting = match self.mode {
            LockMode::Exclusive => FlockOp::Shared,
            LockMode::Shared => FlockOp::Exclusive,
        };
        let Some(probe) = protocol::open_existing(&self.target)? else {
            return Ok(false);
        };
        match sys::flock(probe.as_fd(), conflicting, true) {
            Ok(()) => {
                let _ = probe.unlock();
                return Ok(false);
            }
            Err(e) if holder::is_would_block(&e) => {}
            Err(e) => return Err(Error::io("probe lock", &self.target.path, e)),
        }
        match sys::flock(hold.fd.as_fd(), self.flock_op(), true) {
            Ok(()) => Ok(true),
            Err(e) if holder::is_would_block(&e) => Ok(false),
            Err(e) => Err(Error::io("probe lock", &self.target.path, e)),
        }
    }

    /// Truncates and sets the exact mode, as configured, on a file this owner has just won. Failures are
    /// logged, not returned: the lock itself is held and valid (as for the holder record).
    fn prepare_won_file(&self, fd: &LockFd) {
        if self.truncate
            && let Err(e) = truncate_if_owned(&fd.file)
        {
            log::warn!(target: "ferrolock::lock", "could not truncate {}: {e}", self.target.path.display());
        }
        if self.exact_mode
            && let Err(e) = set_mode_if_owned(&fd.file, self.target.file_mode)
        {
            log::warn!(target: "ferrolock::lock", "could not set the mode of {}: {e}", self.target.path.display());
        }
    }

    fn flock_op(&self) -> FlockOp {
        match self.mode {
            LockMode::Exclusive => FlockOp::Exclusive,
            LockMode::Shared => FlockOp::Shared,
        }
    }

    fn object_id(&self) -> usize {
        self.object_id
    }

    /// The state, after forgetting anything inherited through fork: a child closes inherited
    /// descriptors without unlocking (dropping a File only closes it), so the parent keeps its lock, and
    /// never reuses a description the parent shares.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}

/// `fchmod(file, mode)` if the file belongs to this process's effective user; someone else's lock file
/// (in a shared directory) keeps its mode.
/// Truncates a file of this effective user with a single link: another user's file (locked through a
/// read-only descriptor) and a hard link to a file named elsewhere keep their content.
fn truncate_if_owned(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata()?;
    if meta.uid() != nix::unistd::geteuid().as_raw() || meta.nlink() != 1 || meta.len() == 0 {
        return Ok(());
    }
    file.set_len(0)
}

fn set_mode_if_owned(file: &std::fs::File, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = file.metadata()?;
    if meta.uid() != nix::unistd::geteuid().as_raw() || meta.mode() & 0o7777 == mode {
        return Ok(());
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let object = self.object_id();
        // Only this process's holds are left after `state()` (a child's inherited ones are gone).
        let holds = std::mem::take(&mut self.state().holds);
        for hold in holds {
            registry::remove(hold.fd.dev, hold.fd.ino, hold.owner.0, object);
            let _ = hold.fd.unlock();
        }
        idle::forget(object);
    }
}

/// Holds a [`FileLock`] for one owner until dropped.
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct FileLockGuard<'a> {
    lock: &'a FileLock,
    owner: Owner,
}

impl Drop for FileLockGuard<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.lock.release_as(self.owner, false) {
            log::warn!(target: "ferrolock::lock", "release of {} failed: {e}", self.lock.path().display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reentry_count_that_would_overflow_is_refused_and_kept() {
        let dir = std::env::temp_dir().join(format!("ferrolock-reentry-{}", std::process::id()));
        let lock = FileLock::new(dir.join("a.lock"), &LockOptions::default()).unwrap();
        let owner = Owner::current_thread();
        lock.acquire(Wait::Try).unwrap();
        lock.state().holds[0].count = u32::MAX;
        let err = lock.acquire(Wait::Try).unwrap_err();
        assert!(matches!(err, Error::ReentryOverflow { .. }), "{err:?}");
        assert_eq!(lock.lock_count(owner), u32::MAX);
        assert!(lock.release_as(owner, true).unwrap());
        assert!(!lock.is_locked());
        std::fs::remove_dir_all(&dir).ok();
    }
}
