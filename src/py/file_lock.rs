//! `ferrolock._ferrolock.FileLock` (py-filelock's API over the core lock) and its acquire proxy.
//!
//! The object is configured by `__init__`, not `__new__`, so Python subclasses can have an `__init__`
//! of their own that calls `super().__init__(...)` with any signature (virtualenv's does), and
//! `ferrolock.FileLock`'s construction logic (`is_singleton`, extra options) can live in Python.

use std::ffi::OsStr;
use std::sync::OnceLock;

use pyo3::exceptions::{PyDeprecationWarning, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::convert::{PathArg, holder_to_dict, wait_for};
use super::lock_acquire::{BadPath, Configured};
use super::lock_options::{ContextErrors, DEFAULT_POLL_INTERVAL, Defaults, ModeArg, PollInterval, not_initialized};
use super::lock_tools::PyCancelToken;
use super::wait::{Gil, attached, call};
use crate::error::Error;
use crate::lock::{Acquired, CancelToken, FileLock, LockMode, LockOptions, Owner, Seconds, Wait};

/// A cross-process lock on one file.
#[pyclass(name = "FileLock", module = "ferrolock._ferrolock", frozen, subclass)]
pub(crate) struct PyFileLock {
    cell: OnceLock<Configured>,
}

/// The `id()` the DEBUG records name.
fn id_of(slf: &Bound<'_, PyFileLock>) -> usize {
    slf.as_ptr() as usize
}

#[pymethods]
impl PyFileLock {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn py_new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Self { cell: OnceLock::new() }
    }

    #[pyo3(signature = (
        lock_file, timeout=Seconds::whole(-1), mode=ModeArg::Unset, thread_local=true, *, blocking=true,
        poll_interval=PollInterval(DEFAULT_POLL_INTERVAL), shared=false, purpose=None, create_dirs=true,
        holder_record=true, detect_deadlock=true, on_acquired=None, context_error_policy=None
    ))]
    #[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)]
    fn __init__(
        &self,
        py: Python<'_>,
        lock_file: PathArg,
        timeout: Seconds,
        mode: ModeArg,
        thread_local: bool,
        blocking: bool,
        poll_interval: PollInterval,
        shared: bool,
        purpose: Option<String>,
        create_dirs: bool,
        holder_record: bool,
        detect_deadlock: bool,
        on_acquired: Option<Bound<'_, PyAny>>,
        context_error_policy: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let context_errors = context_error_policy
            .as_ref()
            .map_or(Ok(ContextErrors::Chain), ContextErrors::parse)?;
        let on_acquired = on_acquired.filter(|hook| !hook.is_none());
        if let Some(hook) = &on_acquired
            && !hook.is_callable()
        {
            return Err(super::convert::expected("on_acquired", "a callable or None", hook));
        }
        let PathArg(lock_file) = lock_file;
        let options = LockOptions {
            mode: if shared { LockMode::Shared } else { LockMode::Exclusive },
            // Unset: 0o666 and let the umask and default ACLs decide, as open() and py-filelock do.
            file_mode: match mode {
                ModeArg::Explicit(bits) => bits,
                ModeArg::Unset => 0o666,
            },
            purpose: purpose.clone(),
            create_dirs,
            // A hook writes the caller's content into a truncated file; a record would be in its way.
            holder_record: holder_record && on_acquired.is_none(),
            detect_deadlock,
            deadlock_on_deadline: false,
            exact_mode: matches!(mode, ModeArg::Explicit(_)),
            truncate: on_acquired.is_some(),
        };
        let core = match FileLock::new(&lock_file, &options) {
            Ok(core) => Ok(core),
            Err(Error::InvalidName { .. }) if lock_file.as_os_str().is_empty() => Err(BadPath::Empty),
            Err(Error::InvalidName { .. }) => Err(BadPath::Nul),
            Err(e) => return Err(e.into()),
        };
        let configured = Configured {
            core,
            lock_file,
            mode,
            purpose,
            owner: (!thread_local).then(Owner::unique),
            defaults: Defaults::new(py, timeout, blocking, poll_interval.0, thread_local)?,
            on_acquired: on_acquired.map(Bound::unbind),
            context_errors,
        };
        self.cell
            .set(configured)
            .map_err(|_| PyRuntimeError::new_err("this FileLock is already initialized"))
    }

    #[pyo3(signature = (timeout=None, poll_interval=None, *, poll_intervall=None, blocking=None, cancel=None, cancel_check=None))]
    #[allow(clippy::too_many_arguments)]
    fn acquire<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<Seconds>,
        poll_interval: Option<PollInterval>,
        poll_intervall: Option<PollInterval>,
        blocking: Option<bool>,
        cancel: Option<PyRef<'py, PyCancelToken>>,
        cancel_check: Option<Bound<'py, PyAny>>,
    ) -> PyResult<PyAcquireReturnProxy> {
        let py = slf.py();
        let this = slf.get().configured()?;
        if poll_intervall.is_some() {
            let category = py.get_type::<PyDeprecationWarning>();
            PyErr::warn(py, &category, c"use poll_interval instead of poll_intervall", 1)?;
        }
        let wait = wait_for(
            timeout.unwrap_or_else(|| this.defaults.timeout(py)),
            blocking.unwrap_or_else(|| this.defaults.blocking(py)),
        );
        let check = cancel_check.filter(|f| !f.is_none()).map(|f| {
            let every = poll_interval.or(poll_intervall).map(|p| p.0);
            (f, every.unwrap_or_else(|| this.defaults.poll_interval(py)))
        });
        let token = cancel.as_ref().map(|c| &*c.inner);
        this.acquire(py, id_of(slf), this.owner_now(), wait, token, check)?;
        Ok(PyAcquireReturnProxy {
            lock: slf.clone().into_any().unbind(),
        })
    }

    #[pyo3(signature = (force=false))]
    fn release(slf: &Bound<'_, Self>, force: bool) -> PyResult<()> {
        slf.get().configured()?.release(slf.py(), id_of(slf), force)
    }

    fn __enter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        let py = slf.py();
        let this = slf.get().configured()?;
        let wait = wait_for(this.defaults.timeout(py), this.defaults.blocking(py));
        this.acquire(py, id_of(slf), this.owner_now(), wait, None, None)?;
        Ok(slf.clone())
    }

    #[pyo3(signature = (_exc_type=None, exc_value=None, _traceback=None))]
    fn __exit__(
        slf: &Bound<'_, Self>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        exc_value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        slf.get().configured()?.exit(slf.py(), id_of(slf), exc_value)?;
        Ok(false)
    }

    /// Acquire for an explicit owner id (the asyncio layers pass one per event loop or lock object),
    /// running the `on_acquired` hook after a fresh acquisition. No DEBUG records: the caller writes them.
    #[pyo3(signature = (owner, timeout=None, *, blocking=None, cancel=None))]
    fn _acquire_as(
        &self,
        py: Python<'_>,
        owner: u64,
        timeout: Option<Seconds>,
        blocking: Option<bool>,
        cancel: Option<PyRef<'_, PyCancelToken>>,
    ) -> PyResult<bool> {
        let this = self.configured()?;
        let core = this.core()?;
        let wait = wait_for(
            timeout.unwrap_or_else(|| this.defaults.timeout(py)),
            blocking.unwrap_or_else(|| this.defaults.blocking(py)),
        );
        let owner = Owner::from_raw(owner);
        let token = cancel.as_ref().map(|c| &*c.inner);
        let acquired = acquire_for(py, core, owner, wait, token)?;
        if acquired == Acquired::Fresh
            && let Some(hook) = &this.on_acquired
            && let Err(hook_error) = hook.call1(py, (core.raw_fd(owner).unwrap_or(-1),))
        {
            return Err(match attached(py, || core.release_as(owner, false)) {
                Ok(_) => hook_error,
                Err(release_error) => super::lock_acquire::both_failed(
                    py,
                    "on_acquired and the release after it both failed",
                    hook_error,
                    release_error,
                ),
            });
        }
        Ok(acquired == Acquired::Fresh)
    }

    #[pyo3(signature = (owner, force=false))]
    fn _release_as(&self, py: Python<'_>, owner: u64, force: bool) -> PyResult<bool> {
        let Ok(core) = &self.configured()?.core else {
            return Ok(false);
        };
        attached(py, || core.release_as(Owner::from_raw(owner), force))
    }

    fn _lock_count_as(&self, owner: u64) -> PyResult<u32> {
        let this = self.configured()?;
        Ok(this
            .core
            .as_ref()
            .map_or(0, |core| core.lock_count(Owner::from_raw(owner))))
    }

    /// The owner id of a lock that owns its holds (`thread_local=False`), else None.
    #[getter]
    fn _owner(&self) -> PyResult<Option<u64>> {
        Ok(self.configured()?.owner.map(Owner::as_raw))
    }

    /// A fresh owner id, never used before in this process and never again.
    #[staticmethod]
    fn _new_owner() -> u64 {
        Owner::unique().as_raw()
    }

    /// The calling thread's owner id.
    #[staticmethod]
    fn _thread_owner() -> u64 {
        Owner::current_thread().as_raw()
    }

    #[getter]
    fn is_locked(&self) -> PyResult<bool> {
        Ok(self.configured()?.core.as_ref().is_ok_and(FileLock::is_locked))
    }

    #[getter]
    fn lock_counter(&self) -> PyResult<u32> {
        let this = self.configured()?;
        Ok(this.core.as_ref().map_or(0, |core| core.lock_count(this.owner_now())))
    }

    #[getter]
    fn lock_file(&self) -> PyResult<&OsStr> {
        Ok(self.configured()?.lock_file.as_os_str())
    }

    #[getter]
    fn timeout(&self, py: Python<'_>) -> PyResult<f64> {
        Ok(self.configured()?.defaults.timeout(py).get())
    }

    #[setter]
    fn set_timeout(&self, py: Python<'_>, value: Seconds) -> PyResult<()> {
        self.configured()?.defaults.set_timeout(py, value)
    }

    #[getter]
    fn blocking(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.configured()?.defaults.blocking(py))
    }

    #[setter]
    fn set_blocking(&self, py: Python<'_>, value: bool) -> PyResult<()> {
        self.configured()?.defaults.set_blocking(py, value)
    }

    #[getter]
    fn poll_interval(&self, py: Python<'_>) -> PyResult<f64> {
        Ok(self.configured()?.defaults.poll_interval(py))
    }

    #[setter]
    fn set_poll_interval(&self, py: Python<'_>, value: PollInterval) -> PyResult<()> {
        self.configured()?.defaults.set_poll_interval(py, value)
    }

    /// The permission bits asked for, or py-filelock's `0o644` when none were.
    #[getter]
    fn mode(&self) -> PyResult<u32> {
        Ok(match self.configured()?.mode {
            ModeArg::Explicit(bits) => bits,
            ModeArg::Unset => 0o644,
        })
    }

    #[getter]
    fn has_explicit_mode(&self) -> PyResult<bool> {
        Ok(matches!(self.configured()?.mode, ModeArg::Explicit(_)))
    }

    fn is_thread_local(&self) -> PyResult<bool> {
        Ok(self.configured()?.defaults.thread_local())
    }

    #[getter]
    fn shared(&self) -> PyResult<bool> {
        Ok(self
            .configured()?
            .core
            .as_ref()
            .is_ok_and(|core| core.mode() == LockMode::Shared))
    }

    #[getter]
    fn purpose(&self) -> PyResult<Option<&str>> {
        Ok(self.configured()?.purpose.as_deref())
    }

    #[getter]
    fn on_acquired(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        Ok(self.configured()?.on_acquired.as_ref().map(|hook| hook.clone_ref(py)))
    }

    #[getter]
    fn context_error_policy(&self) -> PyResult<&'static str> {
        Ok(self.configured()?.context_errors.name())
    }

    fn holder<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Ok(core) = &self.configured()?.core else {
            return Ok(None);
        };
        core.holder().map(|h| holder_to_dict(py, &h)).transpose()
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let name = slf.get_type().qualname()?;
        let Some(this) = slf.get().cell.get() else {
            return Ok(format!("<{name} (not initialized)>"));
        };
        let (shared, locked) = this.core.as_ref().map_or((false, false), |core| {
            (core.mode() == LockMode::Shared, core.is_locked())
        });
        let py_bool = |b: bool| if b { "True" } else { "False" };
        Ok(format!(
            "{name}({:?}, shared={}, locked={})",
            this.lock_file.display().to_string(),
            py_bool(shared),
            py_bool(locked)
        ))
    }
}

