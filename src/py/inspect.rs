//! `ferrolock status` / `clean` from Python: the scan runs with the GIL released under the interrupt
//! protocol, progress callbacks re-attach briefly.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::convert::{PathArg, holder_to_dict, paths};
use super::wait::{Gil, Pending, call};
use crate::inspect::{self, Held, LockReport};

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

/// Calls `callback` (if any) with the number of files seen so far. An exception it raises (a Ctrl-C
/// while it runs) is kept for the end of the scan, which the core cannot cut short, and the callback is
/// not called again.
fn report_progress(callback: Option<&Py<PyAny>>, pending: &Pending) -> impl FnMut(usize) {
    let mut failed = false;
    move |seen| {
        if let Some(cb) = callback.filter(|_| !failed) {
            Python::attach(|py| {
                if let Err(e) = cb.call1(py, (seen,)) {
                    failed = true;
                    pending.record(e);
                }
            });
        }
    }
}

/// Every lock under `roots` as dicts (see `ferrolock status --json`).
#[pyfunction]
#[pyo3(signature = (roots, progress=None))]
pub(crate) fn _scan_locks(
    py: Python<'_>,
    roots: Vec<PathArg>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'_, PyList>> {
    let roots = paths(roots);
    let found = call(py, Gil::Release, None, drop, |_, pending| {
        inspect::scan(&roots, &mut report_progress(progress.as_ref(), pending))
    })?;
    let items = found
        .iter()
        .map(|r| report_to_dict(py, r))
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// Removes what nobody uses under `roots` (or, with `dry_run`, lists it).
#[pyfunction]
#[pyo3(signature = (roots, dry_run=false, progress=None))]
pub(crate) fn _clean_locks(
    py: Python<'_>,
    roots: Vec<PathArg>,
    dry_run: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<Vec<(std::ffi::OsString, &'static str, String)>> {
    let roots = paths(roots);
    let cleaned = call(py, Gil::Release, None, drop, |_, pending| {
        inspect::clean(&roots, dry_run, &mut report_progress(progress.as_ref(), pending))
    })?;
    Ok(cleaned
        .into_iter()
        .map(|c| (c.path.into_os_string(), c.kind.name(), c.reason))
        .collect())
}
