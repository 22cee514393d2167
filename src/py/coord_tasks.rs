//! `CoordTaskQueue`: a coordinator's task queue, converted and delegated. Every call that may wait or
//! talk to a server releases the GIL and can be interrupted (Ctrl-C); a claim that raced the
//! interruption is given back.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::convert::{SettableTimeout, wait_for};
use super::coord::{PyCoordCancel, PyCoordinator};
use super::tasks::{PyClaimResult, claim_result, release_name};
use super::tasks_format::Bridged;
use super::wait::{Gil, call, detached};
use crate::coord::CoordQueue;
use crate::lock::{Seconds, Wait, WaitControl};
use crate::tasks::NativeFormat;

/// A task queue from a coordinator; its claims live as long as it does.
#[pyclass(name = "CoordTaskQueue", module = "ferrolock._ferrolock", frozen, subclass)]
pub(crate) struct PyCoordTaskQueue {
    core: Arc<CoordQueue>,
    timeout: SettableTimeout,
}

#[pymethods]
impl PyCoordTaskQueue {
    #[new]
    #[pyo3(signature = (coordinator, queue, *, timeout=Seconds::whole(-1)))]
    #[pyo3(text_signature = "(coordinator, queue, *, timeout=-1.0)")]
    fn py_new(
        py: Python<'_>,
        coordinator: PyRef<'_, PyCoordinator>,
        queue: String,
        timeout: Seconds,
    ) -> PyResult<Self> {
        let coord = coordinator.core.clone();
        let core = detached(py, || coord.tasks(&queue))?;
        Ok(Self {
            core: Arc::new(core),
            timeout: SettableTimeout::new(Some(timeout)),
        })
    }

    #[getter]
    fn name(&self) -> String {
        self.core.name().to_owned()
    }

    #[getter]
    fn timeout(&self) -> f64 {
        self.default_timeout().get()
    }

    #[setter]
    fn set_timeout(&self, value: Seconds) {
        self.timeout.set(Some(value));
    }

    #[pyo3(signature = (*task_ids, timeout=None))]
    fn add(&self, py: Python<'_>, task_ids: Vec<String>, timeout: Option<Seconds>) -> PyResult<usize> {
        let wait = self.wait(timeout);
        let ids: Vec<&str> = task_ids.iter().map(String::as_str).collect();
        call(py, Gil::Release, None, drop, |ctl, _| self.core.add(&ids, wait, ctl))
    }

    #[pyo3(signature = (*task_ids, timeout=None))]
    fn remove(&self, py: Python<'_>, task_ids: Vec<String>, timeout: Option<Seconds>) -> PyResult<usize> {
        let wait = self.wait(timeout);
        let ids: Vec<&str> = task_ids.iter().map(String::as_str).collect();
        call(py, Gil::Release, None, drop, |ctl, _| self.core.remove(&ids, wait, ctl))
    }

    #[pyo3(signature = (task_id, *, by, timeout=None))]
    fn claim(&self, py: Python<'_>, task_id: &str, by: String, timeout: Option<Seconds>) -> PyResult<PyClaimResult> {
        let wait = self.wait(timeout);
        let undo = |outcome: crate::tasks::ClaimOutcome<_>| {
            if outcome.is_claimed() {
                self.give_back(task_id, &by);
            }
        };
        let outcome = call(py, Gil::Release, None, undo, |ctl, _| {
            self.core.claim(task_id, &by, wait, ctl)
        })?;
        claim_result::<NativeFormat>(py, task_id, outcome)
    }

    #[pyo3(signature = (*, by, block=true, timeout=None, cancel=None))]
    fn claim_next(
        &self,
        py: Python<'_>,
        by: String,
        block: bool,
        timeout: Option<Seconds>,
        cancel: Option<PyRef<'_, PyCoordCancel>>,
    ) -> PyResult<Option<String>> {
        let wait = self.wait(timeout);
        let cancel = cancel.map(|c| Arc::clone(&c.inner));
        let undo = |found: Option<String>| {
            if let Some(id) = found {
                self.give_back(&id, &by);
            }
        };
        call(py, Gil::Release, None, undo, |ctl, _| {
            self.core.claim_next(&by, wait, block, ctl, cancel.as_deref())
        })
    }

    #[pyo3(signature = (task_id, *, by, force=false, timeout=None))]
    fn release(
        &self,
        py: Python<'_>,
        task_id: &str,
        by: String,
        force: bool,
        timeout: Option<Seconds>,
    ) -> PyResult<&'static str> {
        let wait = self.wait(timeout);
        let outcome = call(py, Gil::Release, None, drop, |ctl, _| {
            self.core.release(task_id, &by, force, wait, ctl)
        })?;
        Ok(release_name(&outcome))
    }

    fn owner(&self, py: Python<'_>, task_id: &str) -> PyResult<Option<Py<PyAny>>> {
        Ok(self
            .tasks(py)?
            .into_iter()
            .find(|(id, _)| id == task_id)
            .and_then(|(_, owner)| owner))
    }

    fn tasks(&self, py: Python<'_>) -> PyResult<Vec<(String, Option<Py<PyAny>>)>> {
        let entries = detached(py, || self.core.tasks())?;
        entries
            .into_iter()
            .map(|e| Ok((e.id, e.owner.map(|o| NativeFormat::owner(py, o)).transpose()?)))
            .collect()
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        detached(py, || self.core.close())
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("CoordTaskQueue({:?})", self.core.name())
    }
}

impl PyCoordTaskQueue {
    fn default_timeout(&self) -> Seconds {
        self.timeout.get().unwrap_or(Seconds::whole(-1))
    }

    fn wait(&self, timeout: Option<Seconds>) -> Wait {
        wait_for(timeout.unwrap_or_else(|| self.default_timeout()), true)
    }

    /// Gives back a claim the caller will never hear of (the call raised after all).
    fn give_back(&self, task_id: &str, by: &str) {
        if let Err(e) = self
            .core
            .release(task_id, by, false, Wait::Forever, &mut WaitControl::default())
        {
            log::warn!(target: "ferrolock::coord", "could not give back task {task_id:?}: {e}");
        }
    }
}
