//! Fault injection for tests: named points in the write paths that a test can make fail, crash or
//! stop, to check what a failure at exactly that step leaves on disk.
//!
//! Every point is a variant of [`Failpoint`] with a stable name (`atomic_write:rename`), so the list
//! is closed: an unknown name is an error, and tests read the list instead of retyping it. The
//! arming half exists only with the cargo feature `failpoints`, which `make build-dev` and `make test`
//! turn on and a release build leaves off: there, `hit` is an empty inline function and the Python
//! extension has no `_set_failpoint` (a shipped library must not be able to `SIGKILL` its caller).
//!
//! A test arms one point, for the whole process (`arm`: a child that must crash at a step, whichever
//! thread reaches it) or for the calling thread only (`arm_on_this_thread`: Rust tests running in
//! parallel threads of one binary).

macro_rules! failpoints {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// A step of a write path where a fault can be injected.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Failpoint {
            $($(#[$doc])* $variant,)*
        }

        impl Failpoint {
            /// Every point, in the order of the write paths.
            pub const ALL: &'static [Failpoint] = &[$(Failpoint::$variant,)*];

            /// The point's stable name, as tests and `_set_failpoint` spell it.
            #[must_use]
            pub const fn name(self) -> &'static str {
                match self {
                    $(Failpoint::$variant => $name,)*
                }
            }
        }
    };
}

failpoints! {
    /// `atomic_write`: before the temporary file is created.
    AtomicWriteCreateTemp = "atomic_write:create_temp",
    /// `atomic_write`: giving the temporary file its final mode, before its first byte.
    AtomicWriteChmod = "atomic_write:chmod",
    /// `atomic_write`: between the two halves of the data.
    AtomicWriteWrite = "atomic_write:write",
    /// `atomic_write`: `fsync` of the temporary file.
    AtomicWriteFsyncTemp = "atomic_write:fsync_temp",
    /// `atomic_write` (and removals that keep a backup): hard-linking the backup's staging name.
    AtomicWriteBackupLink = "atomic_write:backup_link",
    /// Renaming the backup's staging name over the backup.
    AtomicWriteBackupRename = "atomic_write:backup_rename",
    /// `atomic_write`: renaming the temporary file over the target.
    AtomicWriteRename = "atomic_write:rename",
    /// `atomic_write`: `fsync` of the directory after the rename.
    AtomicWriteFsyncDir = "atomic_write:fsync_dir",
    /// `StateFile` removal: unlinking the file.
    StateFileUnlink = "state_file:unlink",
    /// `StateFile` removal: `fsync` of the directory.
    StateFileFsyncDir = "state_file:fsync_dir",
    /// Holder record: between winning the lock and writing the record.
    HolderRecordWrite = "holder_record:write",
    /// Holder record: after the first half of the record.
    HolderRecordTorn = "holder_record:torn",
    /// Scope claim: locking the temporary record.
    ClaimRecordLock = "claim_record:lock",
    /// Scope claim: between the two halves of the record.
    ClaimRecordWrite = "claim_record:write",
    /// Scope claim: renaming the record into place.
    ClaimRecordRename = "claim_record:rename",
    /// Scope claim release: removing the record.
    ClaimRecordRemove = "claim_record:remove",
}

impl Failpoint {
    /// The point named `name`, if there is one.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| p.name() == name)
    }
}

impl std::fmt::Display for Failpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What an armed point does when reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// The step fails with `EIO`.
    Error,
    /// The process kills itself with `SIGKILL` (a crash: no destructors, no cleanup).
    Crash,
    /// The process stops itself with `SIGSTOP` and carries on when continued (`SIGCONT`): a test
    /// can change the files around it at exactly this step, then let it go on.
    Stop,
}

#[cfg(feature = "failpoints")]
pub use armed::{arm, arm_on_this_thread, disarm};
#[cfg(feature = "failpoints")]
pub(crate) use armed::{armed, hit};

#[cfg(not(feature = "failpoints"))]
/// Without the `failpoints` feature nothing can be armed: every step goes on.
#[inline]
#[allow(clippy::unnecessary_wraps)] // the same signature as the armed build's
pub(crate) fn hit(_point: Failpoint) -> std::io::Result<()> {
    Ok(())
}

#[cfg(not(feature = "failpoints"))]
/// Without the `failpoints` feature nothing is ever armed.
#[inline]
pub(crate) const fn armed() -> bool {
    false
}

#[cfg(feature = "failpoints")]
mod armed {
    use std::cell::Cell;
    use std::io;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Mutex, PoisonError};

    use super::{Failpoint, FaultAction};

    /// Set while a process-wide point is armed.
    static ARMED: AtomicBool = AtomicBool::new(false);
    /// How many threads have a point armed for themselves only.
    static THREADS_ARMED: AtomicUsize = AtomicUsize::new(0);
    static POINT: Mutex<Option<(Failpoint, FaultAction)>> = Mutex::new(None);

    thread_local! {
        static THREAD_POINT: Cell<Option<(Failpoint, FaultAction)>> = const { Cell::new(None) };
    }

    /// Arms `point` for the whole process; replaces any process-wide point.
    pub fn arm(point: Failpoint, action: FaultAction) {
        *POINT.lock().unwrap_or_else(PoisonError::into_inner) = Some((point, action));
        ARMED.store(true, Ordering::SeqCst);
    }

    /// Arms `point` for the calling thread only, so tests running in parallel threads of one process
    /// do not trip over each other's faults. Replaces this thread's armed point.
    pub fn arm_on_this_thread(point: Failpoint, action: FaultAction) {
        if THREAD_POINT.replace(Some((point, action))).is_none() {
            THREADS_ARMED.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Disarms the process-wide point and the calling thread's.
    pub fn disarm() {
        ARMED.store(false, Ordering::SeqCst);
        *POINT.lock().unwrap_or_else(PoisonError::into_inner) = None;
        if THREAD_POINT.take().is_some() {
            THREADS_ARMED.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// True while a point is armed: a write path may then take a slower, finer-grained route that has
    /// a point in the middle of a single write (the holder record, a claim record).
    pub(crate) fn armed() -> bool {
        ARMED.load(Ordering::Relaxed) || THREADS_ARMED.load(Ordering::Relaxed) > 0
    }

    /// Called at each named step of a write: one relaxed load unless something is armed.
    pub(crate) fn hit(point: Failpoint) -> io::Result<()> {
        if !armed() {
            return Ok(());
        }
        let matches = |armed: Option<(Failpoint, FaultAction)>| armed.filter(|(p, _)| *p == point).map(|(_, a)| a);
        let action =
            matches(THREAD_POINT.get()).or_else(|| matches(*POINT.lock().unwrap_or_else(PoisonError::into_inner)));
        match action {
            None => Ok(()),
            Some(FaultAction::Error) => {
                log::debug!(target: "ferrolock::failpoints", "injected EIO at {point}");
                Err(io::Error::from_raw_os_error(nix::libc::EIO))
            }
            Some(FaultAction::Crash) => {
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
                unreachable!("SIGKILL cannot be caught")
            }
            Some(FaultAction::Stop) => {
                log::debug!(target: "ferrolock::failpoints", "stopped at {point}");
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for (i, point) in Failpoint::ALL.iter().enumerate() {
            assert_eq!(Failpoint::from_name(point.name()), Some(*point));
            assert!(Failpoint::ALL[..i].iter().all(|p| p.name() != point.name()), "{point}");
        }
        assert_eq!(Failpoint::from_name("atomic_write:renmae"), None);
    }
}
