//! `ferrolock._ferrolock.FileLock`, its acquire proxy and `CancelToken`.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

use super::convert::{FileMode, PathArg, SettableTimeout, holder_to_dict, wait_for};
use super::wait::{Gil, attached, call};
use crate::lock::{
    self, Acquired, CancelToken, FileLock, LockMode, LockOptions, LockState, Owner, Removal, Seconds, Wait,
};

/// A cross-process lock on one file.
#[pyclass(name = "FileLock", module = "ferrolock._ferrolock", frozen, subclass)]
pub(crate) struct PyFileLock {
    core: FileLock,
    /// Always `Some`: py-filelock's timeout is a number (negative waits forever).
    timeout: SettableTimeout,
    blocking: bool,
    lock_file: PathBuf,
    file_mode: u32,
    purpose: Option<String>,
}

#[pymethods]
impl PyFileLock {
    #[new]
    #[pyo3(signature = (
        lock_file, timeout=Seconds::whole(-1), mode=FileMode(0o644), *, blocking=true, shared=false, purpose=None,
        create_dirs=true, holder_record=true, detect_deadlock=true
    ))]
    #[pyo3(
        text_signature = "(lock_file, timeout=-1.0, mode=0o644, *, blocking=True, shared=False, purpose=None, \
        create_dirs=True, holder_record=True, detect_deadlock=True)"
    )]
    #[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)]
    fn py_new(
        lock_file: PathArg,
        timeout: Seconds,
        mode: FileMode,
        blocking: bool,
        shared: bool,
        purpose: Option<String>,
        create_dirs: bool,
        holder_record: bool,
        detect_deadlock: bool,
    ) -> PyResult<Self> {
        let options = LockOptions {
            mode: if shared { LockMode::Shared } else { LockMode::Exclusive },
            file_mode: mode.0,
            purpose: purpose.clone(),
            create_dirs,
            holder_record,
            detect_deadlock,
            ..LockOptions::default()
        };
        let PathArg(lock_file) = lock_file;
        Ok(Self {
            core: FileLock::new(&lock_file, &options)?,
            timeout: SettableTimeout::new(Some(timeout)),
            blocking,
            lock_file,
            file_mode: mode.0,
            purpose,
        })
    }

    #[pyo3(signature = (timeout=None, poll_interval=None, *, blocking=None, cancel=None))]
    fn acquire(
        slf: Bound<'_, Self>,
        timeout: Option<Seconds>,
        poll_interval: Option<f64>,
        blocking: Option<bool>,
        cancel: Option<PyRef<'_, PyCancelToken>>,
    ) -> PyResult<PyAcquireReturnProxy> {
        let _ = poll_interval; // accepted for py-filelock compatibility; waits happen in the kernel
        let this = slf.get();
        let wait = wait_for(
            timeout.unwrap_or_else(|| this.default_timeout()),
            blocking.unwrap_or(this.blocking),
        );
        let token = cancel.map(|c| Arc::clone(&c.inner));
        acquire_for(slf.py(), &this.core, Owner::current_thread(), wait, token.as_deref())?;
        Ok(PyAcquireReturnProxy {
            lock: slf.into_any().unbind(),
        })
    }

    #[pyo3(signature = (force=false))]
    fn release(&self, py: Python<'_>, force: bool) -> PyResult<()> {
        attached(py, || self.core.release_as(Owner::current_thread(), force))?;
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        let this = slf.get();
        let wait = wait_for(this.default_timeout(), this.blocking);
        acquire_for(slf.py(), &this.core, Owner::current_thread(), wait, None)?;
        Ok(slf)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        attached(py, || self.core.release_as(Owner::current_thread(), false))?;
        Ok(false)
    }

    /// Acquire for an explicit owner id (the asyncio layer passes one per task).
    #[pyo3(signature = (owner, timeout=None, *, blocking=None, cancel=None))]
    fn _acquire_as(
        &self,
        py: Python<'_>,
        owner: u64,
        timeout: Option<Seconds>,
        blocking: Option<bool>,
        cancel: Option<PyRef<'_, PyCancelToken>>,
    ) -> PyResult<bool> {
        let wait = wait_for(
            timeout.unwrap_or_else(|| self.default_timeout()),
            blocking.unwrap_or(self.blocking),
        );
        let token = cancel.map(|c| Arc::clone(&c.inner));
        let acquired = acquire_for(py, &self.core, Owner::from_raw(owner), wait, token.as_deref())?;
        Ok(acquired == Acquired::Fresh)
    }

    #[pyo3(signature = (owner, force=false))]
    fn _release_as(&self, py: Python<'_>, owner: u64, force: bool) -> PyResult<bool> {
        attached(py, || self.core.release_as(Owner::from_raw(owner), force))
    }

    fn _lock_count_as(&self, owner: u64) -> u32 {
        self.core.lock_count(Owner::from_raw(owner))
    }

    #[getter]
    fn is_locked(&self) -> bool {
        self.core.is_locked()
    }

    #[getter]
    fn lock_counter(&self) -> u32 {
        self.core.lock_count(Owner::current_thread())
    }

    #[getter]
    fn lock_file(&self) -> &OsStr {
        self.lock_file.as_os_str()
    }

    #[getter]
    fn timeout(&self) -> f64 {
        self.default_timeout().get()
    }

    #[setter]
    fn set_timeout(&self, value: Seconds) {
        self.timeout.set(Some(value));
    }

    #[getter]
    fn blocking(&self) -> bool {
        self.blocking
    }

    #[getter]
    fn mode(&self) -> u32 {
        self.file_mode
    }

    #[getter]
    fn shared(&self) -> bool {
        self.core.mode() == LockMode::Shared
    }

    #[getter]
    fn purpose(&self) -> Option<&str> {
        self.purpose.as_deref()
    }

    fn holder<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.core.holder().map(|h| holder_to_dict(py, &h)).transpose()
    }

    fn __repr__(&self) -> String {
        format!(
            "FileLock({:?}, shared={}, locked={})",
            self.lock_file.display().to_string(),
            if self.core.mode() == LockMode::Shared {
                "True"
            } else {
                "False"
            },
            if self.core.is_locked() { "True" } else { "False" }
        )
    }
}

