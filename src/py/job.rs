//! `JobLock`, the jobs-directory helpers and `run_once`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::convert::{Data, PathArg, SettableTimeout, expected, holder_to_dict, paths};
use super::wait::{Gil, attached, call, detached};
use crate::job::{self, JobLock, JobLocks, RunOnce, RunOnceError, RunOnceOutcome};
use crate::lock::{Seconds, Wait};

/// An exclusive lock held by the object rather than a thread (logist's `FileLock` semantics).
#[pyclass(name = "JobLock", module = "ferrolock._ferrolock", frozen, subclass)]
pub(crate) struct PyJobLock {
    core: JobLock,
    timeout: SettableTimeout,
}

#[pymethods]
impl PyJobLock {
    #[new]
    #[pyo3(signature = (lock_file_path, timeout=Some(Seconds::whole(30)), *, purpose=None))]
    #[pyo3(text_signature = "(lock_file_path, timeout=30.0, *, purpose=None)")]
    fn py_new(lock_file_path: PathArg, timeout: Option<Seconds>, purpose: Option<String>) -> PyResult<Self> {
        Ok(Self {
            core: JobLock::new(lock_file_path.0, purpose)?,
            timeout: SettableTimeout::new(timeout),
        })
    }

    #[pyo3(signature = (blocking=true))]
    fn acquire(slf: &Bound<'_, Self>, blocking: bool) -> PyResult<bool> {
        Self::_acquire_within(slf, blocking, None)
    }

    /// `acquire` with this call's timeout (`None`: the object's).
    #[pyo3(signature = (blocking, timeout))]
    fn _acquire_within(slf: &Bound<'_, Self>, blocking: bool, timeout: Option<Seconds>) -> PyResult<bool> {
        let this = slf.get();
        let wait = if blocking {
            legacy_wait(timeout.or_else(|| this.timeout.get()))
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
        let acquired = call(slf.py(), Gil::for_wait(wait), None, undo, |ctl, _| {
            this.core.acquire(wait, ctl)
        })?;
        if !acquired && blocking {
            // A blocking acquire with a timeout of zero or less gets one attempt, as logist's did.
            return Err(crate::lock::held_error(this.core.path(), Some(started.elapsed())).into());
        }
        Ok(acquired)
    }

    fn release(&self, py: Python<'_>) -> PyResult<()> {
        attached(py, || self.core.release())?;
        Ok(())
    }

    fn is_locked(&self, py: Python<'_>) -> PyResult<bool> {
        // Asks the kernel, and logs if it cannot.
        attached(py, || Ok(self.core.is_locked()))
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
        self.timeout.get().map(Seconds::get)
    }

    #[setter]
    fn set_timeout(&self, value: Option<Seconds>) {
        self.timeout.set(value);
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

/// logist's timeout rules: `timeout <= 0` (even `-inf`) is one attempt (its loop gave up at the
/// first check); infinity and `None` wait forever.
fn legacy_wait(timeout: Option<Seconds>) -> Wait {
    match timeout {
        Some(t) if t.get() <= 0.0 => Wait::Try,
        other => Wait::from_timeout(other),
    }
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
pub(crate) fn job_lock_path(base: PathArg, job_id: &str) -> PyResult<PathBuf> {
    Ok(JobLocks::new(base.0).job_lock_path(job_id)?)
}

/// `<base>/.jobs_index.lock`.
#[pyfunction]
pub(crate) fn jobs_index_lock_path(base: PathArg) -> PathBuf {
    JobLocks::new(base.0).index_lock_path()
}

/// Remove the job lock files nobody holds that are older than `max_age_seconds`; returns job names.
#[pyfunction]
pub(crate) fn cleanup_stale_job_locks(py: Python<'_>, base: PathArg, max_age_seconds: f64) -> PyResult<Vec<OsString>> {
    // logist compared `age > max_age`: NaN matched nothing, a negative age limit matched everything.
    let max_age = if max_age_seconds.is_nan() {
        Duration::MAX
    } else {
        Duration::try_from_secs_f64(max_age_seconds.max(0.0)).unwrap_or(Duration::MAX)
    };
    detached(py, || job::cleanup_stale(&base.0, max_age))
}

/// Run `setup` once across processes: a marker file plus a lock. True if this call ran it.
#[pyfunction]
#[pyo3(signature = (marker, lock_path, setup, *, timeout=None, marker_text=None, also_lock=Vec::new(), cleanup=true))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_once(
    py: Python<'_>,
    marker: PathArg,
    lock_path: PathArg,
    setup: Py<PyAny>,
    timeout: Option<Seconds>,
    marker_text: Option<MarkerText>,
    also_lock: Vec<PathArg>,
    cleanup: bool,
) -> PyResult<bool> {
    let spec = RunOnce {
        marker: marker.0,
        lock: lock_path.0,
        also_lock: paths(also_lock),
        wait: Wait::from_timeout(timeout),
        cleanup,
    };
    // Always detached, even for one attempt: the marker's fsyncs and the cleanup need not hold the GIL,
    // and the setup re-attaches to run.
    let outcome = call(py, Gil::Release, None, drop, |ctl, _| {
        job::run_once(&spec, ctl, || {
            Python::attach(|py| {
                setup.call0(py)?;
                marker_bytes(py, marker_text.as_ref())
            })
        })
    })?;
    Ok(outcome == RunOnceOutcome::Ran)
}

/// `run_once`'s `marker_text`: checked before the setup runs, so a wrong type never costs a setup.
pub(crate) enum MarkerText {
    Fixed(Data),
    Computed(Py<PyAny>),
}

impl FromPyObject<'_, '_> for MarkerText {
    type Error = PyErr;

    fn extract(ob: Borrowed<'_, '_, PyAny>) -> PyResult<Self> {
        if ob.is_callable() {
            return Ok(Self::Computed(ob.to_owned().unbind()));
        }
        ob.extract()
            .map(Self::Fixed)
            .map_err(|_| expected("marker_text", "bytes, str or a callable returning them", &ob))
    }
}

fn marker_bytes(py: Python<'_>, marker_text: Option<&MarkerText>) -> PyResult<Vec<u8>> {
    match marker_text {
        None => Ok(job::default_marker_text()),
        Some(MarkerText::Fixed(data)) => Ok(data.as_bytes().to_vec()),
        Some(MarkerText::Computed(make)) => {
            let value = make.call0(py)?;
            let data: Data = value
                .extract(py)
                .map_err(|_| expected("marker_text()", "bytes or str", value.bind(py)))?;
            Ok(data.as_bytes().to_vec())
        }
    }
}
