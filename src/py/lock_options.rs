//! The settable defaults of a `FileLock` (`timeout`, `blocking`, `poll_interval`) and its mode argument.
//!
//! py-filelock keeps a lock's settings in its per-thread context when `thread_local=True` (the default):
//! a value set in one thread is seen by that thread only, and every other thread keeps the value given at
//! construction. With `thread_local=False` one value is shared. ferrolock keeps the construction values
//! in atomics, and a thread's own values in a `threading.local`, looked at only once some thread has set
//! one: the acquire path of a lock whose settings were never changed reads atomics only.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pyo3::exceptions::PyAttributeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use super::convert::{FileMode, SettableTimeout, expected};
use crate::lock::Seconds;

/// py-filelock's `poll_interval` default: how often `cancel_check` is consulted while waiting.
pub(crate) const DEFAULT_POLL_INTERVAL: f64 = 0.05;

pub(crate) struct Defaults {
    timeout: SettableTimeout,
    blocking: AtomicBool,
    poll_interval: AtomicU64,
    /// A `threading.local` holding the values threads set, for a thread-local lock.
    per_thread: Option<Py<PyAny>>,
    /// Set once a thread has set a value of its own: until then `per_thread` is not consulted.
    overridden: AtomicBool,
}

impl Defaults {
    pub(crate) fn new(
        py: Python<'_>,
        timeout: Seconds,
        blocking: bool,
        poll_interval: f64,
        thread_local: bool,
    ) -> PyResult<Self> {
        static LOCAL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let per_thread = if thread_local {
            Some(LOCAL.import(py, "threading", "local")?.call0()?.unbind())
        } else {
            None
        };
        Ok(Self {
            timeout: SettableTimeout::new(Some(timeout)),
            blocking: AtomicBool::new(blocking),
            poll_interval: AtomicU64::new(poll_interval.to_bits()),
            per_thread,
            overridden: AtomicBool::new(false),
        })
    }

    pub(crate) fn thread_local(&self) -> bool {
        self.per_thread.is_some()
    }

    /// This thread's own value of `name`, if it set one.
    fn own<T: for<'a, 'py> FromPyObject<'a, 'py>>(&self, py: Python<'_>, name: &str) -> Option<T> {
        if !self.overridden.load(Ordering::Acquire) {
            return None;
        }
        let local = self.per_thread.as_ref()?.bind(py);
        let value = local.getattr(name).ok()?;
        value.extract().ok()
    }

    fn set_own<'py>(&self, py: Python<'py>, name: &str, value: impl IntoPyObject<'py>) -> PyResult<bool> {
        let Some(local) = &self.per_thread else {
            return Ok(false);
        };
        local.bind(py).setattr(name, value)?;
        self.overridden.store(true, Ordering::Release);
        Ok(true)
    }

    pub(crate) fn timeout(&self, py: Python<'_>) -> Seconds {
        self.own::<f64>(py, "timeout")
            .and_then(|t| Seconds::new(t).ok())
            .or_else(|| self.timeout.get())
            .unwrap_or(Seconds::whole(-1))
    }

    pub(crate) fn set_timeout(&self, py: Python<'_>, value: Seconds) -> PyResult<()> {
        if !self.set_own(py, "timeout", value.get())? {
            self.timeout.set(Some(value));
        }
        Ok(())
    }

    pub(crate) fn blocking(&self, py: Python<'_>) -> bool {
        self.own(py, "blocking")
            .unwrap_or_else(|| self.blocking.load(Ordering::Relaxed))
    }

    pub(crate) fn set_blocking(&self, py: Python<'_>, value: bool) -> PyResult<()> {
        if !self.set_own(py, "blocking", value)? {
            self.blocking.store(value, Ordering::Relaxed);
        }
        Ok(())
    }

    pub(crate) fn poll_interval(&self, py: Python<'_>) -> f64 {
        self.own(py, "poll_interval")
            .unwrap_or_else(|| f64::from_bits(self.poll_interval.load(Ordering::Relaxed)))
    }

    pub(crate) fn set_poll_interval(&self, py: Python<'_>, value: PollInterval) -> PyResult<()> {
        if !self.set_own(py, "poll_interval", value.0)? {
            self.poll_interval.store(value.0.to_bits(), Ordering::Relaxed);
        }
        Ok(())
    }
}

/// A `poll_interval` argument: a number of seconds, not NaN (any other value is kept as given; waits
/// consult `cancel_check` at most every millisecond).
#[derive(Clone, Copy)]
pub(crate) struct PollInterval(pub(crate) f64);

impl FromPyObject<'_, '_> for PollInterval {
    type Error = PyErr;

    fn extract(ob: Borrowed<'_, '_, PyAny>) -> PyResult<Self> {
        match ob.extract::<f64>() {
            Ok(secs) if secs.is_nan() => Err(pyo3::exceptions::PyValueError::new_err(
                "poll_interval must be a number of seconds, not nan",
            )),
            Ok(secs) => Ok(Self(secs)),
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyTypeError>(ob.py()) => {
                Err(expected("poll_interval", "a number of seconds", &ob))
            }
            Err(e) => Err(e),
        }
    }
}

/// A `mode` argument: permission bits, or unset (`-1`, py-filelock's sentinel, or `None`), in which case
/// the file is created `0o666` and the umask (and default ACLs) decide.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ModeArg {
    Unset,
    Explicit(u32),
}

impl FromPyObject<'_, '_> for ModeArg {
    type Error = PyErr;

    fn extract(ob: Borrowed<'_, '_, PyAny>) -> PyResult<Self> {
        if ob.is_none() || ob.extract::<i64>().is_ok_and(|m| m == -1) {
            return Ok(Self::Unset);
        }
        Ok(Self::Explicit(ob.extract::<FileMode>()?.0))
    }
}

/// py-filelock's `context_error_policy`: what `__exit__` raises when the body and the release both failed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContextErrors {
    /// The release error, with the body's as its `__context__` (Python's own behaviour).
    Chain,
    /// A `BaseExceptionGroup` of both.
    Group,
}

impl ContextErrors {
    pub(crate) fn parse(policy: &Bound<'_, PyAny>) -> PyResult<Self> {
        match policy.extract::<&str>() {
            Ok("chain") => Ok(Self::Chain),
            Ok("group") => Ok(Self::Group),
            _ => Err(pyo3::exceptions::PyValueError::new_err(format!(
                "context_error_policy must be 'chain' or 'group', got {}",
                policy.repr()?
            ))),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Chain => "chain",
            Self::Group => "group",
        }
    }
}

/// `AttributeError` for a lock used before its `__init__` ran (a subclass that never called it).
pub(crate) fn not_initialized() -> PyErr {
    PyAttributeError::new_err("this FileLock was not initialized: its __init__ (FileLock.__init__) never ran")
}
