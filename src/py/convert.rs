//! Conversions between Python values and core types.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::lock::{Holder, Wait};

/// A holder record as the dict Python users see.
pub(crate) fn holder_to_dict<'py>(py: Python<'py>, h: &Holder) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("pid", h.pid)?;
    d.set_item("host", &h.host)?;
    d.set_item("since", &h.since)?;
    d.set_item("purpose", h.purpose.as_deref())?;
    d.set_item("version", h.version)?;
    Ok(d)
}

/// py-filelock's conventions: `blocking=False` is one attempt, a negative timeout waits forever,
/// zero is one attempt.
pub(crate) fn wait_for(timeout: f64, blocking: bool) -> Wait {
    if blocking {
        Wait::from_timeout_secs(Some(timeout))
    } else {
        Wait::Try
    }
}
