//! `_set_failpoint` and `_failpoints`: fault injection for the tests, in test builds only (the cargo
//! feature `failpoints`; a release extension has neither function).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::failpoints::{self, Failpoint, FaultAction};

/// Test-only: arm (or with `None`, disarm) a fault point for the whole process.
#[pyfunction]
#[pyo3(signature = (point, action="error"))]
pub(crate) fn _set_failpoint(point: Option<&str>, action: &str) -> PyResult<()> {
    let action = match action {
        "error" => FaultAction::Error,
        "crash" => FaultAction::Crash,
        "stop" => FaultAction::Stop,
        other => return Err(PyValueError::new_err(format!("unknown fault action {other:?}"))),
    };
    match point {
        Some(name) => {
            let point = Failpoint::from_name(name).ok_or_else(|| {
                PyValueError::new_err(format!("unknown fault point {name:?}; the points are {:?}", names()))
            })?;
            failpoints::arm(point, action);
        }
        None => failpoints::disarm(),
    }
    Ok(())
}

/// Test-only: the name of every fault point.
#[pyfunction]
pub(crate) fn _failpoints() -> Vec<&'static str> {
    names()
}

fn names() -> Vec<&'static str> {
    Failpoint::ALL.iter().map(|p| p.name()).collect()
}
