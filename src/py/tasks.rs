//! `ferrolock.TaskQueue`: the core's local task queue, with ferrolock's own format or one written in
//! Python. Every wait happens with the GIL released and can be interrupted (Ctrl-C); a Python format's
//! methods run with the GIL taken back.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::tasks_format::{PyFormat, bridge_interrupted, claim_record_to_dict};
use super::wait::{interruptible, lock_interrupted};
use crate::error::Error;
use crate::lock::Wait;
use crate::tasks::{
    ClaimOutcome, ClaimRecord, LocalQueue, NativeFormat, QueueLayout, QueueOptions, ReleaseOutcome, TaskFormat,
};

/// A queue of tasks, each held by at most one claimant at a time.
#[pyclass(name = "TaskQueue", module = "ferrolock._ferrolock", frozen)]
pub(crate) struct PyTaskQueue {
    core: LocalQueue,
    /// A format written in Python; `None` for ferrolock's own.
    format: Option<Py<PyAny>>,
    /// The default timeout in seconds, as f64 bits (settable from any thread).
    timeout: AtomicU64,
}

/// What one claim found.
#[pyclass(name = "ClaimResult", module = "ferrolock._ferrolock", frozen, get_all)]
pub(crate) struct PyClaimResult {
    task_id: String,
    outcome: &'static str,
    owner: Option<Py<PyAny>>,
    reason: Option<String>,
}

#[pymethods]
impl PyClaimResult {
    #[getter]
    fn claimed(&self) -> bool {
        self.outcome == "claimed"
    }

    fn __bool__(&self) -> bool {
        self.claimed()
    }

    fn __repr__(&self) -> String {
        format!("ClaimResult(task_id={:?}, outcome={:?})", self.task_id, self.outcome)
    }
}