impl PyFileLock {
    fn default_timeout(&self) -> Seconds {
        self.timeout.get().unwrap_or(Seconds::whole(-1))
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
    fn __enter__(&self, py: Python<'_>) -> Py<PyAny> {
        self.lock.clone_ref(py)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.lock.call_method0(py, "release")?;
        Ok(false)
    }
}

/// Cancels waits from another thread.
#[pyclass(name = "CancelToken", module = "ferrolock._ferrolock", frozen)]
pub(crate) struct PyCancelToken {
    inner: Arc<CancelToken>,
}

#[pymethods]
impl PyCancelToken {
    #[new]
    fn py_new() -> Self {
        Self {
            inner: Arc::new(CancelToken::new()),
        }
    }

    fn cancel(&self) {
        self.inner.cancel();
    }

    #[getter]
    fn cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }
}

/// `LockProbe(state, holder)` for a lock file, without disturbing it: `state` is `"missing"`,
/// `"free"` or `"held"`, `holder` the record while held (or None).
#[pyfunction]
pub(crate) fn probe(py: Python<'_>, path: PathArg) -> PyResult<Bound<'_, PyAny>> {
    static LOCK_PROBE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let (state, holder) = match lock::probe(&path.0)? {
        LockState::Missing => ("missing", None),
        LockState::Free => ("free", None),
        LockState::Held(h) => ("held", h.map(|h| holder_to_dict(py, &h)).transpose()?),
    };
    LOCK_PROBE
        .import(py, "ferrolock._types", "LockProbe")?
        .call1((state, holder))
}

/// Removes a lock file only if nobody holds it: `"removed"`, `"held"` or `"missing"`.
#[pyfunction]
pub(crate) fn remove_if_unheld(path: PathArg) -> PyResult<&'static str> {
    Ok(match lock::remove_if_unheld(&path.0)? {
        Removal::Removed => "removed",
        Removal::Held => "held",
        Removal::Missing => "missing",
    })
}
