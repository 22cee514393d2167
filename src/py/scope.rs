//! `ScopeDir` (the claims of one running directory), `ScopeEntry` and `process_ancestry`.
//!
//! Judgments go through the Python object passed as `judge` (a `LockManager`), so its hooks
//! (`_process_alive`, `_get_ancestry`, `_normalize_path`, `_scopes_overlap`) are looked up at call
//! time; without one, the core's `SystemJudge` decides.

use std::cell::RefCell;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use pyo3::prelude::*;

use crate::error::{Error, Result};
use crate::lock::{Wait, WaitControl};
use crate::scope::{self, ClaimRequest, Judge, JudgeAborted, Query, ScopeDir, ScopeEntry, SystemJudge};
use crate::sys;

/// As in `file_lock.rs`: how often a wait on the main thread wakes to let a pending Ctrl-C through.
const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// The scope claims kept in one running directory.
#[pyclass(name = "ScopeDir", module = "ferrolock._ferrolock", frozen)]
pub(crate) struct PyScopeDir {
    core: ScopeDir,
    running_dir: OsString,
}

#[pymethods]
impl PyScopeDir {
    #[new]
    fn py_new(running_dir: PathBuf) -> PyResult<Self> {
        let text = running_dir.as_os_str().to_owned();
        Ok(Self {
            core: ScopeDir::new(running_dir)?,
            running_dir: text,
        })
    }

    #[getter]
    fn running_dir(&self) -> &OsStr {
        &self.running_dir
    }

    #[pyo3(signature = (name, loop_name, scope, *, pid=None, started_at=None, singleton=false, judge=None, custom_overlap=false))]
    #[allow(clippy::too_many_arguments)]
    fn acquire(
        &self,
        py: Python<'_>,
        name: &str,
        loop_name: &str,
        scope: Vec<String>,
        pid: Option<i64>,
        started_at: Option<String>,
        singleton: bool,
        judge: Option<Py<PyAny>>,
        custom_overlap: bool,
    ) -> PyResult<bool> {
        let request = ClaimRequest {
            loop_name,
            scope: &scope,
            pid,
            started_at: started_at.as_deref(),
            singleton,
        };
        let undo = |claimed: bool| {
            if claimed {
                let _ = self.core.release(name);
            }
        };
        with_judge(py, judge.as_ref(), custom_overlap, undo, |judge, ctl| {
            self.core.acquire(name, &request, judge, ctl)
        })
    }

    fn release(&self, py: Python<'_>, name: &str) -> PyResult<bool> {
        let released = py.detach(|| self.core.release(name))?;
        // As in `with_judge`: an exception a signal handler raised inside a log call.
        PyErr::take(py).map_or(Ok(released), Err)
    }

    fn holds(&self, name: &str) -> PyResult<bool> {
        Ok(self.core.holds(name)?)
    }

    #[pyo3(signature = (scope, *, caller_loop_name=None, caller_singleton=false, judge=None, custom_overlap=false))]
    fn find_conflict(
        &self,
        py: Python<'_>,
        scope: Vec<String>,
        caller_loop_name: Option<&str>,
        caller_singleton: bool,
        judge: Option<Py<PyAny>>,
        custom_overlap: bool,
    ) -> PyResult<Option<PyScopeEntry>> {
        let query = Query {
            scope: &scope,
            caller_loop_name,
            caller_singleton,
        };
        let found = with_judge(py, judge.as_ref(), custom_overlap, drop, |judge, _| {
            self.core.find_conflict(&query, judge)
        })?;
        Ok(found.map(PyScopeEntry::from))
    }

    #[pyo3(signature = (*, judge=None, custom_overlap=false))]
    fn live_claims(
        &self,
        py: Python<'_>,
        judge: Option<Py<PyAny>>,
        custom_overlap: bool,
    ) -> PyResult<Vec<PyScopeEntry>> {
        let live = with_judge(py, judge.as_ref(), custom_overlap, drop, |judge, _| {
            self.core.list(judge)
        })?;
        Ok(live.into_iter().map(PyScopeEntry::from).collect())
    }

    #[pyo3(signature = (scope, timeout=None, *, caller_loop_name=None, caller_singleton=false, judge=None, custom_overlap=false))]
    #[allow(clippy::too_many_arguments)]
    fn wait_for_scope(
        &self,
        py: Python<'_>,
        scope: Vec<String>,
        timeout: Option<f64>,
        caller_loop_name: Option<&str>,
        caller_singleton: bool,
        judge: Option<Py<PyAny>>,
        custom_overlap: bool,
    ) -> PyResult<bool> {
        let query = Query {
            scope: &scope,
            caller_loop_name,
            caller_singleton,
        };
        let wait = Wait::from_timeout_secs(timeout);
        with_judge(py, judge.as_ref(), custom_overlap, drop, |judge, ctl| {
            self.core.wait_for_scope(&query, wait, judge, ctl)
        })
    }

    fn __repr__(&self) -> String {
        format!("ScopeDir({:?})", self.running_dir.display().to_string())
    }
}

/// A live claim, as a scan found it.
#[pyclass(name = "ScopeEntry", module = "ferrolock._ferrolock", frozen, get_all)]
pub(crate) struct PyScopeEntry {
    name: String,
    path: OsString,
    loop_name: String,
    scope: Vec<String>,
    pid: i64,
    started_at: String,
    singleton: bool,
    held: bool,
}

