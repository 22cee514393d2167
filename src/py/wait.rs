//! Waiting from Python: the GIL is released while the core sleeps in the kernel; on the main thread the
//! wait wakes for signals, and an exception raised by a signal handler (Ctrl-C) ends it with nothing
//! held and is what the caller sees.

use std::time::Duration;

use pyo3::prelude::*;

use crate::lock::{CancelToken, Wait, WaitControl};
use crate::sys;

/// How often a wait on the main thread wakes to let a pending Ctrl-C through. It only matters when the
/// signal lands in the instant before the thread enters the kernel; otherwise the signal itself wakes
/// the wait at once. Waits on other threads never wake for this.
pub(crate) const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// Runs `f` (which may wait as `ctl` allows) the Python way. A one-attempt `wait` runs without
/// releasing the GIL (nothing sleeps); anything else runs detached. `is_interrupt` recognises the
/// error `f` returns when `ctl.on_interrupt` stopped it.
///
/// A signal handler can also raise inside a log call: `pyo3-log` runs Python's `logging` on this
/// thread and leaves the exception set. That exception is raised too, after `undo` has given back
/// whatever `f` obtained, so a Ctrl-C never leaves a lock held.
pub(crate) fn interruptible<T: Send, E: Send + Into<PyErr>>(
    py: Python<'_>,
    wait: Wait,
    cancel: Option<&CancelToken>,
    is_interrupt: fn(&E) -> bool,
    undo: impl FnOnce(T),
    f: impl FnOnce(&mut WaitControl<'_>) -> Result<T, E> + Send,
) -> PyResult<T> {
    let mut pending: Option<PyErr> = None;
    let result = if wait == Wait::Try {
        f(&mut WaitControl {
            cancel,
            ..WaitControl::default()
        })
    } else {
        py.detach(|| {
            let mut check_signals = || {
                Python::attach(|py| match PyErr::take(py).map_or_else(|| py.check_signals(), Err) {
                    Ok(()) => false,
                    Err(e) => {
                        pending = Some(e);
                        true
                    }
                })
            };
            let mut ctl = WaitControl {
                cancel,
                interrupt_every: sys::is_main_thread().then_some(SIGNAL_CHECK_INTERVAL),
                on_interrupt: Some(&mut check_signals),
            };
            f(&mut ctl)
        })
    };
    match (result, pending.or_else(|| PyErr::take(py))) {
        (Ok(value), None) => Ok(value),
        (Ok(value), Some(stray)) => {
            undo(value);
            Err(stray)
        }
        (Err(e), Some(signal)) if is_interrupt(&e) => Err(signal),
        (Err(e), _) => Err(e.into()),
    }
}

/// `is_interrupt` for the core's own error type.
pub(crate) fn lock_interrupted(e: &crate::Error) -> bool {
    matches!(e, crate::Error::Interrupted { .. })
}