#[pymethods]
impl PyTaskQueue {
    #[new]
    #[pyo3(signature = (
        path, *, locks_dir=None, lock_path=None, backup_path=None, format=None, timeout=-1.0, purpose=None,
        task_lock_mode=0o644, detect_deadlock=true
    ))]
    #[pyo3(
        text_signature = "(path, *, locks_dir=None, lock_path=None, backup_path=None, format=None, timeout=-1.0, \
        purpose=None, task_lock_mode=420, detect_deadlock=True)"
    )]
    #[allow(clippy::too_many_arguments)] // keyword-only options
    fn py_new(
        path: PathBuf,
        locks_dir: Option<PathBuf>,
        lock_path: Option<PathBuf>,
        backup_path: Option<PathBuf>,
        format: Option<Py<PyAny>>,
        timeout: f64,
        purpose: Option<String>,
        task_lock_mode: u32,
        detect_deadlock: bool,
    ) -> PyResult<Self> {
        let mut layout = QueueLayout::beside(path);
        if let Some(dir) = locks_dir {
            layout.task_locks = dir;
        }
        if let Some(lock) = lock_path {
            layout.state_lock = lock;
        }
        if backup_path.is_some() {
            layout.backup = backup_path;
        }
        let options = QueueOptions {
            purpose: purpose.unwrap_or_else(|| format!("task queue {}", layout.state.display())),
            task_lock_mode,
            detect_deadlock,
        };
        Ok(Self {
            core: LocalQueue::new(layout, options)?,
            format,
            timeout: AtomicU64::new(timeout.to_bits()),
        })
    }

    #[getter]
    fn path(&self) -> String {
        self.core.layout().state.display().to_string()
    }

    #[getter]
    fn lock_path(&self) -> String {
        self.core.layout().state_lock.display().to_string()
    }

    #[getter]
    fn backup_path(&self) -> Option<String> {
        self.core.layout().backup.as_ref().map(|p| p.display().to_string())
    }

    #[getter]
    fn locks_dir(&self) -> String {
        self.core.layout().task_locks.display().to_string()
    }

    #[getter]
    fn timeout(&self) -> f64 {
        f64::from_bits(self.timeout.load(Ordering::Relaxed))
    }

    #[setter]
    fn set_timeout(&self, value: f64) {
        self.timeout.store(value.to_bits(), Ordering::Relaxed);
    }

    fn task_lock_path(&self, task_id: &str) -> PyResult<String> {
        Ok(self.core.task_lock_path(task_id)?.display().to_string())
    }

    #[pyo3(signature = (*task_ids, timeout=None))]
    fn add(&self, py: Python<'_>, task_ids: Vec<String>, timeout: Option<f64>) -> PyResult<usize> {
        self.native_only("add")?;
        let wait = self.wait(timeout);
        interruptible(
            py,
            wait,
            None,
            lock_interrupted,
            |_| {},
            |ctl| {
                self.core.modify(&mut NativeFormat, wait, ctl, |_, doc| {
                    let mut doc = doc.unwrap_or_default();
                    let added = doc.add(task_ids.iter().map(String::as_str));
                    Ok(((added > 0 || !self.core.layout().state.exists()).then_some(doc), added))
                })
            },
        )
    }

    #[pyo3(signature = (*task_ids, timeout=None))]
    fn remove(&self, py: Python<'_>, task_ids: Vec<String>, timeout: Option<f64>) -> PyResult<usize> {
        self.native_only("remove")?;
        let wait = self.wait(timeout);
        let ids: Vec<&str> = task_ids.iter().map(String::as_str).collect();
        interruptible(
            py,
            wait,
            None,
            lock_interrupted,
            |_| {},
            |ctl| {
                self.core.modify(&mut NativeFormat, wait, ctl, |_, doc| {
                    let Some(mut doc) = doc else { return Ok((None, 0)) };
                    let removed = doc.remove(&ids);
                    Ok(((removed > 0).then_some(doc), removed))
                })
            },
        )
    }

    #[pyo3(signature = (task_id, *, by, timeout=None))]
    fn claim(
        &self,
        py: Python<'_>,
        task_id: &str,
        by: Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<PyClaimResult> {
        let wait = self.wait(timeout);
        match &self.format {
            None => {
                let by: String = by.extract()?;
                let outcome = interruptible(
                    py,
                    wait,
                    None,
                    lock_interrupted,
                    |_| {},
                    |ctl| self.core.claim(&mut NativeFormat, task_id, &by, wait, ctl),
                )?;
                claim_result(py, task_id, outcome, native_owner)
            }
            Some(format) => {
                let (mut format, by) = (PyFormat(format.clone_ref(py)), by.unbind());
                let outcome = interruptible(
                    py,
                    wait,
                    None,
                    bridge_interrupted,
                    |_| {},
                    |ctl| self.core.claim(&mut format, task_id, &by, wait, ctl),
                )?;
                claim_result(py, task_id, outcome, |_, owner| Ok(owner))
            }
        }
    }

    #[pyo3(signature = (task_ids, *, by, timeout=None))]
    fn claim_many(
        &self,
        py: Python<'_>,
        task_ids: Vec<String>,
        by: Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Vec<PyClaimResult>> {
        let wait = self.wait(timeout);
        let ids: Vec<&str> = task_ids.iter().map(String::as_str).collect();
        match &self.format {
            None => {
                let by: String = by.extract()?;
                let outcomes = interruptible(
                    py,
                    wait,
                    None,
                    lock_interrupted,
                    |_| {},
                    |ctl| self.core.claim_many(&mut NativeFormat, &ids, &by, wait, ctl),
                )?;
                ids.iter()
                    .zip(outcomes)
                    .map(|(id, o)| claim_result(py, id, o, native_owner))
                    .collect()
            }
            Some(format) => {
                let (mut format, by) = (PyFormat(format.clone_ref(py)), by.unbind());
                let outcomes = interruptible(
                    py,
                    wait,
                    None,
                    bridge_interrupted,
                    |_| {},
                    |ctl| self.core.claim_many(&mut format, &ids, &by, wait, ctl),
                )?;
                ids.iter()
                    .zip(outcomes)
                    .map(|(id, o)| claim_result(py, id, o, |_, owner| Ok(owner)))
                    .collect()
            }
        }
    }

    #[pyo3(signature = (*, by, block=true, timeout=None))]
    fn claim_next(
        &self,
        py: Python<'_>,
        by: Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Option<String>> {
        let wait = self.wait(timeout);
        match &self.format {
            None => {
                let by: String = by.extract()?;
                interruptible(
                    py,
                    wait,
                    None,
                    lock_interrupted,
                    |_| {},
                    |ctl| self.core.claim_next(&mut NativeFormat, &by, wait, block, ctl),
                )
            }
            Some(format) => {
                let (mut format, by) = (PyFormat(format.clone_ref(py)), by.unbind());
                interruptible(
                    py,
                    wait,
                    None,
                    bridge_interrupted,
                    |_| {},
                    |ctl| self.core.claim_next(&mut format, &by, wait, block, ctl),
                )
            }
        }
    }

    #[pyo3(signature = (task_id, *, by, force=false, timeout=None))]
    fn release(
        &self,
        py: Python<'_>,
        task_id: &str,
        by: Bound<'_, PyAny>,
        force: bool,
        timeout: Option<f64>,
    ) -> PyResult<&'static str> {
        let wait = self.wait(timeout);
        let outcome = match &self.format {
            None => {
                let by: String = by.extract()?;
                release_name(&interruptible(
                    py,
                    wait,
                    None,
                    lock_interrupted,
                    |_| {},
                    |ctl| self.core.release(&mut NativeFormat, task_id, &by, force, wait, ctl),
                )?)
            }
            Some(format) => {
                let (mut format, by) = (PyFormat(format.clone_ref(py)), by.unbind());
                release_name(&interruptible(
                    py,
                    wait,
                    None,
                    bridge_interrupted,
                    |_| {},
                    |ctl| self.core.release(&mut format, task_id, &by, force, wait, ctl),
                )?)
            }
        };
        Ok(outcome)
    }

    fn owner(&self, py: Python<'_>, task_id: &str) -> PyResult<Option<Py<PyAny>>> {
        Ok(self
            .entries(py)?
            .into_iter()
            .find_map(|(id, owner)| (id == task_id).then_some(owner))
            .flatten())
    }

    fn tasks<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        self.entries(py)?
            .into_iter()
            .map(|(id, owner)| {
                PyTuple::new(
                    py,
                    [
                        id.into_pyobject(py)?.into_any().unbind(),
                        owner.into_pyobject(py)?.unbind(),
                    ],
                )
            })
            .collect()
    }
}