impl From<ScopeEntry> for PyScopeEntry {
    fn from(e: ScopeEntry) -> Self {
        Self {
            name: e.name,
            path: e.path.into_os_string(),
            loop_name: e.record.loop_name,
            scope: e.record.scope,
            pid: e.record.pid,
            started_at: e.record.started_at,
            singleton: e.record.singleton,
            held: e.held,
        }
    }
}

#[pymethods]
impl PyScopeEntry {
    fn __repr__(&self) -> String {
        format!(
            "ScopeEntry(name={:?}, loop_name={:?}, scope={:?}, pid={}, held={})",
            self.name,
            self.loop_name,
            self.scope,
            self.pid,
            if self.held { "True" } else { "False" }
        )
    }
}

/// The ancestors of `pid` (parent first, up to but excluding pid 1), from `/proc`.
#[pyfunction]
pub(crate) fn process_ancestry(pid: i64) -> Vec<i64> {
    scope::process_ancestry(pid)
}

/// Runs `op` with the GIL released. Judgments call back into `judge` (or the core's defaults), and
/// waits on the main thread wake for signals. An exception raised by a hook or a signal handler ends
/// the operation and is re-raised as is.
///
/// A signal handler can also raise inside a log call (`pyo3-log` runs Python's `logging` and leaves
/// the exception set). That exception is raised too, after `undo` has given back what `op` obtained,
/// so a Ctrl-C never leaves a claim behind.
fn with_judge<T: Send>(
    py: Python<'_>,
    judge: Option<&Py<PyAny>>,
    custom_overlap: bool,
    undo: impl FnOnce(T),
    op: impl FnOnce(&mut dyn Judge, &mut WaitControl<'_>) -> Result<T> + Send,
) -> PyResult<T> {
    let (result, pending) = py.detach(|| {
        let pending = RefCell::new(None);
        let result = {
            let mut check_signals = || {
                Python::attach(|py| {
                    // A handler that ran inside a log call left its exception set instead (see below).
                    match PyErr::take(py).map_or_else(|| py.check_signals(), Err) {
                        Ok(()) => false,
                        Err(e) => {
                            *pending.borrow_mut() = Some(e);
                            true
                        }
                    }
                })
            };
            let mut ctl = WaitControl {
                cancel: None,
                interrupt_every: sys::is_main_thread().then_some(SIGNAL_CHECK_INTERVAL),
                on_interrupt: Some(&mut check_signals),
            };
            match judge {
                Some(object) => {
                    let mut judge = PyJudge {
                        object,
                        custom_overlap,
                        ancestry: None,
                        pending: &pending,
                    };
                    op(&mut judge, &mut ctl)
                }
                None => op(&mut SystemJudge::new(), &mut ctl),
            }
        };
        (result, pending.into_inner())
    });
    let stray = PyErr::take(py);
    match (result, pending.or(stray)) {
        (Ok(value), None) => Ok(value),
        (Ok(value), Some(err)) => {
            undo(value);
            Err(err)
        }
        (Err(Error::Interrupted { .. }), Some(err)) => Err(err),
        (Err(e), _) => Err(e.into()),
    }
}

/// Routes the core's questions to a Python `LockManager`'s hooks.
struct PyJudge<'a> {
    object: &'a Py<PyAny>,
    custom_overlap: bool,
    /// `_get_ancestry()`'s result, asked at most once per operation.
    ancestry: Option<Py<PyAny>>,
    pending: &'a RefCell<Option<PyErr>>,
}

impl PyJudge<'_> {
    fn call<T>(
        &mut self,
        f: impl FnOnce(Python<'_>, &Bound<'_, PyAny>, &mut Option<Py<PyAny>>) -> PyResult<T>,
    ) -> Result<T, JudgeAborted> {
        let (object, ancestry, pending) = (self.object, &mut self.ancestry, self.pending);
        Python::attach(|py| f(py, object.bind(py), ancestry)).map_err(|e| {
            *pending.borrow_mut() = Some(e);
            JudgeAborted
        })
    }
}

impl Judge for PyJudge<'_> {
    fn pid_alive(&mut self, pid: i64) -> Result<bool, JudgeAborted> {
        self.call(|_, obj, _| obj.call_method1("_process_alive", (pid,))?.is_truthy())
    }

    fn is_ancestor(&mut self, pid: i64) -> Result<bool, JudgeAborted> {
        self.call(|py, obj, cached| {
            let ancestry = match cached {
                Some(a) => a.bind(py).clone(),
                None => cached
                    .insert(obj.call_method0("_get_ancestry")?.unbind())
                    .bind(py)
                    .clone(),
            };
            ancestry.contains(pid)
        })
    }

    fn normalize(&mut self, path: &str) -> Result<String, JudgeAborted> {
        self.call(|_, obj, _| Ok(obj.call_method1("_normalize_path", (path,))?.str()?.to_string()))
    }

    fn scopes_overlap(&mut self, a: &[String], b: &[String]) -> Result<bool, JudgeAborted> {
        if !self.custom_overlap {
            return Ok(scope::scopes_overlap(a, b));
        }
        self.call(|_, obj, _| {
            obj.call_method1("_scopes_overlap", (a.to_vec(), b.to_vec()))?
                .is_truthy()
        })
    }
}
