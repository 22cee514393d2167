//! `JobLock`, the jobs-directory helpers and `run_once`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::convert::holder_to_dict;
use super::durable::Data;
use super::wait::{interruptible, lock_interrupted};
use crate::error::Error;
use crate::job::{self, JobLock, JobLocks, RunOnce, RunOnceError, RunOnceOutcome};
use crate::lock::{Wait, WaitControl};

/// An exclusive lock held by the object rather than a thread (logist's `FileLock` semantics).
#[pyclass(name = "JobLock", module = "ferrolock._ferrolock", frozen, subclass)]
pub(crate) struct PyJobLock {
    core: JobLock,
    timeout: Mutex<Option<f64>>,
}

#[pymethods]
impl PyJobLock {
    #[new]
    #[pyo3(signature = (lock_file_path, timeout=Some(30.0), *, purpose=None))]
    #[pyo3(text_signature = "(lock_file_path, timeout=30.0, *, purpose=None)")]
    fn py_new(lock_file_path: PathBuf, timeout: Option<f64>, purpose: Option<String>) -> PyResult<Self> {
        Ok(Self {
            core: JobLock::new(lock_file_path, purpose)?,
            timeout: Mutex::new(timeout),
        })
    }

    #[pyo3(signature = (blocking=true))]
    fn acquire(slf: &Bound<'_, Self>, blocking: bool) -> PyResult<bool> {
        let this = slf.get();
        let wait = if blocking {
            legacy_wait(this.get_timeout())
        } else {
            Wait::Try
        };
        let started = std::time::Instant::now();
        let held_before = this.core.is_held();
        let undo = |acquired: bool| {
            if acquired && !held_before {
                let _ = this.core.release();
            }
        };
        let acquired = interruptible(slf.py(), wait, None, lock_interrupted, undo, |ctl| {
            this.core.acquire(wait, ctl)
        })?;
        if !acquired && blocking {
            // A blocking acquire with a timeout of zero or less gets one attempt, as logist's did.
            return Err(crate::lock::held_error(this.core.path(), Some(started.elapsed())).into());
        }
        Ok(acquired)
    }

    fn release(&self) -> PyResult<()> {
        self.core.release()?;
        Ok(())
    }

    fn is_locked(&self) -> bool {
        self.core.is_locked()
    }

    fn _held_by_current_thread(&self) -> bool {
        self.core.held_by_current_thread()
    }

    #[getter(_locked)]
    fn locked_flag(&self) -> bool {
        self.core.is_held()
    }

    #[getter(_lock_fd)]
    fn lock_fd(&self) -> Option<i32> {
        self.core.raw_fd()
    }

    #[getter]
    fn lock_file_path(&self) -> PathBuf {
        self.core.path().to_path_buf()
    }

    #[getter]
    fn get_timeout(&self) -> Option<f64> {
        *self.timeout.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[setter]
    fn set_timeout(&self, value: Option<f64>) {
        *self.timeout.lock().unwrap_or_else(PoisonError::into_inner) = value;
    }

    fn holder<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.core.holder_record().map(|h| holder_to_dict(py, &h)).transpose()
    }

    fn __enter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        // Through Python, so a subclass's acquire (the logist shapes) is the one that runs.
        slf.call_method1("acquire", (true,))?;
        Ok(slf.clone())
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(slf: &Bound<'_, Self>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        slf.call_method0("release")?;
        Ok(false)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let this = slf.get();
        Ok(format!(
            "{}({:?}, locked={})",
            slf.get_type().qualname()?,
            this.core.path().display().to_string(),
            if this.core.is_held() { "True" } else { "False" }
        ))
    }
}

/// logist's timeout rules: `timeout <= 0` is one attempt (its loop gave up at the first check), NaN,
/// infinity and `None` wait forever.
fn legacy_wait(timeout: Option<f64>) -> Wait {
    match timeout {
        Some(t) if t <= 0.0 => Wait::Try,
        other => Wait::from_timeout_secs(other),
    }
}

fn run_once_interrupted(e: &RunOnceError<PyErr>) -> bool {
    matches!(e, RunOnceError::Coordination(Error::Interrupted { .. }))
}

/// A failed setup raises the setup's own exception, unchanged; coordination errors map as usual.
impl From<RunOnceError<PyErr>> for PyErr {
    fn from(e: RunOnceError<PyErr>) -> Self {
        match e {
            RunOnceError::Coordination(e) => e.into(),
            RunOnceError::Setup(e) => e,
        }
    }
}

/// `<base>/<job_id>/.lock`, after checking the job id cannot escape `base`.
#[pyfunction]
pub(crate) fn job_lock_path(base: PathBuf, job_id: &str) -> PyResult<PathBuf> {
    Ok(JobLocks::new(base).job_lock_path(job_id)?)
}

/// `<base>/.jobs_index.lock`.
#[pyfunction]
pub(crate) fn jobs_index_lock_path(base: PathBuf) -> PathBuf {
    JobLocks::new(base).index_lock_path()
}

/// Remove the job lock files nobody holds that are older than `max_age_seconds`; returns job names.
#[pyfunction]
pub(crate) fn cleanup_stale_job_locks(py: Python<'_>, base: PathBuf, max_age_seconds: f64) -> PyResult<Vec<OsString>> {
    // logist compared `age > max_age`: NaN matched nothing, a negative age limit matched everything.
    let max_age = if max_age_seconds.is_nan() {
        Duration::MAX
    } else {
        Duration::try_from_secs_f64(max_age_seconds.max(0.0)).unwrap_or(Duration::MAX)
    };
    Ok(py.detach(|| job::cleanup_stale(&base, max_age))?)
}

/// Run `setup` once across processes: a marker file plus a lock. True if this call ran it.
#[pyfunction]
#[pyo3(signature = (marker, lock_path, setup, *, timeout=None, marker_text=None, also_lock=Vec::new(), cleanup=true))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_once(
    py: Python<'_>,
    marker: PathBuf,
    lock_path: PathBuf,
    setup: Py<PyAny>,
    timeout: Option<f64>,
    marker_text: Option<Py<PyAny>>,
    also_lock: Vec<PathBuf>,
    cleanup: bool,
) -> PyResult<bool> {
    let spec = RunOnce {
        marker,
        lock: lock_path,
        also_lock,
        wait: Wait::from_timeout_secs(timeout),
        cleanup,
    };
    // Always detached, even for one attempt: the marker's fsyncs and the cleanup need not hold the GIL,
    // and the setup re-attaches to run.
    let detach_for = if spec.wait == Wait::Try {
        Wait::Forever
    } else {
        spec.wait
    };
    let run = |ctl: &mut WaitControl<'_>| {
        job::run_once(&spec, ctl, || {
            Python::attach(|py| {
                setup.call0(py)?;
                marker_bytes(py, marker_text.as_ref())
            })
        })
    };
    let outcome = interruptible(py, detach_for, None, run_once_interrupted, |_| {}, run)?;
    Ok(outcome == RunOnceOutcome::Ran)
}

fn marker_bytes(py: Python<'_>, marker_text: Option<&Py<PyAny>>) -> PyResult<Vec<u8>> {
    let Some(text) = marker_text else {
        return Ok(job::default_marker_text());
    };
    let text = text.bind(py);
    let value = if text.is_callable() {
        text.call0()?
    } else {
        text.clone()
    };
    Ok(value.extract::<Data>()?.as_bytes().to_vec())
}
