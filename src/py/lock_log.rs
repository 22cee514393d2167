//! py-filelock's DEBUG records on the logger named `filelock`, at no cost while nobody listens.
//!
//! Users of py-filelock configure `logging.getLogger("filelock")` to see "Attempting to acquire lock ...",
//! "Lock ... acquired on ...". ferrolock emits the same records, with the same format strings and
//! arguments, through that logger (from here, not through `pyo3-log`, so that a record names the caller's
//! Python line and keeps filelock's `%s` arguments).
//!
//! The acquire path must not pay for logging nobody reads. Asking Python (`isEnabledFor`) costs a call
//! per record; instead one flag says whether the `filelock` logger can emit DEBUG records, and the
//! Python side (`ferrolock._log`) recomputes it whenever `logging` levels change: every such change
//! (`setLevel`, `logging.disable`, `dictConfig`) clears the logging manager's level cache, and that is
//! where it hooks in. While the flag is off, a record costs one atomic load.

use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// Whether the `filelock` logger may emit DEBUG records. On until Python computed it, so that a record is
/// never lost to a stale "off" (a record Python then filters costs a call, nothing else).
static ENABLED: AtomicBool = AtomicBool::new(true);

/// `logging.DEBUG`.
const DEBUG: i32 = 10;

/// True if a DEBUG record on `filelock` may be seen: check before building one.
#[inline]
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

fn logger(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    LOGGER
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("logging")?.call_method1("getLogger", ("filelock",))?.unbind())
        })
        .map(|logger| logger.bind(py))
}

/// `logging.getLogger("filelock").debug(format, id, path[, seconds])`: py-filelock's records name the lock
/// object by `id()` and its path. An exception a handler raises is returned.
pub(crate) fn debug(
    py: Python<'_>,
    format: &'static str,
    id: usize,
    path: &OsStr,
    seconds: Option<f64>,
) -> PyResult<()> {
    let logger = logger(py)?;
    match seconds {
        None => logger.call_method1("debug", (format, id, path))?,
        Some(s) => logger.call_method1("debug", (format, id, path, s))?,
    };
    Ok(())
}

/// Recomputes whether the `filelock` logger can emit DEBUG records (by level, as `logging.disable` and
/// the logger's effective level decide; a disabled logger is left to Python to filter), and clears
/// `pyo3-log`'s cache of levels for ferrolock's own loggers. Called by `ferrolock._log` whenever
/// `logging` levels change.
#[pyfunction]
pub(crate) fn _logging_changed(py: Python<'_>) -> PyResult<()> {
    let logger = logger(py)?;
    let disabled_up_to: i32 = logger.getattr("manager")?.getattr("disable")?.extract()?;
    let effective: i32 = logger.call_method0("getEffectiveLevel")?.extract()?;
    ENABLED.store(disabled_up_to < DEBUG && effective <= DEBUG, Ordering::Relaxed);
    super::reset_log_cache();
    Ok(())
}

/// Turns the flag on for good: for a `logging` whose level changes cannot be watched.
#[pyfunction]
pub(crate) fn _logging_unwatched() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether the acquire path currently builds `filelock` DEBUG records (for tests and diagnostics).
#[pyfunction]
pub(crate) fn _filelock_debug_enabled() -> bool {
    enabled()
}
