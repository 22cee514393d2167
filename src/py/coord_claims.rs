//! `CoordClaim` and the claim queries of a coordinator: converted and delegated to `crate::coord`.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use super::convert::{holder_to_dict, wait_for};
use super::coord::{PyCoordCancel, PyCoordinator};
use super::wait::{Gil, call, detached};
use crate::coord::{Cancel, ClaimInfo, ClaimPath, ClaimSpec, CoordClaim, claims};
use crate::lock::{Acquired, LockMode, Owner, Seconds, Wait};

fn mode_of(shared: bool) -> LockMode {
    if shared { LockMode::Shared } else { LockMode::Exclusive }
}

fn parsed(project: &str, paths: &[String], root: Option<&str>) -> crate::Result<Vec<ClaimPath>> {
    claims::validate_project(project)?;
    claims::minimal_set(
        paths
            .iter()
            .map(|p| ClaimPath::parse(p, root))
            .collect::<crate::Result<Vec<_>>>()?,
    )
}

fn info_to_dict<'py>(py: Python<'py>, info: &ClaimInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("project", &info.project)?;
    d.set_item("paths", PyList::new(py, &info.paths)?)?;
    d.set_item(
        "mode",
        if info.mode == LockMode::Shared {
            "shared"
        } else {
            "exclusive"
        },
    )?;
    d.set_item("holder", holder_to_dict(py, &info.holder)?)?;
    Ok(d)
}

/// The first live claim of `project` that conflicts with claiming `paths`, as a dict, or `None`.
#[pyfunction]
#[pyo3(signature = (coordinator, project, paths, root=None, shared=false))]
pub(crate) fn _claims_find_conflict<'py>(
    py: Python<'py>,
    coordinator: PyRef<'py, PyCoordinator>,
    project: String,
    paths: Vec<String>,
    root: Option<String>,
    shared: bool,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let core = coordinator.core.clone();
    let found = detached(py, || {
        let set = parsed(&project, &paths, root.as_deref())?;
        core.backend().claims().find_conflict(&project, &set, mode_of(shared))
    })?;
    found.map(|info| info_to_dict(py, &info)).transpose()
}

/// Waits until no live claim conflicts with claiming `paths` (`True`) or `timeout` runs out (`False`).
#[pyfunction]
#[pyo3(signature = (coordinator, project, paths, timeout, root=None, shared=false, cancel=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn _claims_wait_for_scope(
    py: Python<'_>,
    coordinator: PyRef<'_, PyCoordinator>,
    project: String,
    paths: Vec<String>,
    timeout: Seconds,
    root: Option<String>,
    shared: bool,
    cancel: Option<PyRef<'_, PyCoordCancel>>,
) -> PyResult<bool> {
    let core = coordinator.core.clone();
    let set = detached(py, || parsed(&project, &paths, root.as_deref()))?;
    let wait = Wait::from_timeout(Some(timeout));
    let cancel = cancel.map(|c| Arc::clone(&c.inner));
    call(py, Gil::Release, None, drop, |ctl, _| {
        core.backend()
            .claims()
            .wait_for_scope(&project, &set, mode_of(shared), wait, ctl, cancel.as_deref())
    })
}

/// Every live claim of `project`, as dicts.
#[pyfunction]
pub(crate) fn _claims_live<'py>(
    py: Python<'py>,
    coordinator: PyRef<'py, PyCoordinator>,
    project: String,
) -> PyResult<Bound<'py, PyList>> {
    let core = coordinator.core.clone();
    let found = detached(py, || {
        claims::validate_project(&project)?;
        core.backend().claims().live_claims(&project)
    })?;
    let out = PyList::empty(py);
    for info in &found {
        out.append(info_to_dict(py, info)?)?;
    }
    Ok(out)
}

/// A scope claim from a coordinator: a set of paths of a project, held exclusively or shared.
#[pyclass(name = "CoordClaim", module = "ferrolock._ferrolock", frozen, subclass)]
pub(crate) struct PyCoordClaim {
    core: CoordClaim,
    timeout: Seconds,
    blocking: bool,
}

