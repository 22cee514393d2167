//! `atomic_write` and name validation.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};

use crate::durable::{self, TempName, WriteOptions};
use crate::names;

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
pub(crate) fn validate_name(what: String, name: &str, nested: bool) -> PyResult<String> {
    // The core wants a static label; ids are validated rarely enough that leaking a tiny label per
    // distinct `what` is not a concern, but we avoid it anyway by matching the common ones.
    let what: &'static str = match what.as_str() {
        "job id" => "job id",
        "task id" => "task id",
        "loop name" => "loop name",
        "instance id" => "instance id",
        _ => "name",
    };
    let checked = if nested {
        names::validate_relative(what, name)
    } else {
        names::validate_component(what, name)
    };
    Ok(checked?.to_owned())
}
