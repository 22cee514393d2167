//! The one interface both backends implement. Everything above it ([`super::CoordLock`],
//! [`super::run_once`]) is written once.

use std::fmt;
use std::sync::Arc;

use super::cancel::Cancel;
use super::queue::QueueBackend;
use crate::error::Result;
use crate::lock::{Holder, LockMode, Wait, WaitControl};

/// Called (on a background thread, at most once per grant) when a backend finds out that a held lock
/// is gone: its lease ran out, its session ended.
pub type LostCallback = Arc<dyn Fn() + Send + Sync>;

/// What a backend is asked to lock.
#[derive(Clone)]
pub struct LockRequest<'a> {
    /// A name already checked by [`super::validate_name`].
    pub name: &'a str,
    /// Exclusive or shared.
    pub mode: LockMode,
    /// Shown to others in `status` and in their `Timeout` errors.
    pub purpose: Option<&'a str>,
    /// Run if the grant is lost while held.
    pub on_lost: Option<LostCallback>,
}

impl fmt::Debug for LockRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockRequest")
            .field("name", &self.name)
            .field("mode", &self.mode)
            .field("purpose", &self.purpose)
            .field("on_lost", &self.on_lost.is_some())
            .finish()
    }
}

/// A coordination service that grants named locks.
pub trait Backend: Send + Sync + fmt::Debug {
    /// `"file"` or `"postgresql"`.
    fn kind(&self) -> &'static str;

    /// The URL it was opened with, password removed.
    fn url(&self) -> String;

    /// Waits (as `wait`, `ctl` and `cancel` allow) until `req` is granted.
    ///
    /// # Errors
    /// [`Error::WouldBlock`](crate::Error::WouldBlock) / [`Error::Timeout`](crate::Error::Timeout)
    /// naming the holder; [`Error::Cancelled`](crate::Error::Cancelled) /
    /// [`Error::Interrupted`](crate::Error::Interrupted) with nothing held, even if the grant raced
    /// the cancel; backend failures.
    fn acquire(
        &self,
        req: &LockRequest<'_>,
        wait: Wait,
        ctl: &mut WaitControl<'_>,
        cancel: Option<&Cancel>,
    ) -> Result<Box<dyn Grant>>;

    /// Stores `value` for `name` if `token` is the newest token drawn for `name`; otherwise
    /// [`Error::StaleToken`](crate::Error::StaleToken) and nothing is written. This is the check a
    /// store makes for a writer that hands it a token; holders write through
    /// [`Grant::fenced_write`], which also proves the lock is still held.
    fn fenced_write(&self, name: &str, token: u64, value: &[u8]) -> Result<()>;

    /// The last value stored by [`fenced_write`](Self::fenced_write) and the token it was written with.
    fn fenced_read(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>>;

    /// The run-once marker of `name`, if the setup is done.
    fn done_marker(&self, name: &str) -> Result<Option<Vec<u8>>>;

    /// Every lock that is held or waited for right now.
    fn status(&self) -> Result<Vec<LockStatus>>;

    /// The backend's scope claims.
    fn claims(&self) -> &dyn super::claims::ClaimBackend;

    /// A handle on the task queue `name` (checked by [`super::validate_name`]); claims made through it
    /// live as long as it does (see [`super::queue`]).
    fn task_queue(&self, name: &str) -> Result<Box<dyn QueueBackend>>;

    /// The current value of state `name` (with `backup`, the version before it), `None` if there is
    /// none. Takes no lock: every write replaces the value whole, so a reader never sees a torn one.
    fn state_read(&self, name: &str, backup: bool) -> Result<Option<Vec<u8>>>;
}

/// A fencing check a state write must pass: `token` is still the newest token drawn for lock `lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lock whose token fences the write.
    pub lock: String,
    /// The writer's token for that lock.
    pub token: u64,
}

/// One granted lock. Dropping it without [`release`](Self::release) releases it too (logging errors).
pub trait Grant: Send + Sync + fmt::Debug {
    /// The fencing token of this grant, drawn (durably, in the holder's session) on first call.
    ///
    /// # Errors
    /// [`Error::LockLost`](crate::Error::LockLost) if the lock is no longer held.
    fn token(&self) -> Result<u64>;

    /// Checks with the backend that the lock is still held.
    ///
    /// # Errors
    /// [`Error::LockLost`](crate::Error::LockLost) once the lease or the session is gone.
    fn ensure_held(&self) -> Result<()>;

    /// Stores `value` (the fenced value, or with `marker` the run-once marker) under the lock's name
    /// with this grant's token, from the holder's own session (file: after verifying the lock file),
    /// so it lands only while the lock is held *and* the token is the newest drawn.
    ///
    /// # Errors
    /// [`Error::LockLost`](crate::Error::LockLost) if the lock is no longer held,
    /// [`Error::StaleToken`](crate::Error::StaleToken) if a newer token was drawn (shared holders).
    fn fenced_write(&self, value: &[u8], marker: bool) -> Result<()>;

    /// Replaces state `state` with `value` (`None` removes it), keeping the version it replaces as the
    /// backup, from the holder's own session (file: after verifying the lock file), so it lands only
    /// while this lock is held, and only if `fence` (when given) still holds. Returns whether the
    /// state existed before.
    ///
    /// # Errors
    /// [`Error::LockLost`](crate::Error::LockLost) if the lock is no longer held,
    /// [`Error::StaleToken`](crate::Error::StaleToken) if the fence's lock drew a newer token.
    fn state_write(&self, state: &str, value: Option<&[u8]>, fence: Option<&Fence>) -> Result<bool>;

    /// Whether the backend already knows the lock is lost (no round trip).
    fn is_lost(&self) -> bool;

    /// Releases the lock.
    fn release(self: Box<Self>) -> Result<()>;
}

/// A lock that is held or waited for, as [`Backend::status`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockStatus {
    /// The lock's name.
    pub name: String,
    /// Its current holders (one if exclusive).
    pub holders: Vec<StatusHolder>,
    /// How many sessions wait for it (always 0 on the file backend, which cannot see waiters).
    pub waiting: u32,
}

/// One holder in a [`LockStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusHolder {
    /// Exclusive or shared.
    pub mode: LockMode,
    /// Who holds it, as the holder recorded it (`None` if it left no record).
    pub holder: Option<Holder>,
}
