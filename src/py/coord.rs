//! `Coordinator`, `CoordLock` and `CoordCancel`: the coordinator, converted and delegated.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::convert::{Data, SettableTimeout, holder_to_dict, wait_for};
use super::wait::{Gil, call, detached};
use crate::coord::{Cancel, CoordLock, Coordinator, LockSpec, run_once};
use crate::job::{RunOnceOutcome, default_marker_text};
use crate::lock::{Acquired, LockMode, Owner, Seconds, Wait};

/// A connection to a coordination service (`file://DIR` or `postgresql://...`).
#[pyclass(name = "Coordinator", module = "ferrolock._ferrolock", frozen, subclass)]
pub(crate) struct PyCoordinator {
    pub(crate) core: Coordinator,
}

#[pymethods]
impl PyCoordinator {
    #[new]
    fn py_new(py: Python<'_>, url: String) -> PyResult<Self> {
        let core = detached(py, || Coordinator::connect(&url))?;
        Ok(Self { core })
    }

    #[getter]
    fn url(&self) -> String {
        self.core.backend().url()
    }

    #[getter]
    fn backend(&self) -> &'static str {
        self.core.backend().kind()
    }

    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let locks = detached(py, || self.core.status())?;
        let out = PyList::empty(py);
        for lock in locks {
            let d = PyDict::new(py);
            d.set_item("name", &lock.name)?;
            let holders = PyList::empty(py);
            for h in &lock.holders {
                let hd = PyDict::new(py);
                hd.set_item("mode", mode_name(h.mode))?;
                hd.set_item("holder", h.holder.as_ref().map(|r| holder_to_dict(py, r)).transpose()?)?;
                holders.append(hd)?;
            }
            d.set_item("holders", holders)?;
            d.set_item("waiting", lock.waiting)?;
            out.append(d)?;
        }
        Ok(out)
    }

    fn fenced_write(&self, py: Python<'_>, name: String, token: u64, value: Data) -> PyResult<()> {
        detached(py, || self.core.fenced_write(&name, token, value.as_bytes()))
    }

    fn fenced_read<'py>(&self, py: Python<'py>, name: String) -> PyResult<Option<(u64, Bound<'py, PyBytes>)>> {
        let value = detached(py, || self.core.fenced_read(&name))?;
        Ok(value.map(|(token, data)| (token, PyBytes::new(py, &data))))
    }

    #[pyo3(signature = (name, setup, *, timeout=None, marker_text=None))]
    fn run_once(
        &self,
        py: Python<'_>,
        name: String,
        setup: Py<PyAny>,
        timeout: Option<Seconds>,
        marker_text: Option<Py<PyAny>>,
    ) -> PyResult<&'static str> {
        let wait = Wait::from_timeout(timeout);
        // Always detached, even for one attempt: the setup re-attaches to run.
        let run = |ctl: &mut crate::lock::WaitControl<'_>, _: &_| {
            run_once(&self.core, &name, wait, ctl, None, || {
                Python::attach(|py| {
                    setup.call0(py)?;
                    match &marker_text {
                        None => Ok(default_marker_text()),
                        Some(text) => Ok(text.bind(py).extract::<Data>()?.as_bytes().to_vec()),
                    }
                })
            })
        };
        let outcome = call(py, Gil::Release, None, drop, run)?;
        Ok(match outcome {
            RunOnceOutcome::AlreadyDone => "already-done",
            RunOnceOutcome::DoneByOther => "done-by-other",
            RunOnceOutcome::Ran => "ran",
        })
    }

    fn __repr__(&self) -> String {
        format!("Coordinator({:?})", self.core.backend().url())
    }
}

fn mode_name(mode: LockMode) -> &'static str {
    match mode {
        LockMode::Exclusive => "exclusive",
        LockMode::Shared => "shared",
    }
}

/// A named lock from a coordinator.
#[pyclass(name = "CoordLock", module = "ferrolock._ferrolock", frozen, subclass)]
pub(crate) struct PyCoordLock {
    core: CoordLock,
    /// Always `Some`: as `FileLock`'s, a number (negative waits forever).
    timeout: SettableTimeout,
    blocking: bool,
}

