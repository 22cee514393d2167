//! [`CoordState`]: a named value that any number of processes, on any number of machines, update by a
//! locked read-modify-write, as [`crate::durable::StateFile`] does on one machine.
//!
//! * Every change happens under the coordinator lock `state:<name>` (so `status` shows who is
//!   changing it, waits are the lock's waits, and a caller can hold that lock across several steps),
//!   and is written by the lock's grant: from the holder's own session on PostgreSQL, after verifying
//!   the lock file on `file://`. A holder that lost its lease (paused, partitioned) cannot write.
//! * Each write replaces the value whole and keeps the version it replaced as the backup; a reader
//!   takes no lock and sees one complete version.
//! * A write may also be fenced by another lock's token ([`Fence`]): it lands only if that token is
//!   still the newest drawn for that lock, checked in the same step as the write.

use super::backend::Fence;
use super::lock::{CoordLock, Coordinator, LockSpec};
use super::names::validate_name;
use crate::error::{Error, Result};
use crate::lock::Owner;

/// The prefix of a state's lock name.
pub const STATE_LOCK_PREFIX: &str = "state:";

/// The name of the lock that guards state `name`, after checking `name` (a lock name's rules).
///
/// # Errors
/// [`Error::InvalidName`] if `name` is empty, too long once prefixed or has a control character.
pub fn state_lock_name(name: &str) -> Result<String> {
    let lock = format!("{STATE_LOCK_PREFIX}{name}");
    match validate_name(name).and_then(|_| validate_name(&lock)) {
        Ok(_) => Ok(lock),
        Err(Error::InvalidName { reason, .. }) => Err(Error::InvalidName {
            what: "state name",
            name: name.to_owned(),
            reason,
        }),
        Err(other) => Err(other),
    }
}

/// A named value kept by a [`Coordinator`].
#[derive(Debug)]
pub struct CoordState {
    coord: Coordinator,
    name: String,
    lock: CoordLock,
}

impl CoordState {
    /// The state `name` of `coord`; `purpose` names its lock in `status` and `Timeout` errors.
    ///
    /// # Errors
    /// [`Error::InvalidName`] if `name` is not a valid lock name once prefixed.
    pub fn new(coord: &Coordinator, name: &str, purpose: Option<String>) -> Result<Self> {
        let mut spec = LockSpec::new(state_lock_name(name)?)?;
        spec.purpose = purpose;
        Ok(Self {
            coord: coord.clone(),
            name: name.to_owned(),
            lock: coord.lock(spec),
        })
    }

    /// The state's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lock every change takes (`state:<name>`).
    #[must_use]
    pub fn lock(&self) -> &CoordLock {
        &self.lock
    }

    /// The current value, `None` if there is none. Takes no lock.
    ///
    /// # Errors
    /// Backend failures.
    pub fn read(&self) -> Result<Option<Vec<u8>>> {
        self.coord.backend().state_read(&self.name, false)
    }

    /// The version before the current one (or before the removal), `None` if there is none.
    ///
    /// # Errors
    /// Backend failures.
    pub fn read_backup(&self) -> Result<Option<Vec<u8>>> {
        self.coord.backend().state_read(&self.name, true)
    }

    /// Replaces the value with `value` (`None` removes it) as `owner`, which must hold
    /// [`lock`](Self::lock). Returns whether there was a value before.
    ///
    /// # Errors
    /// [`Error::LockLost`] if `owner` does not hold the lock (or lost it), [`Error::StaleToken`] if
    /// `fence` no longer holds; nothing is written then.
    pub fn write_held_as(&self, owner: Owner, value: Option<&[u8]>, fence: Option<&Fence>) -> Result<bool> {
        self.lock.state_write_as(owner, &self.name, value, fence)
    }
}
