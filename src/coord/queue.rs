//! Task queues from a coordinator: [`CoordQueue`], the same task-claim API on `file://DIR` and
//! `postgresql://`, with the outcomes of the one-machine queue ([`ClaimOutcome`], [`ReleaseOutcome`]).
//!
//! # What a claim lives as long as
//!
//! A claim belongs to the queue handle that made it and lives as long as the handle's claimant does:
//! the process on `file://` (each claim keeps a lock file of its own `flock`ed by the handle), the
//! handle's coordinator session on PostgreSQL (kept alive by its heartbeat; a claim row names the
//! session, and a session that ended, was killed or outlived its lease without a heartbeat leaves
//! claims that nobody holds). A claim whose claimant is gone is no claim: the task is free at once for
//! [`claim`](CoordQueue::claim) and [`claim_next`](CoordQueue::claim_next), and listed without owner.
//!
//! [`release`](CoordQueue::release) of a task this handle claimed removes the claim if it is still
//! this handle's, and reports [`ReleaseOutcome::Lost`] (changing nothing) if it is not: the claimant
//! was taken for dead meanwhile, so someone else may be working on the task. Releasing a task this
//! handle did not claim works by name as on one machine (`by` must match, or `force`).
//!
//! Task ids follow the one-machine queue's rules on both backends (they name lock files there): not
//! empty, no `/` or NUL, not `.` or `..`; and, as lock names, at most 200 bytes without control
//! characters.

use std::fmt;

use super::cancel::Cancel;
use super::names::validate_name;
use crate::error::Result;
use crate::lock::{Wait, WaitControl};
use crate::names::{IdKind, validate_component};
use crate::tasks::{ClaimOutcome, ClaimRecord, Entry, ReleaseOutcome};

/// One queue of a backend, opened by [`Backend::task_queue`](super::Backend::task_queue).
pub trait QueueBackend: Send + Sync + fmt::Debug {
    /// Appends the ids not yet in the queue (creating the queue); how many were added. Wakes waiters.
    fn add(&self, ids: &[&str], wait: Wait, ctl: &mut WaitControl<'_>) -> Result<usize>;

    /// Removes the ids (claimed or not); how many were removed.
    fn remove(&self, ids: &[&str], wait: Wait, ctl: &mut WaitControl<'_>) -> Result<usize>;

    /// Claims task `id` for `by`, for this handle.
    fn claim(&self, id: &str, by: &str, wait: Wait, ctl: &mut WaitControl<'_>) -> Result<ClaimOutcome<ClaimRecord>>;

    /// Claims the first free task in queue order; with `block`, sleeps until a task is added or
    /// released (within `wait`). `None` if none could be claimed in time.
    ///
    /// # Errors
    /// [`Error::Cancelled`](crate::Error::Cancelled) / [`Error::Interrupted`](crate::Error::Interrupted)
    /// with nothing claimed, even if a claim raced the cancel.
    fn claim_next(
        &self,
        by: &str,
        wait: Wait,
        block: bool,
        ctl: &mut WaitControl<'_>,
        cancel: Option<&Cancel>,
    ) -> Result<Option<String>>;

    /// Releases task `id` (see the module docs for a lost claim).
    fn release(
        &self,
        id: &str,
        by: &str,
        force: bool,
        wait: Wait,
        ctl: &mut WaitControl<'_>,
    ) -> Result<ReleaseOutcome<ClaimRecord>>;

    /// Every task in queue order, with its live claim.
    fn tasks(&self) -> Result<Vec<Entry<ClaimRecord>>>;

    /// Ends every claim of this handle that is still held (as its claimant's death would).
    fn close(&self) -> Result<()>;
}

/// A task queue from a [`Coordinator`](super::Coordinator) (see the module docs).
#[derive(Debug)]
pub struct CoordQueue {
    name: String,
    backend: Box<dyn QueueBackend>,
}

impl CoordQueue {
    pub(crate) fn new(name: String, backend: Box<dyn QueueBackend>) -> Self {
        Self { name, backend }
    }

    /// The queue's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Appends the tasks not yet in the queue; how many were added.
    ///
    /// # Errors
    /// An invalid task id (nothing is added), backend failures.
    pub fn add(&self, ids: &[&str], wait: Wait, ctl: &mut WaitControl<'_>) -> Result<usize> {
        validate_ids(ids)?;
        self.backend.add(ids, wait, ctl)
    }

    /// Removes the tasks; how many were removed.
    ///
    /// # Errors
    /// An invalid task id, backend failures.
    pub fn remove(&self, ids: &[&str], wait: Wait, ctl: &mut WaitControl<'_>) -> Result<usize> {
        validate_ids(ids)?;
        self.backend.remove(ids, wait, ctl)
    }

    /// Claims task `id` for `by`.
    ///
    /// # Errors
    /// An invalid task id, a busy lock past `wait` (file), backend failures.
    pub fn claim(
        &self,
        id: &str,
        by: &str,
        wait: Wait,
        ctl: &mut WaitControl<'_>,
    ) -> Result<ClaimOutcome<ClaimRecord>> {
        validate_task_id(id)?;
        self.backend.claim(id, by, wait, ctl)
    }

    /// Claims the first free task (see [`QueueBackend::claim_next`]).
    ///
    /// # Errors
    /// As [`QueueBackend::claim_next`].
    pub fn claim_next(
        &self,
        by: &str,
        wait: Wait,
        block: bool,
        ctl: &mut WaitControl<'_>,
        cancel: Option<&Cancel>,
    ) -> Result<Option<String>> {
        self.backend.claim_next(by, wait, block, ctl, cancel)
    }

    /// Releases task `id`.
    ///
    /// # Errors
    /// An invalid task id, backend failures.
    pub fn release(
        &self,
        id: &str,
        by: &str,
        force: bool,
        wait: Wait,
        ctl: &mut WaitControl<'_>,
    ) -> Result<ReleaseOutcome<ClaimRecord>> {
        validate_task_id(id)?;
        self.backend.release(id, by, force, wait, ctl)
    }

    /// Every task in queue order with its live claim.
    ///
    /// # Errors
    /// Backend failures.
    pub fn tasks(&self) -> Result<Vec<Entry<ClaimRecord>>> {
        self.backend.tasks()
    }

    /// Ends this handle's claims.
    ///
    /// # Errors
    /// Backend failures (the claims end anyway when the process does).
    pub fn close(&self) -> Result<()> {
        self.backend.close()
    }
}

/// Checks a task id (see the module docs).
///
/// # Errors
/// [`Error::InvalidName`](crate::Error::InvalidName) saying why.
pub fn validate_task_id(id: &str) -> Result<&str> {
    validate_component(IdKind::TaskId, id)?;
    validate_name(id).map_err(|e| match e {
        crate::Error::InvalidName { name, reason, .. } => crate::Error::InvalidName {
            what: "task id",
            name,
            reason,
        },
        other => other,
    })
}

fn validate_ids(ids: &[&str]) -> Result<()> {
    ids.iter().try_for_each(|id| validate_task_id(id).map(drop))
}