#[pymethods]
impl PyCoordClaim {
    #[new]
    #[pyo3(signature = (coordinator, paths, *, project="default".to_owned(), root=None, shared=false, purpose=None, timeout=Seconds::whole(-1), blocking=true, on_lost=None))]
    #[pyo3(
        text_signature = "(coordinator, paths, *, project='default', root=None, shared=False, purpose=None, timeout=-1.0, blocking=True, on_lost=None)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        coordinator: PyRef<'_, PyCoordinator>,
        paths: Vec<String>,
        project: String,
        root: Option<String>,
        shared: bool,
        purpose: Option<String>,
        timeout: Seconds,
        blocking: bool,
        on_lost: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let mut spec = ClaimSpec::new(&project, &refs, root.as_deref())?;
        spec.mode = mode_of(shared);
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
            core: coordinator.core.claim(spec),
            timeout,
            blocking,
        })
    }

    #[pyo3(signature = (timeout=None, *, blocking=None, cancel=None))]
    fn acquire(
        slf: Bound<'_, Self>,
        timeout: Option<Seconds>,
        blocking: Option<bool>,
        cancel: Option<PyRef<'_, PyCoordCancel>>,
    ) -> PyResult<PyClaimAcquired> {
        let this = slf.get();
        let wait = wait_for(timeout.unwrap_or(this.timeout), blocking.unwrap_or(this.blocking));
        let cancel = cancel.map(|c| Arc::clone(&c.inner));
        this.acquire_for(slf.py(), Owner::current_thread(), wait, cancel.as_deref())?;
        Ok(PyClaimAcquired { claim: slf.unbind() })
    }

    #[pyo3(signature = (force=false))]
    fn release(&self, py: Python<'_>, force: bool) -> PyResult<()> {
        let owner = Owner::current_thread();
        detached(py, || self.core.release_as(owner, force))?;
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        let this = slf.get();
        let wait = wait_for(this.timeout, this.blocking);
        this.acquire_for(slf.py(), Owner::current_thread(), wait, None)?;
        Ok(slf)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        let owner = Owner::current_thread();
        detached(py, || self.core.release_as(owner, false))?;
        Ok(false)
    }

    /// Checks with the backend that the calling thread still holds the claim (`LockLost` if not).
    fn ensure_held(&self, py: Python<'_>) -> PyResult<()> {
        let owner = Owner::current_thread();
        detached(py, || self.core.ensure_held_as(owner))
    }

    #[getter]
    fn is_held(&self) -> bool {
        self.core.count(Owner::current_thread()) > 0
    }

    #[getter]
    fn lost(&self) -> bool {
        self.core.is_lost(Owner::current_thread())
    }

    #[getter]
    fn project(&self) -> &str {
        &self.core.spec().project
    }

    #[getter]
    fn paths(&self) -> Vec<String> {
        self.core.spec().paths.iter().map(ClaimPath::display).collect()
    }

    #[getter]
    fn shared(&self) -> bool {
        self.core.spec().mode == LockMode::Shared
    }

    #[getter]
    fn purpose(&self) -> Option<&str> {
        self.core.spec().purpose.as_deref()
    }

    #[getter]
    fn timeout(&self) -> f64 {
        self.timeout.get()
    }

    fn __repr__(&self) -> String {
        format!(
            "CoordClaim({:?}, shared={}, held={})",
            self.core.spec().describe(),
            if self.shared() { "True" } else { "False" },
            if self.core.is_held() { "True" } else { "False" }
        )
    }
}

impl PyCoordClaim {
    fn acquire_for(&self, py: Python<'_>, owner: Owner, wait: Wait, cancel: Option<&Cancel>) -> PyResult<Acquired> {
        let undo = |_| {
            let _ = self.core.release_as(owner, false);
        };
        call(py, Gil::Release, None, undo, |ctl, _| {
            self.core.acquire_as(owner, wait, ctl, cancel)
        })
    }
}

/// Returned by `CoordClaim.acquire()`: releases on exit, so `with claim.acquire(timeout=5):` works.
#[pyclass(name = "CoordClaimAcquired", module = "ferrolock._ferrolock", frozen)]
pub(crate) struct PyClaimAcquired {
    claim: Py<PyCoordClaim>,
}

#[pymethods]
impl PyClaimAcquired {
    fn __enter__(&self, py: Python<'_>) -> Py<PyCoordClaim> {
        self.claim.clone_ref(py)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.claim.get().release(py, false)?;
        Ok(false)
    }
}