impl PyFileLock {
    fn configured(&self) -> PyResult<&Configured> {
        self.cell.get().ok_or_else(not_initialized)
    }
}

/// Acquires `core` for `owner` under the interrupt protocol (see [`call`]): a Ctrl-C or an exception
/// raised in a log call ends the wait, or gives the lock back if it was already won.
pub(crate) fn acquire_for(
    py: Python<'_>,
    core: &FileLock,
    owner: Owner,
    wait: Wait,
    cancel: Option<&CancelToken>,
) -> PyResult<Acquired> {
    let undo = |_| {
        let _ = core.release_as(owner, false);
    };
    call(py, Gil::for_wait(wait), cancel, undo, |ctl, _| {
        core.acquire_as(owner, wait, ctl)
    })
}

/// Returned by `FileLock.acquire()`: a context manager that releases on exit, so
/// `with lock.acquire(timeout=5):` works as in py-filelock.
#[pyclass(name = "AcquireReturnProxy", module = "ferrolock._ferrolock", frozen)]
pub(crate) struct PyAcquireReturnProxy {
    lock: Py<PyAny>,
}

#[pymethods]
impl PyAcquireReturnProxy {
    #[getter]
    fn lock(&self, py: Python<'_>) -> Py<PyAny> {
        self.lock.clone_ref(py)
    }

    fn __enter__(&self, py: Python<'_>) -> Py<PyAny> {
        self.lock.clone_ref(py)
    }

    #[pyo3(signature = (*exc))]
    fn __exit__(&self, py: Python<'_>, exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        let exc = if exc.is_empty() {
            PyTuple::new(py, [py.None(), py.None(), py.None()])?
        } else {
            exc.clone()
        };
        self.lock.call_method1(py, "__exit__", exc)?;
        Ok(false)
    }
}
