//! What a configured `FileLock` does when acquired and released, in py-filelock's terms: its DEBUG
//! records, `cancel_check`, the `on_acquired` hook, a bad path reported at acquisition, and
//! `context_error_policy`.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pyo3::exceptions::PyFileNotFoundError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use super::lock_log;
use super::lock_options::{ContextErrors, Defaults, ModeArg};
use super::wait::{Gil, Pending, attached, call};
use crate::error::Error;
use crate::lock::{Acquired, CancelToken, FileLock, Owner, Wait, WaitControl, read_holder};

pyo3::import_exception!(ferrolock.exceptions, Timeout);
pyo3::import_exception!(ferrolock.exceptions, InvalidName);

/// A lock path the core refuses. py-filelock reports a bad path when the lock is acquired, with the
/// words of the OS (`open("")`) or of Python (`open("a\0b")`), never when it is constructed: code builds
/// locks at import time and handles errors around `acquire`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BadPath {
    Empty,
    Nul,
}

impl BadPath {
    fn error(self, path: &OsStr) -> PyErr {
        match self {
            Self::Empty => PyFileNotFoundError::new_err((nix::libc::ENOENT, "No such file or directory", "")),
            Self::Nul => InvalidName::new_err(format!(
                "lock path {:?} contains an embedded null byte",
                path.to_string_lossy()
            )),
        }
    }
}

/// A `FileLock` once its `__init__` has run.
pub(crate) struct Configured {
    pub(crate) core: Result<FileLock, BadPath>,
    pub(crate) lock_file: PathBuf,
    pub(crate) mode: ModeArg,
    pub(crate) purpose: Option<String>,
    /// `Some` when the object owns its holds (`thread_local=False`): every thread re-enters them.
    pub(crate) owner: Option<Owner>,
    pub(crate) defaults: Defaults,
    pub(crate) on_acquired: Option<Py<PyAny>>,
    pub(crate) context_errors: ContextErrors,
}

/// A `cancel_check` callable and how often (seconds) to consult it while waiting.
pub(crate) type CancelCheck<'py> = (Bound<'py, PyAny>, f64);

impl Configured {
    pub(crate) fn core(&self) -> PyResult<&FileLock> {
        self.core.as_ref().map_err(|bad| bad.error(self.lock_file.as_os_str()))
    }

    /// The owner acquisitions from the calling thread act as.
    pub(crate) fn owner_now(&self) -> Owner {
        self.owner.unwrap_or_else(Owner::current_thread)
    }

    fn log(&self, py: Python<'_>, format: &'static str, id: usize) -> PyResult<()> {
        lock_log::debug(py, format, id, self.lock_file.as_os_str(), None)
    }

    /// py-filelock's `acquire`: one attempt with the GIL held, then (if someone else holds the lock and
    /// `wait` allows) a kernel wait with the GIL released, then the `on_acquired` hook. `id` is the
    /// Python object's `id()`, which the DEBUG records name.
    pub(crate) fn acquire(
        &self,
        py: Python<'_>,
        id: usize,
        owner: Owner,
        wait: Wait,
        cancel: Option<&CancelToken>,
        check: Option<CancelCheck<'_>>,
    ) -> PyResult<Acquired> {
        let core = self.core()?;
        let log = lock_log::enabled();
        if log && core.lock_count(owner) == 0 {
            self.log(py, "Attempting to acquire lock %s on %s", id)?;
        }
        let acquired = match try_once(py, core, owner)? {
            Ok(acquired) => acquired,
            Err(busy) if wait == Wait::Try => {
                if log {
                    self.log(py, "Failed to immediately acquire lock %s on %s", id)?;
                }
                return Err(busy.into());
            }
            Err(_) => {
                if log {
                    self.log_waiting(py, id, wait)?;
                }
                self.wait(py, id, core, owner, wait, cancel, check)?
            }
        };
        self.after_acquired(py, id, core, owner, acquired, log)?;
        Ok(acquired)
    }

