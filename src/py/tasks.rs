//! `ferrolock.TaskQueue`: the core's local task queue, with ferrolock's own format or one written in
//! Python. Every wait happens with the GIL released and can be interrupted (Ctrl-C); a Python format's
//! methods run with the GIL taken back.

use std::borrow::Borrow;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use super::convert::{FileMode, PathArg, SettableTimeout, wait_for};
use super::tasks_format::{Bridged, PyFormat};
use super::wait::{Gil, Interruption, call};
use crate::error::Error;
use crate::lock::{Seconds, Wait};
use crate::tasks::{ClaimOutcome, LocalQueue, NativeFormat, QueueLayout, QueueOptions, ReleaseOutcome};

/// A queue of tasks, each held by at most one claimant at a time.
#[pyclass(name = "TaskQueue", module = "ferrolock._ferrolock", frozen)]
pub(crate) struct PyTaskQueue {
    core: LocalQueue,
    /// A format written in Python; `None` for ferrolock's own.
    format: Option<Py<PyAny>>,
    /// The default timeout (settable from any thread).
    timeout: SettableTimeout,
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

/// Runs `$body` once for this queue's format, bound to `$format` (ferrolock's own, or the Python one).
macro_rules! with_format {
    ($queue:expr, $py:expr, |$format:ident| $body:expr) => {
        match &$queue.format {
            None => {
                let $format = NativeFormat;
                $body
            }
            Some(object) => {
                let $format = PyFormat(object.clone_ref($py));
                $body
            }
        }
    };
}

#[pymethods]
impl PyTaskQueue {
    #[new]
    #[pyo3(signature = (
        path, *, locks_dir=None, lock_path=None, backup_path=None, format=None, timeout=Seconds::whole(-1), purpose=None,
        task_lock_mode=FileMode(0o644), detect_deadlock=true
    ))]
    #[pyo3(
        text_signature = "(path, *, locks_dir=None, lock_path=None, backup_path=None, format=None, timeout=-1.0, \\
        purpose=None, task_lock_mode=420, detect_deadlock=True)"
    )]
    #[allow(clippy::too_many_arguments)] // keyword-only options
    fn py_new(
        path: PathArg,
        locks_dir: Option<PathArg>,
        lock_path: Option<PathArg>,
        backup_path: Option<PathArg>,
        format: Option<Py<PyAny>>,
        timeout: Seconds,
        purpose: Option<String>,
        task_lock_mode: FileMode,
        detect_deadlock: bool,
    ) -> PyResult<Self> {
        let mut layout = QueueLayout::beside(path.0);
        if let Some(dir) = locks_dir {
            layout.task_locks = dir.0;
        }
        if let Some(lock) = lock_path {
            layout.state_lock = lock.0;
        }
        if backup_path.is_some() {
            layout.backup = backup_path.map(|p| p.0);
        }
        let options = QueueOptions {
            purpose: purpose.unwrap_or_else(|| format!("task queue {}", layout.state.display())),
            task_lock_mode: task_lock_mode.0,
            detect_deadlock,
        };
        Ok(Self {
            core: LocalQueue::new(layout, options)?,
            format,
            timeout: SettableTimeout::new(Some(timeout)),
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
        self.default_timeout().get()
    }

    #[setter]
    fn set_timeout(&self, value: Seconds) {
        self.timeout.set(Some(value));
    }

    fn task_lock_path(&self, task_id: &str) -> PyResult<String> {
        Ok(self.core.task_lock_path(task_id)?.display().to_string())
    }

    #[pyo3(signature = (*task_ids, timeout=None))]
    fn add(&self, py: Python<'_>, task_ids: Vec<String>, timeout: Option<Seconds>) -> PyResult<usize> {
        self.native_only("add")?;
        let (wait, state) = (self.wait(timeout), &self.core.layout().state);
        call(py, Gil::for_wait(wait), None, drop, |ctl, _| {
            self.core.modify(&mut NativeFormat, wait, ctl, |_, doc| {
                let mut doc = doc.unwrap_or_default();
                let added = doc.add(task_ids.iter().map(String::as_str));
                // Written when something changed, and the first time (an empty queue is a queue).
                Ok(((added > 0 || !state.exists()).then_some(doc), added))
            })
        })
    }

    #[pyo3(signature = (*task_ids, timeout=None))]
    fn remove(&self, py: Python<'_>, task_ids: Vec<String>, timeout: Option<Seconds>) -> PyResult<usize> {
        self.native_only("remove")?;
        let wait = self.wait(timeout);
        let ids: Vec<&str> = task_ids.iter().map(String::as_str).collect();
        call(py, Gil::for_wait(wait), None, drop, |ctl, _| {
            self.core.modify(&mut NativeFormat, wait, ctl, |_, doc| {
                let Some(mut doc) = doc else { return Ok((None, 0)) };
                let removed = doc.remove(&ids);
                Ok(((removed > 0).then_some(doc), removed))
            })
        })
    }

    #[pyo3(signature = (task_id, *, by, timeout=None))]
    fn claim(
        &self,
        py: Python<'_>,
        task_id: &str,
        by: &Bound<'_, PyAny>,
        timeout: Option<Seconds>,
    ) -> PyResult<PyClaimResult> {
        let wait = self.wait(timeout);
        with_format!(self, py, |format| claim(&self.core, py, format, task_id, by, wait))
    }

    #[pyo3(signature = (task_ids, *, by, timeout=None))]
    fn claim_many(
        &self,
        py: Python<'_>,
        task_ids: Vec<String>,
        by: &Bound<'_, PyAny>,
        timeout: Option<Seconds>,
    ) -> PyResult<Vec<PyClaimResult>> {
        let wait = self.wait(timeout);
        let ids: Vec<&str> = task_ids.iter().map(String::as_str).collect();
        with_format!(self, py, |format| claim_many(&self.core, py, format, &ids, by, wait))
    }

    #[pyo3(signature = (*, by, block=true, timeout=None))]
    fn claim_next(
        &self,
        py: Python<'_>,
        by: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<Seconds>,
    ) -> PyResult<Option<String>> {
        let wait = self.wait(timeout);
        with_format!(self, py, |format| claim_next(&self.core, py, format, by, block, wait))
    }

    #[pyo3(signature = (task_id, *, by, force=false, timeout=None))]
    fn release(
        &self,
        py: Python<'_>,
        task_id: &str,
        by: &Bound<'_, PyAny>,
        force: bool,
        timeout: Option<Seconds>,
    ) -> PyResult<&'static str> {
        let wait = self.wait(timeout);
        with_format!(self, py, |format| release(
            &self.core, py, format, task_id, by, force, wait
        ))
    }

    fn owner(&self, py: Python<'_>, task_id: &str) -> PyResult<Option<Py<PyAny>>> {
        Ok(self
            .tasks(py)?
            .into_iter()
            .find(|(id, _)| id == task_id)
            .and_then(|(_, owner)| owner))
    }

    fn tasks(&self, py: Python<'_>) -> PyResult<Vec<(String, Option<Py<PyAny>>)>> {
        with_format!(self, py, |format| tasks(&self.core, py, format))
    }
}

