//! Cross-process file locks.
//!
//! # The protocol
//!
//! * A lock file is a regular file locked with `flock(2)`: `LOCK_EX` (exclusive) or `LOCK_SH`
//!   (shared). flock, not POSIX record locks, so shell `flock(1)`, Rust's `File::lock` and Python's
//!   `fcntl.flock` users exclude and are excluded by ferrolock on the same path.
//! * Open with `O_RDWR|O_CREAT|O_CLOEXEC|O_NOFOLLOW` and an explicit mode; never truncate, chmod or
//!   write before the lock is held; create missing parent directories.
//! * Acquire = open, flock, verify: after the lock is granted, `lstat(path)` must name the same device
//!   and inode, or the acquirer drops it and starts over. A holder may therefore unlink the file while
//!   holding it exclusively ([`remove_if_unheld`]).
//! * An exclusive holder writes a [`Holder`] record (one JSON line) at offset 0 after it wins. The
//!   record means something only while the file is locked; readers [`probe`] first.
//! * Crash = release: the kernel drops flock locks when the holder dies. No PID guessing.
//!
//! Waiting happens in the kernel (see [`Wait`], [`CancelToken`] and [`WakeMechanism`]).

mod file_lock;
mod holder;
mod idle;
mod protocol;
mod registry;
mod wait;

pub use file_lock::{Acquired, FileLock, FileLockGuard, LockMode, LockOptions, Owner};
pub use holder::{HOLDER_RECORD_VERSION, Holder, LockState, probe, read_holder};
pub use idle::bound as idle_descriptor_bound;
pub use protocol::{Removal, remove_if_unheld};
pub use wait::{CancelToken, Seconds, Wait, WaitControl, WakeMechanism, set_wake_mechanism, wake_mechanism};
// The kernel wait itself, for other core modules that block on a lock file (scope waits).
pub(crate) use holder::{held_exclusively, hostname};
#[cfg_attr(not(feature = "python"), allow(unused_imports))]
pub(crate) use protocol::held_error;
pub(crate) use wait::{WaitEnd, block_until_locked};
