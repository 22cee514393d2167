//! ferrolock: cross-process coordination on one machine's filesystem, for Python tools, with a pure
//! Rust core.
//!
//! The core (everything outside `py/`) is usable from Rust alone:
//!
//! ```
//! use ferrolock::{FileLock, LockOptions, Wait};
//!
//! let dir = std::env::temp_dir().join(format!("ferrolock-doc-{}", std::process::id()));
//! let lock = FileLock::new(dir.join("build.lock"), &LockOptions::default())?;
//! {
//!     let _held = lock.lock()?; // blocks in the kernel until no other process holds it
//!     // ... critical section ...
//! } // released here
//! assert!(!lock.is_locked());
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), ferrolock::Error>(())
//! ```
//!
//! # Notes on advisory locks
//!
//! flock(2) locks are advisory: they exclude only processes that also take them. They belong to an
//! open file description, so they are inherited across `fork()` (ferrolock's objects refuse to use
//! inherited descriptors) and released when the holder dies. They work on local filesystems; on NFS
//! Linux emulates them with POSIX byte-range locks.

pub mod coord;
pub mod durable;
pub mod error;
pub mod failpoints;
pub mod inspect;
pub mod job;
pub mod lock;
pub mod mode;
pub mod names;
pub mod scope;
pub mod state_md;
mod sys;
pub mod tasks;

#[cfg(feature = "python")]
mod py;

pub use durable::{TempName, WriteOptions, atomic_write};
// Durable state files: locked read-modify-write with a backup of the previous version.
pub use durable::{StateEdit, StateFile, StateFileOptions};
pub use error::{Error, Result};
pub use lock::{
    Acquired, CancelToken, FileLock, FileLockGuard, Holder, LockMode, LockOptions, LockState, Owner, Removal, Seconds,
    Wait, WaitControl, idle_descriptor_bound, probe, read_holder, remove_if_unheld,
};
pub use lock::{WakeMechanism, set_wake_mechanism, wake_mechanism};

// Job-directory locks and run-once setup (the shapes logist's module needs).
pub use job::{JobLock, JobLocks, RunOnce, RunOnceError, RunOnceOutcome, cleanup_stale, run_once};