impl PyTaskQueue {
    fn default_timeout(&self) -> Seconds {
        self.timeout.get().unwrap_or(Seconds::whole(-1))
    }

    fn wait(&self, timeout: Option<Seconds>) -> Wait {
        wait_for(timeout.unwrap_or_else(|| self.default_timeout()), true)
    }

    fn native_only(&self, what: &str) -> PyResult<()> {
        if self.format.is_some() {
            return Err(PyTypeError::new_err(format!(
                "TaskQueue.{what}() needs ferrolock's own format; this queue's format adds and removes tasks itself"
            )));
        }
        Ok(())
    }
}

fn claim<F: Bridged>(
    queue: &LocalQueue,
    py: Python<'_>,
    mut format: F,
    task_id: &str,
    by: &Bound<'_, PyAny>,
    wait: Wait,
) -> PyResult<PyClaimResult>
where
    F::Error: Interruption + Send,
    F::Owner: Send,
{
    let who = F::who(by)?;
    let outcome = call(py, Gil::for_wait(wait), None, drop, |ctl, _| {
        queue.claim(&mut format, task_id, who.borrow(), wait, ctl)
    })?;
    claim_result::<F>(py, task_id, outcome)
}

fn claim_many<F: Bridged>(
    queue: &LocalQueue,
    py: Python<'_>,
    mut format: F,
    ids: &[&str],
    by: &Bound<'_, PyAny>,
    wait: Wait,
) -> PyResult<Vec<PyClaimResult>>
where
    F::Error: Interruption + Send,
    F::Owner: Send,
{
    let who = F::who(by)?;
    let outcomes = call(py, Gil::for_wait(wait), None, drop, |ctl, _| {
        queue.claim_many(&mut format, ids, who.borrow(), wait, ctl)
    })?;
    ids.iter()
        .zip(outcomes)
        .map(|(id, o)| claim_result::<F>(py, id, o))
        .collect()
}

