//! `atomic_write`, name validation and the test-only fault switch.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};

use crate::durable::{self, TempName, WriteOptions, faults};
use crate::names::{self, IdKind};

/// Bytes or text (written as UTF-8), borrowed from the Python object without a copy.
#[derive(FromPyObject)]
pub(crate) enum Data {
    Bytes(PyBackedBytes),
    Text(PyBackedStr),
}

impl Data {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Data::Bytes(b) => b,
            Data::Text(s) => s.as_bytes(),
        }
    }
}

/// Replace a file atomically and durably, optionally keeping the previous version as a backup.
#[pyfunction]
#[pyo3(signature = (path, data, *, mode=None, backup=None, durable=true, temp_path=None))]
pub(crate) fn atomic_write(
    py: Python<'_>,
    path: PathBuf,
    data: Data,
    mode: Option<u32>,
    backup: Option<PathBuf>,
    durable: bool,
    temp_path: Option<PathBuf>,
) -> PyResult<()> {
    let opts = WriteOptions {
        mode,
        backup,
        durable,
        temp: temp_path.map_or(TempName::Unique, TempName::Fixed),
    };
    let bytes = data.as_bytes();
    py.detach(|| durable::atomic_write(&path, bytes, &opts))?;
    Ok(())
}

/// Check an id that becomes a path component; returns it unchanged or raises `InvalidName`.
#[pyfunction]
#[pyo3(signature = (what, name, *, nested=false))]
pub(crate) fn validate_name(what: &str, name: &str, nested: bool) -> PyResult<String> {
    let kind = IdKind::from_label(what)?;
    let checked = if nested {
        names::validate_relative(kind, name)
    } else {
        names::validate_component(kind, name)
    };
    Ok(checked?.to_owned())
}

/// Test-only: arm (or with `None`, disarm) a fault point in the write paths.
#[pyfunction]
#[pyo3(signature = (point, action="error"))]
pub(crate) fn _set_failpoint(point: Option<&str>, action: &str) -> PyResult<()> {
    let action = match action {
        "error" => faults::FaultAction::Error,
        "crash" => faults::FaultAction::Crash,
        other => return Err(PyValueError::new_err(format!("unknown fault action {other:?}"))),
    };
    match point {
        Some(p) => faults::arm(p, action),
        None => faults::disarm(),
    }
    Ok(())
}