impl PyTaskQueue {
    fn wait(&self, timeout: Option<f64>) -> Wait {
        Wait::from_timeout_secs(Some(timeout.unwrap_or_else(|| self.timeout())))
    }

    fn native_only(&self, what: &str) -> PyResult<()> {
        if self.format.is_some() {
            return Err(PyTypeError::new_err(format!(
                "TaskQueue.{what}() needs ferrolock's own format; this queue's format adds and removes tasks itself"
            )));
        }
        Ok(())
    }

    /// Every task with its claim, read without a lock (each write is an atomic rename).
    fn entries(&self, py: Python<'_>) -> PyResult<Vec<(String, Option<Py<PyAny>>)>> {
        match &self.format {
            None => {
                let mut format = NativeFormat;
                let entries = match py.detach(|| self.core.read(&mut format))? {
                    Some(doc) => format.tasks(&doc)?,
                    None => Vec::new(),
                };
                entries
                    .into_iter()
                    .map(|e| Ok((e.id, e.owner.map(|o| native_owner(py, o)).transpose()?)))
                    .collect()
            }
            Some(format) => {
                let mut format = PyFormat(format.clone_ref(py));
                let doc = self.core.read(&mut format).map_err(PyErr::from)?;
                let entries = match doc {
                    Some(doc) => format.tasks(&doc).map_err(PyErr::from)?,
                    None => Vec::new(),
                };
                Ok(entries.into_iter().map(|e| (e.id, e.owner)).collect())
            }
        }
    }
}

fn native_owner(py: Python<'_>, owner: ClaimRecord) -> PyResult<Py<PyAny>> {
    Ok(claim_record_to_dict(py, &owner)?.into_any().unbind())
}

fn claim_result<O>(
    py: Python<'_>,
    task_id: &str,
    outcome: ClaimOutcome<O>,
    to_python: fn(Python<'_>, O) -> PyResult<Py<PyAny>>,
) -> PyResult<PyClaimResult> {
    let (outcome, owner, reason) = match outcome {
        ClaimOutcome::Claimed => ("claimed", None, None),
        ClaimOutcome::Taken(owner) => ("taken", Some(to_python(py, owner)?), None),
        ClaimOutcome::Missing => ("missing", None, None),
        ClaimOutcome::Busy => ("busy", None, None),
        ClaimOutcome::Failed(e) => ("failed", None, Some(failure_text(e))),
        ClaimOutcome::NoQueue => ("no_queue", None, None),
    };
    Ok(PyClaimResult {
        task_id: task_id.to_owned(),
        outcome,
        owner,
        reason,
    })
}

/// The text Python shows for a per-task failure (as `str()` of the exception it maps to).
fn failure_text(e: Error) -> String {
    Python::attach(|py| {
        let err = PyErr::from(e);
        err.value(py).str().map_or_else(|_| err.to_string(), |s| s.to_string())
    })
}

fn release_name<O>(outcome: &ReleaseOutcome<O>) -> &'static str {
    match outcome {
        ReleaseOutcome::Released => "released",
        ReleaseOutcome::NotClaimed => "not_claimed",
        ReleaseOutcome::ClaimedByOther(_) => "claimed_by_other",
        ReleaseOutcome::Missing => "missing",
        ReleaseOutcome::NoQueue => "no_queue",
    }
}