fn claim_next<F: Bridged>(
    queue: &LocalQueue,
    py: Python<'_>,
    mut format: F,
    by: &Bound<'_, PyAny>,
    block: bool,
    wait: Wait,
) -> PyResult<Option<String>>
where
    F::Error: Interruption + Send,
{
    let who = F::who(by)?;
    call(py, Gil::for_wait(wait), None, drop, |ctl, _| {
        queue.claim_next(&mut format, who.borrow(), wait, block, ctl)
    })
}

fn release<F: Bridged>(
    queue: &LocalQueue,
    py: Python<'_>,
    mut format: F,
    task_id: &str,
    by: &Bound<'_, PyAny>,
    force: bool,
    wait: Wait,
) -> PyResult<&'static str>
where
    F::Error: Interruption + Send,
    F::Owner: Send,
{
    let who = F::who(by)?;
    let outcome = call(py, Gil::for_wait(wait), None, drop, |ctl, _| {
        queue.release(&mut format, task_id, who.borrow(), force, wait, ctl)
    })?;
    Ok(release_name(&outcome))
}

/// The Python name of a release outcome.
pub(crate) fn release_name<O>(outcome: &ReleaseOutcome<O>) -> &'static str {
    match outcome {
        ReleaseOutcome::Released => "released",
        ReleaseOutcome::NotClaimed => "not_claimed",
        ReleaseOutcome::ClaimedByOther(_) => "claimed_by_other",
        ReleaseOutcome::Missing => "missing",
        ReleaseOutcome::NoQueue => "no_queue",
        ReleaseOutcome::Lost => "lost",
    }
}

/// Every task with its claim, read without a lock (each write is an atomic rename).
fn tasks<F: Bridged>(queue: &LocalQueue, py: Python<'_>, mut format: F) -> PyResult<Vec<(String, Option<Py<PyAny>>)>>
where
    F::Error: Interruption + Send,
{
    let entries = match queue.read(&mut format).map_err(Into::into)? {
        Some(doc) => format.tasks(&doc).map_err(Into::into)?,
        None => Vec::new(),
    };
    entries
        .into_iter()
        .map(|e| Ok((e.id, e.owner.map(|o| F::owner(py, o)).transpose()?)))
        .collect()
}

pub(crate) fn claim_result<F: Bridged>(
    py: Python<'_>,
    task_id: &str,
    outcome: ClaimOutcome<F::Owner>,
) -> PyResult<PyClaimResult>
where
    F::Error: Interruption + Send,
{
    let (outcome, owner, reason) = match outcome {
        ClaimOutcome::Claimed => ("claimed", None, None),
        ClaimOutcome::Taken(owner) => ("taken", Some(F::owner(py, owner)?), None),
        ClaimOutcome::Missing => ("missing", None, None),
        ClaimOutcome::Busy => ("busy", None, None),
        ClaimOutcome::Failed(e) => ("failed", None, Some(failure_text(py, e))),
        ClaimOutcome::NoQueue => ("no_queue", None, None),
    };
    Ok(PyClaimResult {
        task_id: task_id.to_owned(),
        outcome,
        owner,
        reason,
    })
}

/// What `str()` of the exception a per-task failure maps to says.
fn failure_text(py: Python<'_>, e: Error) -> String {
    let err = PyErr::from(e);
    err.value(py).str().map_or_else(|_| err.to_string(), |s| s.to_string())
}
