//! Test-only fault injection for the write paths.
//!
//! Every step of a durable write calls [`hit`] with the step's name. Normally that is one relaxed atomic
//! load. A test can arm one point (from Rust with [`arm`], from Python with the private
//! `ferrolock._ferrolock._set_failpoint`) to make the step fail with `EIO`, or to crash the process
//! there with `SIGKILL`, and then check that what is left on disk is complete (old or new) and that no
//! temporary file is left behind.

use std::cell::RefCell;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// What an armed fault point does when reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// The step fails with `EIO`.
    Error,
    /// The process kills itself with `SIGKILL` (a crash: no destructors, no cleanup).
    Crash,
}

/// Set while a process-wide point is armed.
static ARMED: AtomicBool = AtomicBool::new(false);
/// How many threads have a point armed for themselves only.
static THREADS_ARMED: AtomicUsize = AtomicUsize::new(0);
static POINT: Mutex<Option<(String, FaultAction)>> = Mutex::new(None);

thread_local! {
    static THREAD_POINT: RefCell<Option<(String, FaultAction)>> = const { RefCell::new(None) };
}

/// Arms `point` (for example `"atomic_write:rename"`) for the whole process; replaces any process-wide
/// point. A child process that must crash at a step arms it this way, whichever thread reaches it.
pub fn arm(point: &str, action: FaultAction) {
    *POINT.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((point.to_owned(), action));
    ARMED.store(true, Ordering::SeqCst);
}

/// Arms `point` for the calling thread only, so tests running in parallel threads of one process do not
/// trip over each other's faults. Replaces this thread's armed point.
pub fn arm_on_this_thread(point: &str, action: FaultAction) {
    THREAD_POINT.with(|slot| {
        if slot.borrow_mut().replace((point.to_owned(), action)).is_none() {
            THREADS_ARMED.fetch_add(1, Ordering::SeqCst);
        }
    });
}

/// Disarms the process-wide point and the calling thread's.
pub fn disarm() {
    ARMED.store(false, Ordering::SeqCst);
    *POINT.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    THREAD_POINT.with(|slot| {
        if slot.borrow_mut().take().is_some() {
            THREADS_ARMED.fetch_sub(1, Ordering::SeqCst);
        }
    });
}

/// True while a fault point is armed: a write path may then take a slower, finer-grained route that
/// has a fault point in the middle of a single write (the holder record).
pub(crate) fn armed() -> bool {
    ARMED.load(Ordering::Relaxed) || THREADS_ARMED.load(Ordering::Relaxed) > 0
}

/// Called at each named step of a write.
pub(crate) fn hit(point: &'static str) -> io::Result<()> {
    if !armed() {
        return Ok(());
    }
    let matches = |armed: &Option<(String, FaultAction)>| match armed {
        Some((name, action)) if name == point => Some(*action),
        _ => None,
    };
    let action = THREAD_POINT
        .with(|slot| matches(&slot.borrow()))
        .or_else(|| matches(&POINT.lock().unwrap_or_else(std::sync::PoisonError::into_inner)));
    let Some(action) = action else {
        return Ok(());
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
