//! Run a setup once across every process that uses a coordinator: a lock plus a fenced marker.

use super::cancel::Cancel;
use super::lock::{Coordinator, LockSpec};
use crate::job::{RunOnceError, RunOnceOutcome};
use crate::lock::{Owner, Wait, WaitControl};

/// Runs `setup` unless the run-once marker of `name` exists, so that across all processes using the
/// coordinator it runs once at a time and never again after it succeeded. `setup` returns the
/// marker's contents.
///
/// The marker is checked without the lock first (it is written only after the setup), then under the
/// lock `name`. The marker is written fenced by the lock's token: a caller whose lease ran out during
/// a long setup gets [`Error::StaleToken`](crate::Error::StaleToken) (or `LockLost`) instead of
/// marking done a setup that someone else may be running again.
///
/// # Errors
/// [`RunOnceError::Setup`] with `setup`'s error (no marker is written); [`RunOnceError::Coordination`]
/// for waits that time out or are interrupted, a lost lock, and backend failures.
pub fn run_once<E>(
    coord: &Coordinator,
    name: &str,
    wait: Wait,
    ctl: &mut WaitControl<'_>,
    cancel: Option<&Cancel>,
    setup: impl FnOnce() -> Result<Vec<u8>, E>,
) -> Result<RunOnceOutcome, RunOnceError<E>> {
    let mut spec = LockSpec::new(name)?;
    if coord.backend().done_marker(name)?.is_some() {
        return Ok(RunOnceOutcome::AlreadyDone);
    }
    spec.purpose = Some(format!("run once: {name}"));
    let lock = coord.lock(spec);
    // The calling thread: a thread that holds `name` through another lock object gets WouldDeadlock
    // instead of waiting for itself.
    let owner = Owner::current_thread();
    lock.acquire_as(owner, wait, ctl, cancel)?;
    let outcome = (|| -> Result<RunOnceOutcome, RunOnceError<E>> {
        if coord.backend().done_marker(name)?.is_some() {
            return Ok(RunOnceOutcome::DoneByOther);
        }
        let text = setup().map_err(RunOnceError::Setup)?;
        lock.mark_done_as(owner, &text)?;
        Ok(RunOnceOutcome::Ran)
    })();
    let released = lock.release_as(owner, true);
    let outcome = outcome?;
    released?;
    Ok(outcome)
}
