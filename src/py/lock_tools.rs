//! `CancelToken`, `probe` and `remove_if_unheld`: the lock-file tools beside `FileLock`.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use super::convert::{PathArg, holder_to_dict};
use crate::lock::{self, CancelToken, LockState, Removal};

/// Cancels waits from another thread.
#[pyclass(name = "CancelToken", module = "ferrolock._ferrolock", frozen)]
pub(crate) struct PyCancelToken {
    pub(crate) inner: Arc<CancelToken>,
}

#[pymethods]
impl PyCancelToken {
    #[new]
    fn py_new() -> Self {
        Self {
            inner: Arc::new(CancelToken::new()),
        }
    }

    fn cancel(&self) {
        self.inner.cancel();
    }

    #[getter]
    fn cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }
}

/// `LockProbe(state, holder)` for a lock file, without disturbing it: `state` is `"missing"`,
/// `"free"` or `"held"`, `holder` the record while held (or None).
#[pyfunction]
pub(crate) fn probe(py: Python<'_>, path: PathArg) -> PyResult<Bound<'_, PyAny>> {
    static LOCK_PROBE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let (state, holder) = match lock::probe(&path.0)? {
        LockState::Missing => ("missing", None),
        LockState::Free => ("free", None),
        LockState::Held(h) => ("held", h.map(|h| holder_to_dict(py, &h)).transpose()?),
    };
    LOCK_PROBE
        .import(py, "ferrolock._types", "LockProbe")?
        .call1((state, holder))
}

/// Removes a lock file only if nobody holds it: `"removed"`, `"held"` or `"missing"`.
#[pyfunction]
pub(crate) fn remove_if_unheld(path: PathArg) -> PyResult<&'static str> {
    Ok(match lock::remove_if_unheld(&path.0)? {
        Removal::Removed => "removed",
        Removal::Held => "held",
        Removal::Missing => "missing",
    })
}
