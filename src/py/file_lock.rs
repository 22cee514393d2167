//! `ferrolock._ferrolock.FileLock`, its acquire proxy and `CancelToken`.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::convert::{holder_to_dict, wait_for};
use super::wait::{interruptible, lock_interrupted};
use crate::lock::{self, Acquired, CancelToken, FileLock, LockMode, LockOptions, LockState, Owner, Removal, Wait};

/// A cross-process lock on one file.
#[pyclass(name = "FileLock", module = "ferrolock._ferrolock", frozen, subclass)]
pub(crate) struct PyFileLock {
    core: FileLock,
    /// The default timeout in seconds, as f64 bits (settable from any thread).
    timeout: AtomicU64,
    blocking: bool,
    /// As given (bytes that are not UTF-8 included): handed back through `os.fsdecode` rules.
    lock_file: OsString,
    file_mode: u32,
    purpose: Option<String>,
}

#[pymethods]
impl PyFileLock {
    #[new]
    #[pyo3(signature = (
        lock_file, timeout=-1.0, mode=0o644, *, blocking=true, shared=false, purpose=None,
        create_dirs=true, holder_record=true, detect_deadlock=true
    ))]
    #[pyo3(
        text_signature = "(lock_file, timeout=-1.0, mode=0o644, *, blocking=True, shared=False, purpose=None, \
        create_dirs=True, holder_record=True, detect_deadlock=True)"
    )]
    #[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)]
    fn py_new(
        lock_file: PathBuf,
        timeout: f64,
        mode: u32,
        blocking: bool,
        shared: bool,
        purpose: Option<String>,
        create_dirs: bool,
        holder_record: bool,
        detect_deadlock: bool,
    ) -> PyResult<Self> {
        let options = LockOptions {
            mode: if shared { LockMode::Shared } else { LockMode::Exclusive },
            file_mode: mode,
            purpose: purpose.clone(),
            create_dirs,
            holder_record,
            detect_deadlock,
        };
        let lock_file_str = lock_file.as_os_str().to_owned();
        Ok(Self {
            core: FileLock::new(lock_file, &options)?,
            timeout: AtomicU64::new(timeout.to_bits()),
            blocking,
            lock_file: lock_file_str,
            file_mode: mode,
            purpose,
        })
    }

    #[pyo3(signature = (timeout=None, poll_interval=None, *, blocking=None, cancel=None))]
    fn acquire(
        slf: Bound<'_, Self>,
        timeout: Option<f64>,
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
    fn release(&self, force: bool) -> PyResult<()> {
        self.core.release_as(Owner::current_thread(), force)?;
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        let this = slf.get();
        let wait = wait_for(this.default_timeout(), this.blocking);
        acquire_for(slf.py(), &this.core, Owner::current_thread(), wait, None)?;
        Ok(slf)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.core.release_as(Owner::current_thread(), false)?;
        Ok(false)
    }

    /// Acquire for an explicit owner id (the asyncio layer passes one per task).
    #[pyo3(signature = (owner, timeout=None, *, blocking=None, cancel=None))]
    fn _acquire_as(
        &self,
        py: Python<'_>,
        owner: u64,
        timeout: Option<f64>,
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
    fn _release_as(&self, owner: u64, force: bool) -> PyResult<bool> {
        Ok(self.core.release_as(Owner::from_raw(owner), force)?)
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
        &self.lock_file
    }

    #[getter]
    fn timeout(&self) -> f64 {
        self.default_timeout()
    }

    #[setter]
    fn set_timeout(&self, value: f64) {
        self.timeout.store(value.to_bits(), Ordering::Relaxed);
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
    fn default_timeout(&self) -> f64 {
        f64::from_bits(self.timeout.load(Ordering::Relaxed))
    }
}

/// Acquires `core` for `owner`, the Python way (see [`interruptible`]).
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
    interruptible(py, wait, cancel, lock_interrupted, undo, |ctl| {
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

/// `("missing" | "free" | "held", holder record or None)` for a lock file, without disturbing it.
#[pyfunction]
pub(crate) fn probe(py: Python<'_>, path: PathBuf) -> PyResult<(&'static str, Option<Bound<'_, PyDict>>)> {
    Ok(match lock::probe(&path)? {
        LockState::Missing => ("missing", None),
        LockState::Free => ("free", None),
        LockState::Held(h) => ("held", h.map(|h| holder_to_dict(py, &h)).transpose()?),
    })
}

/// Removes a lock file only if nobody holds it: `"removed"`, `"held"` or `"missing"`.
#[pyfunction]
pub(crate) fn remove_if_unheld(path: PathBuf) -> PyResult<&'static str> {
    Ok(match lock::remove_if_unheld(&path)? {
        Removal::Removed => "removed",
        Removal::Held => "held",
        Removal::Missing => "missing",
    })
}
