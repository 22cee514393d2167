//! `ScopeDir` (the claims of one running directory), `ScopeEntry` and `process_ancestry`.
//!
//! Judgments go through the Python object passed as `judge` (a `LockManager`), so its hooks
//! (`_process_alive`, `_get_ancestry`, `_normalize_path`, `_scopes_overlap`) are looked up at call
//! time; without one, the core's `SystemJudge` decides.

use std::ffi::OsStr;
use std::path::PathBuf;

use pyo3::prelude::*;

use super::convert::PathArg;
use super::wait::{Gil, Pending, attached, call, detached};
use crate::error::Result;
use crate::lock::{Seconds, Wait, WaitControl};
use crate::scope::{self, ClaimRequest, Judge, JudgeAborted, Query, ScopeDir, ScopeEntry, SystemJudge};

/// The scope claims kept in one running directory.
#[pyclass(name = "ScopeDir", module = "ferrolock._ferrolock", frozen)]
pub(crate) struct PyScopeDir {
    core: ScopeDir,
    running_dir: PathBuf,
}

#[pymethods]
impl PyScopeDir {
    #[new]
    fn py_new(running_dir: PathArg) -> PyResult<Self> {
        Ok(Self {
            core: ScopeDir::new(running_dir.0.clone())?,
            running_dir: running_dir.0,
        })
    }

    #[getter]
    fn running_dir(&self) -> &OsStr {
        self.running_dir.as_os_str()
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
            shared: false,
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
        detached(py, || self.core.release(name))
    }

    fn holds(&self, py: Python<'_>, name: &str) -> PyResult<bool> {
        attached(py, || self.core.holds(name))
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
            shared: false,
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
        timeout: Option<Seconds>,
        caller_loop_name: Option<&str>,
        caller_singleton: bool,
        judge: Option<Py<PyAny>>,
        custom_overlap: bool,
    ) -> PyResult<bool> {
        let query = Query {
            scope: &scope,
            caller_loop_name,
            caller_singleton,
            shared: false,
        };
        let wait = Wait::from_timeout(timeout);
        with_judge(py, judge.as_ref(), custom_overlap, drop, |judge, ctl| {
            self.core.wait_for_scope(&query, wait, judge, ctl)
        })
    }

    fn __repr__(&self) -> String {
        format!("ScopeDir({:?})", self.running_dir.display().to_string())
    }
}

/// A live claim, as a scan found it.
#[pyclass(name = "ScopeEntry", module = "ferrolock._ferrolock", frozen)]
pub(crate) struct PyScopeEntry {
    #[pyo3(get)]
    name: String,
    /// Returned as `str` (see the getter), not as the `pathlib.Path` a `PathBuf` field would give.
    path: PathBuf,
    #[pyo3(get)]
    loop_name: String,
    #[pyo3(get)]
    scope: Vec<String>,
    #[pyo3(get)]
    pid: i64,
    #[pyo3(get)]
    started_at: String,
    #[pyo3(get)]
    singleton: bool,
    #[pyo3(get)]
    held: bool,
}

impl From<ScopeEntry> for PyScopeEntry {
    fn from(e: ScopeEntry) -> Self {
        Self {
            name: e.name,
            path: e.path,
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
    #[getter]
    fn path(&self) -> &OsStr {
        self.path.as_os_str()
    }

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

/// Runs `op` with the GIL released under the interrupt protocol (see [`call`]). Judgments call back
/// into `judge` (or the core's defaults); an exception a hook raises is kept in the call's
/// [`Pending`] slot, ends the operation and is raised as is. If `op` obtained something (a claim)
/// before an exception surfaced, `undo` gives it back.
fn with_judge<T: Send>(
    py: Python<'_>,
    judge: Option<&Py<PyAny>>,
    custom_overlap: bool,
    undo: impl FnOnce(T),
    op: impl FnOnce(&mut dyn Judge, &mut WaitControl<'_>) -> Result<T> + Send,
) -> PyResult<T> {
    call(py, Gil::Release, None, undo, |ctl, pending| match judge {
        Some(object) => {
            let mut judge = PyJudge {
                object,
                custom_overlap,
                ancestry: None,
                pending,
            };
            op(&mut judge, ctl)
        }
        None => op(&mut SystemJudge::new(), ctl),
    })
}

/// Routes the core's questions to a Python `LockManager`'s hooks.
struct PyJudge<'a> {
    object: &'a Py<PyAny>,
    custom_overlap: bool,
    /// `_get_ancestry()`'s result, asked at most once per operation.
    ancestry: Option<Py<PyAny>>,
    pending: &'a Pending,
}

impl PyJudge<'_> {
    fn call<T>(
        &mut self,
        f: impl FnOnce(Python<'_>, &Bound<'_, PyAny>, &mut Option<Py<PyAny>>) -> PyResult<T>,
    ) -> Result<T, JudgeAborted> {
        let (object, ancestry, pending) = (self.object, &mut self.ancestry, self.pending);
        Python::attach(|py| f(py, object.bind(py), ancestry)).map_err(|e| {
            pending.record(e);
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