#[pymethods]
impl PyCoordLock {
    #[new]
    #[pyo3(signature = (coordinator, name, timeout=Seconds::whole(-1), *, shared=false, purpose=None, blocking=true, on_lost=None))]
    #[pyo3(
        text_signature = "(coordinator, name, timeout=-1.0, *, shared=False, purpose=None, blocking=True, on_lost=None)"
    )]
    fn py_new(
        coordinator: PyRef<'_, PyCoordinator>,
        name: String,
        timeout: Seconds,
        shared: bool,
        purpose: Option<String>,
        blocking: bool,
        on_lost: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let mut spec = LockSpec::new(name)?;
        spec.mode = if shared { LockMode::Shared } else { LockMode::Exclusive };
        spec.purpose = purpose;
        spec.on_lost = on_lost.map(|callback| -> crate::coord::LostCallback {
            Arc::new(move || {
                Python::attach(|py| {
                    if let Err(e) = callback.call0(py) {
                        e.write_unraisable(py, None);
                    }
                });
            })
        });
        Ok(Self {
            core: coordinator.core.lock(spec),
            timeout: SettableTimeout::new(Some(timeout)),
            blocking,
        })
    }

    #[pyo3(signature = (timeout=None, poll_interval=None, *, blocking=None, cancel=None))]
    fn acquire(
        slf: Bound<'_, Self>,
        timeout: Option<Seconds>,
        poll_interval: Option<f64>,
        blocking: Option<bool>,
        cancel: Option<PyRef<'_, PyCoordCancel>>,
    ) -> PyResult<PyCoordAcquired> {
        let _ = poll_interval; // accepted for FileLock compatibility; waits happen in the server
        let this = slf.get();
        let wait = this.wait(timeout, blocking);
        let cancel = cancel.map(|c| Arc::clone(&c.inner));
        this.acquire_for(slf.py(), Owner::current_thread(), wait, cancel.as_deref())?;
        Ok(PyCoordAcquired {
            lock: slf.into_any().unbind(),
        })
    }

    #[pyo3(signature = (force=false))]
    fn release(&self, py: Python<'_>, force: bool) -> PyResult<()> {
        let owner = Owner::current_thread();
        detached(py, || self.core.release_as(owner, force))?;
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        let this = slf.get();
        let wait = this.wait(None, None);
        this.acquire_for(slf.py(), Owner::current_thread(), wait, None)?;
        Ok(slf)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        let owner = Owner::current_thread();
        detached(py, || self.core.release_as(owner, false))?;
        Ok(false)
    }

    #[pyo3(signature = (owner, timeout=None, *, blocking=None, cancel=None))]
    fn _acquire_as(
        &self,
        py: Python<'_>,
        owner: u64,
        timeout: Option<Seconds>,
        blocking: Option<bool>,
        cancel: Option<PyRef<'_, PyCoordCancel>>,
    ) -> PyResult<bool> {
        let wait = self.wait(timeout, blocking);
        let cancel = cancel.map(|c| Arc::clone(&c.inner));
        let acquired = self.acquire_for(py, Owner::from_raw(owner), wait, cancel.as_deref())?;
        Ok(acquired == Acquired::Fresh)
    }

    #[pyo3(signature = (owner, force=false))]
    fn _release_as(&self, py: Python<'_>, owner: u64, force: bool) -> PyResult<bool> {
        detached(py, || self.core.release_as(Owner::from_raw(owner), force))
    }

    fn _lock_count_as(&self, owner: u64) -> u32 {
        self.core.lock_count(Owner::from_raw(owner))
    }

    fn _token_as(&self, py: Python<'_>, owner: u64) -> PyResult<u64> {
        detached(py, || self.core.token_as(Owner::from_raw(owner)))
    }

    fn _ensure_held_as(&self, py: Python<'_>, owner: u64) -> PyResult<()> {
        detached(py, || self.core.ensure_held_as(Owner::from_raw(owner)))
    }

    fn _fenced_write_as(&self, py: Python<'_>, owner: u64, value: Data) -> PyResult<()> {
        detached(py, || {
            self.core.fenced_write_as(Owner::from_raw(owner), value.as_bytes())
        })
    }

    fn _lost_as(&self, owner: u64) -> bool {
        self.core.is_lost(Owner::from_raw(owner))
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
    fn name(&self) -> &str {
        self.core.name()
    }

    #[getter]
    fn lock_file(&self) -> &str {
        self.core.name()
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
    fn shared(&self) -> bool {
        self.core.mode() == LockMode::Shared
    }

    #[getter]
    fn purpose(&self) -> Option<&str> {
        self.core.purpose()
    }

    fn __repr__(&self) -> String {
        format!(
            "CoordLock({:?}, shared={}, locked={})",
            self.core.name(),
            if self.core.mode() == LockMode::Shared {
                "True"
            } else {
                "False"
            },
            if self.core.is_locked() { "True" } else { "False" }
        )
    }
}

impl PyCoordLock {
    fn default_timeout(&self) -> Seconds {
        self.timeout.get().unwrap_or(Seconds::whole(-1))
    }

    fn wait(&self, timeout: Option<Seconds>, blocking: Option<bool>) -> Wait {
        wait_for(
            timeout.unwrap_or_else(|| self.default_timeout()),
            blocking.unwrap_or(self.blocking),
        )
    }

    fn acquire_for(&self, py: Python<'_>, owner: Owner, wait: Wait, cancel: Option<&Cancel>) -> PyResult<Acquired> {
        let undo = |_| {
            let _ = self.core.release_as(owner, false);
        };
        // Even one attempt is a round trip to a server: always detached.
        call(py, Gil::Release, None, undo, |ctl, _| {
            self.core.acquire_as(owner, wait, ctl, cancel)
        })
    }
}

/// Returned by `CoordLock.acquire()`: releases on exit, so `with lock.acquire(timeout=5):` works.
#[pyclass(name = "CoordAcquired", module = "ferrolock._ferrolock", frozen)]
pub(crate) struct PyCoordAcquired {
    lock: Py<PyAny>,
}

#[pymethods]
impl PyCoordAcquired {
    fn __enter__(&self, py: Python<'_>) -> Py<PyAny> {
        self.lock.clone_ref(py)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.lock.call_method0(py, "release")?;
        Ok(false)
    }
}

/// Cancels coordinator waits from another thread or task.
#[pyclass(name = "CoordCancel", module = "ferrolock._ferrolock", frozen)]
pub(crate) struct PyCoordCancel {
    pub(crate) inner: Arc<Cancel>,
}

#[pymethods]
impl PyCoordCancel {
    #[new]
    fn py_new() -> Self {
        Self {
            inner: Arc::new(Cancel::new()),
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

/// The SQL that creates the coordinator's schema (`ferrolock schema --sql`).
#[pyfunction]
#[pyo3(signature = (schema="ferrolock"))]
#[cfg_attr(feature = "postgres", allow(clippy::unnecessary_wraps))]
pub(crate) fn _coord_schema_sql(schema: &str) -> PyResult<String> {
    #[cfg(feature = "postgres")]
    {
        Ok(crate::coord::PgBackend::schema_sql(schema))
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = schema;
        Err(Error::Coordinator {
            op: "schema",
            message: "built without the PostgreSQL backend".into(),
        }
        .into())
    }
}

/// A bare `pg_advisory_lock` session through the same client library (the benchmark's floor).
#[cfg(feature = "postgres")]
#[pyclass(name = "_RawAdvisory", module = "ferrolock._ferrolock", frozen)]
pub(crate) struct PyRawAdvisory {
    inner: std::sync::Mutex<crate::coord::RawAdvisory>,
}

#[cfg(feature = "postgres")]
#[pymethods]
impl PyRawAdvisory {
    #[new]
    fn py_new(py: Python<'_>, url: String) -> PyResult<Self> {
        let inner = detached(py, || crate::coord::RawAdvisory::connect(&url))?;
        Ok(Self {
            inner: std::sync::Mutex::new(inner),
        })
    }

    fn lock(&self, py: Python<'_>, key: i64) -> PyResult<()> {
        detached(py, || self.raw().lock(key))
    }

    fn try_lock(&self, py: Python<'_>, key: i64) -> PyResult<bool> {
        detached(py, || self.raw().try_lock(key))
    }

    fn unlock(&self, py: Python<'_>, key: i64) -> PyResult<()> {
        detached(py, || self.raw().unlock(key))
    }
}

#[cfg(feature = "postgres")]
impl PyRawAdvisory {
    fn raw(&self) -> std::sync::MutexGuard<'_, crate::coord::RawAdvisory> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
