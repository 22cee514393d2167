//! `ferrolock status` / `clean` from Python: the scan runs with the GIL released under the interrupt
//! protocol, progress callbacks re-attach briefly. Paths and names cross as `str` decoded as
//! `os.fsdecode` does (undecodable bytes become surrogate escapes), so `os.fsencode` gives the bytes on
//! disk back.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::convert::{PathArg, holder_to_dict, paths};
use super::wait::{Gil, Pending, call};
use crate::inspect::{self, Held, LockReport, Skipped, Step};
use crate::{job, scope, state_md};

/// The legacy layouts' file names, from the core modules that own them, for the Python code that
/// builds those paths.
pub(crate) fn add_layout_names(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("LOCK_SUFFIX", inspect::LOCK_SUFFIX)?;
    m.add("JOB_LOCK_FILE", job::JOB_LOCK_FILE)?;
    m.add("JOBS_INDEX_LOCK_FILE", job::JOBS_INDEX_LOCK_FILE)?;
    m.add("WORKSPACE_DIR", job::WORKSPACE_DIR)?;
    m.add("WORKSPACE_SETUP_LOCK_FILE", job::WORKSPACE_SETUP_LOCK_FILE)?;
    m.add("SCOPE_RUNNING_DIR", scope::RUNNING_DIR)?;
    m.add("SCOPE_SENTINEL_FILE", scope::SENTINEL_NAME)?;
    m.add("BLACKBOX5_STATE_LOCK_FILE", state_md::STATE_LOCK_FILE)?;
    m.add("TODO2_DIR", inspect::TODO2_DIR)?;
    m.add("TODO2_LOCKS_DIR", inspect::TODO2_LOCKS_DIR)?;
    m.add("TODO2_STATE_LOCK_FILE", inspect::TODO2_STATE_LOCK_FILE)?;
    m.add("TODO2_TASK_LOCK_PREFIX", inspect::TODO2_TASK_LOCK_PREFIX)?;
    Ok(())
}

fn report_to_dict<'py>(py: Python<'py>, r: &LockReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("path", r.path.as_os_str())?;
    d.set_item("kind", r.kind.name())?;
    d.set_item("guards", &r.guards)?;
    d.set_item("state", if r.held == Held::Free { "free" } else { "held" })?;
    d.set_item(
        "mode",
        match r.held {
            Held::Free => None,
            Held::Exclusive => Some("exclusive"),
            Held::Shared => Some("shared"),
        },
    )?;
    d.set_item("pids", &r.pids)?;
    d.set_item("waiters", r.waiters)?;
    d.set_item("holder", r.holder.as_ref().map(|h| holder_to_dict(py, h)).transpose()?)?;
    let claim = match &r.claim {
        Some(c) => {
            let cd = PyDict::new(py);
            cd.set_item("loop_name", &c.loop_name)?;
            cd.set_item("scope", &c.scope)?;
            cd.set_item("pid", c.pid)?;
            cd.set_item("started_at", &c.started_at)?;
            cd.set_item("singleton", c.singleton)?;
            cd.set_item("kernel_held", c.marked)?;
            Some(cd)
        }
        None => None,
    };
    d.set_item("claim", claim)?;
    d.set_item("stale", r.stale.is_some())?;
    d.set_item("stale_reason", r.stale.as_deref())?;
    Ok(d)
}

fn skipped_to_list<'py>(py: Python<'py>, skipped: &[Skipped]) -> PyResult<Bound<'py, PyList>> {
    let items = skipped
        .iter()
        .map(|s| {
            let d = PyDict::new(py);
            d.set_item("path", s.path.as_os_str())?;
            d.set_item("reason", &s.reason)?;
            Ok(d)
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// Calls `callback` (if any) with the number of files seen so far; the other steps are not shown. An
/// exception it raises (a Ctrl-C while it runs) is kept for the end of the scan, which the core cannot
/// cut short, and the callback is not called again.
fn report_progress(callback: Option<&Py<PyAny>>, pending: &Pending) -> impl FnMut(Step<'_>) {
    let mut failed = false;
    move |step| {
        if let (Some(cb), Step::Progress(seen)) = (callback.filter(|_| !failed), step) {
            Python::attach(|py| {
                if let Err(e) = cb.call1(py, (seen,)) {
                    failed = true;
                    pending.record(e);
                }
            });
        }
    }
}

/// Every lock under `roots` and what could not be looked at (see `ferrolock status --json`).
#[pyfunction]
#[pyo3(signature = (roots, progress=None))]
pub(crate) fn _scan_locks(
    py: Python<'_>,
    roots: Vec<PathArg>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'_, PyDict>> {
    let roots = paths(roots);
    let found = call(py, Gil::Release, None, drop, |_, pending| {
        inspect::scan(&roots, &mut report_progress(progress.as_ref(), pending))
    })?;
    let locks = found
        .locks
        .iter()
        .map(|r| report_to_dict(py, r))
        .collect::<PyResult<Vec<_>>>()?;
    let d = PyDict::new(py);
    d.set_item("locks", PyList::new(py, locks)?)?;
    d.set_item("skipped", skipped_to_list(py, &found.skipped)?)?;
    Ok(d)
}

/// Removes what nobody uses under `roots` (or, with `dry_run`, lists it), and what could not be
/// looked at or removed.
#[pyfunction]
#[pyo3(signature = (roots, dry_run=false, progress=None))]
pub(crate) fn _clean_locks(
    py: Python<'_>,
    roots: Vec<PathArg>,
    dry_run: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'_, PyDict>> {
    let roots = paths(roots);
    let cleaned = call(py, Gil::Release, None, drop, |_, pending| {
        inspect::clean(&roots, dry_run, &mut report_progress(progress.as_ref(), pending))
    })?;
    let removed = cleaned
        .removed
        .iter()
        .map(|c| {
            let d = PyDict::new(py);
            d.set_item("path", c.path.as_os_str())?;
            d.set_item("kind", c.kind.name())?;
            d.set_item("reason", &c.reason)?;
            Ok(d)
        })
        .collect::<PyResult<Vec<_>>>()?;
    let d = PyDict::new(py);
    d.set_item("removed", PyList::new(py, removed)?)?;
    d.set_item("skipped", skipped_to_list(py, &cleaned.skipped)?)?;
    Ok(d)
}
