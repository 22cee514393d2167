//! Test-only fault injection for the write paths.
//!
//! Every step of a durable write calls [`hit`] with the step's name. Normally that is one relaxed atomic
//! load. A test can arm one point (from Rust with [`arm`], from Python with the private
//! `ferrolock._ferrolock._set_failpoint`) to make the step fail with `EIO`, or to crash the process
//! there with `SIGKILL`, and then check that what is left on disk is complete (old or new) and that no
//! temporary file is left behind.

use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// What an armed fault point does when reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// The step fails with `EIO`.
    Error,
    /// The process kills itself with `SIGKILL` (a crash: no destructors, no cleanup).
    Crash,
}

static ARMED: AtomicBool = AtomicBool::new(false);
static POINT: Mutex<Option<(String, FaultAction)>> = Mutex::new(None);

/// Arms `point` (for example `"atomic_write:rename"`); replaces any armed point.
pub fn arm(point: &str, action: FaultAction) {
    *POINT.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((point.to_owned(), action));
    ARMED.store(true, Ordering::SeqCst);
}

/// Disarms fault injection.
pub fn disarm() {
    ARMED.store(false, Ordering::SeqCst);
    *POINT.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
}

/// True while a fault point is armed: a write path may then take a slower, finer-grained route that
/// has a fault point in the middle of a single write (the holder record).
pub(crate) fn armed() -> bool {
    ARMED.load(Ordering::Relaxed)
}

/// Called at each named step of a write.
pub(crate) fn hit(point: &'static str) -> io::Result<()> {
    if !ARMED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let action = match &*POINT.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
        Some((armed, action)) if armed == point => *action,
        _ => return Ok(()),
    };
    match action {
        FaultAction::Error => {
            log::debug!(target: "ferrolock::faults", "injected EIO at {point}");
            Err(io::Error::from_raw_os_error(nix::libc::EIO))
        }
        FaultAction::Crash => {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
            unreachable!("SIGKILL cannot be caught")
        }
    }
}