    fn log_waiting(&self, py: Python<'_>, id: usize, wait: Wait) -> PyResult<()> {
        let path = self.lock_file.as_os_str();
        match wait.deadline() {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now()).as_secs_f64();
                let format = "Lock %s not acquired on %s, waiting %s seconds ...";
                lock_log::debug(py, format, id, path, Some(left))
            }
            None => lock_log::debug(
                py,
                "Lock %s not acquired on %s, waiting until it is free ...",
                id,
                path,
                None,
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn wait(
        &self,
        py: Python<'_>,
        id: usize,
        core: &FileLock,
        owner: Owner,
        wait: Wait,
        cancel: Option<&CancelToken>,
        check: Option<CancelCheck<'_>>,
    ) -> PyResult<Acquired> {
        let undo = |_| {
            let _ = core.release_as(owner, false);
        };
        let mut cancelled = false;
        let check = check.map(|(f, every)| (f.unbind(), every));
        let result = call(py, Gil::for_wait(wait), cancel, undo, |ctl, pending| match &check {
            None => core.acquire_as(owner, wait, ctl),
            Some((f, every)) => wait_checking(core, owner, wait, ctl, pending, (f, *every), &mut cancelled),
        });
        if let Err(err) = &result
            && lock_log::enabled()
        {
            if cancelled {
                self.log(py, "Cancellation requested for lock %s on %s", id)?;
            } else if err.is_instance_of::<Timeout>(py) {
                self.log(py, "Timeout on acquiring lock %s on %s", id)?;
            }
        }
        result
    }

    /// The hook and the "acquired" record; if either raises, what was just acquired is given back.
    fn after_acquired(
        &self,
        py: Python<'_>,
        id: usize,
        core: &FileLock,
        owner: Owner,
        acquired: Acquired,
        log: bool,
    ) -> PyResult<()> {
        if acquired == Acquired::Fresh
            && let Some(hook) = &self.on_acquired
        {
            let fd = core.raw_fd(owner).unwrap_or(-1);
            if let Err(hook_error) = hook.call1(py, (fd,)) {
                return Err(match attached(py, || core.release_as(owner, false)) {
                    Ok(_) => hook_error,
                    Err(release_error) => both_failed(
                        py,
                        "on_acquired and the release after it both failed",
                        hook_error,
                        release_error,
                    ),
                });
            }
        }
        if log && let Err(e) = self.log(py, "Lock %s acquired on %s", id) {
            let _ = attached(py, || core.release_as(owner, false));
            return Err(e);
        }
        Ok(())
    }

    /// py-filelock's `release(force)`, with its two records around the release that frees the file.
    pub(crate) fn release(&self, py: Python<'_>, id: usize, force: bool) -> PyResult<()> {
        let Ok(core) = &self.core else {
            return Ok(()); // a bad path was never acquired
        };
        let owner = self.owner_now();
        let frees = lock_log::enabled() && {
            let count = core.lock_count(owner);
            count == 1 || (force && count > 0)
        };
        if frees {
            self.log(py, "Attempting to release lock %s on %s", id)?;
        }
        attached(py, || core.release_as(owner, force))?;
        if frees {
            self.log(py, "Lock %s released on %s", id)?;
        }
        Ok(())
    }

    /// `__exit__`: release, and with `context_error_policy="group"` report a failed release together
    /// with the body's exception. (`"chain"` needs nothing: Python makes the body's exception the
    /// release error's `__context__`.)
    pub(crate) fn exit(&self, py: Python<'_>, id: usize, body: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        match self.release(py, id, false) {
            Err(release_error) if self.context_errors == ContextErrors::Group => match body {
                Some(body) if !body.is_none() => Err(both_failed(
                    py,
                    "lock body and release both failed",
                    PyErr::from_value(body.clone()),
                    release_error,
                )),
                _ => Err(release_error),
            },
            other => other,
        }
    }
}

/// One attempt without waiting: `Ok(Err(busy))` if someone else holds the lock (the caller decides
/// whether to wait), any other failure raised.
fn try_once(py: Python<'_>, core: &FileLock, owner: Owner) -> PyResult<Result<Acquired, Error>> {
    let undo = |attempt: Result<Acquired, Error>| {
        if attempt.is_ok() {
            let _ = core.release_as(owner, false);
        }
    };
    call(py, Gil::Keep, None, undo, |ctl, _| {
        match core.acquire_as(owner, Wait::Try, ctl) {
            Err(busy @ Error::WouldBlock { .. }) => Ok(Err(busy)),
            Err(e) => Err(e),
            Ok(acquired) => Ok(Ok(acquired)),
        }
    })
}

/// A kernel wait that also wakes every `every` seconds (at most every millisecond) to call
/// `cancel_check` with the GIL; a true result ends it as a timeout, as in py-filelock. The check runs
/// only once the lock was found busy, never for a lock that is free at once.
fn wait_checking(
    core: &FileLock,
    owner: Owner,
    wait: Wait,
    ctl: &mut WaitControl<'_>,
    pending: &Pending,
    (check, every): (&Py<PyAny>, f64),
    cancelled: &mut bool,
) -> Result<Acquired, Error> {
    let started = Instant::now();
    let every = Duration::try_from_secs_f64(every.max(0.001)).ok();
    let interrupt_every = match (ctl.interrupt_every, every) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut signals = ctl.on_interrupt.take();
    let mut on_interrupt = || {
        if signals.as_mut().is_some_and(|check_signals| check_signals()) {
            return true;
        }
        Python::attach(|py| match check.call0(py).and_then(|r| r.bind(py).is_truthy()) {
            Ok(stop) => {
                *cancelled |= stop;
                stop
            }
            Err(e) => {
                pending.record(e);
                true
            }
        })
    };
    let mut checked = WaitControl {
        cancel: ctl.cancel,
        interrupt_every,
        on_interrupt: Some(&mut on_interrupt),
    };
    let result = core.acquire_as(owner, wait, &mut checked);
    match result {
        Err(Error::Interrupted { path }) if *cancelled => {
            let holder = read_holder(&path).map(Box::new);
            Err(Error::Timeout {
                path,
                waited: started.elapsed(),
                holder,
                held_by: None,
            })
        }
        other => other,
    }
}

/// `BaseExceptionGroup(message, [first, second])`; where there is none (Python 3.10 without the
/// `exceptiongroup` backport), `second` with `first` as its context.
pub(crate) fn both_failed(py: Python<'_>, message: &str, first: PyErr, second: PyErr) -> PyErr {
    static GROUP: PyOnceLock<Option<Py<PyAny>>> = PyOnceLock::new();
    let group = GROUP.get_or_init(py, || {
        py.import("builtins")
            .and_then(|b| b.getattr("BaseExceptionGroup"))
            .or_else(|_| {
                py.import("exceptiongroup")
                    .and_then(|m| m.getattr("BaseExceptionGroup"))
            })
            .ok()
            .map(Bound::unbind)
    });
    let Some(group) = group else {
        second.set_context(py, Some(first));
        return second;
    };
    let members = vec![first.into_value(py).into_any(), second.into_value(py).into_any()];
    match group.call1(py, (message, members)) {
        Ok(exc) => PyErr::from_value(exc.into_bound(py)),
        Err(e) => e,
    }
}
