//! The binding's one interrupt protocol: the "Ctrl-C never leaves a lock held" guarantee.
//!
//! Every call into the core goes through [`call`] (or its shorthands [`detached`] and [`attached`]).
//! A Python exception can appear during such a call in three ways, and each ends it the same way:
//!
//! * a signal handler raises (Ctrl-C): a wait on the main thread wakes to run the handlers (see
//!   [`SIGNAL_CHECK_INTERVAL`]) and stops at once when one raises;
//! * a callback the core makes into Python raises (a scope judge's hook): it records the exception
//!   in the call's [`Pending`] slot and tells the core to stop;
//! * a log call raises: `pyo3-log` runs Python's `logging` on the calling thread and, unable to
//!   return an error, leaves the exception set on the thread.
//!
//! When the core returns, the first such exception is what the caller sees, and if the core obtained
//! something meanwhile (a lock, a claim), `undo` gives it back first. A signal that arrived while a
//! wait was being granted is handled before returning too, so a Ctrl-C is never left to surface in
//! the caller's next bytecode with the lock already held.

use std::cell::RefCell;
use std::time::Duration;

use pyo3::prelude::*;

use crate::error::Error;
use crate::job::RunOnceError;
use crate::lock::{CancelToken, Wait, WaitControl};
use crate::sys;

/// How often a wait on the main thread wakes to let a pending Ctrl-C through. It only matters when the
/// signal lands in the instant before the thread enters the kernel; otherwise the signal itself wakes
/// the wait at once. Waits on other threads never wake for this (Python runs handlers only on the
/// main thread).
pub(crate) const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// Whether the GIL is released while the core runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gil {
    /// Kept: for calls that never sleep (one attempt, a release), where detaching would cost more
    /// than the call itself.
    Keep,
    /// Released: for anything that may wait or do I/O.
    Release,
}

/// The first Python exception raised while the core ran (by a signal handler, a hook or a log call).
#[derive(Default)]
pub(crate) struct Pending(RefCell<Option<PyErr>>);

impl Pending {
    /// Keeps `err` unless an earlier exception is kept already; a later one is reported through
    /// `sys.unraisablehook` rather than dropped silently.
    pub(crate) fn record(&self, err: PyErr) {
        let mut slot = self.0.borrow_mut();
        if slot.is_none() {
            *slot = Some(err);
        } else {
            Python::attach(|py| err.write_unraisable(py, None));
        }
    }

    /// Runs Python's signal handlers (and collects an exception a log call left set); true if one
    /// raised, which is then kept here.
    fn check_signals(&self) -> bool {
        Python::attach(|py| match PyErr::take(py).map_or_else(|| py.check_signals(), Err) {
            Ok(()) => false,
            Err(e) => {
                self.record(e);
                true
            }
        })
    }

    fn into_inner(self) -> Option<PyErr> {
        self.0.into_inner()
    }
}

/// An error from the core that may mean "stopped because `on_interrupt` or a hook asked".
pub(crate) trait Interruption: Into<PyErr> {
    fn is_interruption(&self) -> bool;
}

impl Interruption for Error {
    fn is_interruption(&self) -> bool {
        matches!(self, Error::Interrupted { .. })
    }
}

impl Interruption for RunOnceError<PyErr> {
    fn is_interruption(&self) -> bool {
        matches!(self, RunOnceError::Coordination(Error::Interrupted { .. }))
    }
}

/// Runs `f` under the interrupt protocol (see the module docs). `f` gets the control for its waits
/// (cancellation by `cancel`, signal checks on the main thread) and the [`Pending`] slot for any
/// callback into Python it makes. `undo` gives back what a successful `f` obtained if the call must
/// raise after all.
pub(crate) fn call<T: Send, E: Interruption + Send>(
    py: Python<'_>,
    gil: Gil,
    cancel: Option<&CancelToken>,
    undo: impl FnOnce(T),
    f: impl FnOnce(&mut WaitControl<'_>, &Pending) -> Result<T, E> + Send,
) -> PyResult<T> {
    let run = || {
        let pending = Pending::default();
        let result = {
            let mut check_signals = || pending.check_signals();
            let mut ctl = WaitControl {
                cancel,
                interrupt_every: (gil == Gil::Release && sys::is_main_thread()).then_some(SIGNAL_CHECK_INTERVAL),
                on_interrupt: Some(&mut check_signals),
            };
            f(&mut ctl, &pending)
        };
        (result, pending.into_inner())
    };
    let (result, pending) = match gil {
        Gil::Keep => run(),
        Gil::Release => py.detach(run),
    };
    let mut raised = match (pending, PyErr::take(py)) {
        (Some(first), Some(later)) => {
            later.write_unraisable(py, None);
            Some(first)
        }
        (first, later) => first.or(later),
    };
    if raised.is_none() && result.is_ok() && gil == Gil::Release {
        // A signal that arrived while a wait was being granted: the kernel completes the grant before
        // the signal interrupts anything, so no check above saw it. (A no-op off the main thread.)
        raised = py.check_signals().err();
    }
    match (result, raised) {
        (Ok(value), None) => Ok(value),
        (Ok(value), Some(err)) => {
            undo(value);
            Err(err)
        }
        (Err(e), Some(err)) if e.is_interruption() => Err(err),
        (Err(e), Some(err)) => {
            // The core failed on its own while an exception was raised: the exception (a Ctrl-C, a
            // hook's error) is what the caller must see, with the core's error as its context.
            err.set_context(py, Some(e.into()));
            Err(err)
        }
        (Err(e), None) => Err(e.into()),
    }
}

/// A core call that may block or do I/O, with the GIL released and nothing to give back.
pub(crate) fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> crate::Result<T> + Send) -> PyResult<T> {
    call(py, Gil::Release, None, drop, |_, _| f())
}

/// A quick core call that may log (a release, a check) and keeps the GIL.
pub(crate) fn attached<T: Send>(py: Python<'_>, f: impl FnOnce() -> crate::Result<T> + Send) -> PyResult<T> {
    call(py, Gil::Keep, None, drop, |_, _| f())
}

impl Gil {
    /// [`Gil::Keep`] for one attempt (nothing sleeps), [`Gil::Release`] for a wait.
    pub(crate) fn for_wait(wait: Wait) -> Self {
        if wait == Wait::Try { Self::Keep } else { Self::Release }
    }
}
