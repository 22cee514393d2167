//! `atomic_write` and name validation.

use pyo3::prelude::*;

use super::convert::{Data, FileMode, PathArg};
use super::wait::detached;
use crate::durable::{self, TempName, WriteOptions};
use crate::names::{self, IdKind};

/// Replace a file atomically and durably, optionally keeping the previous version as a backup.
#[pyfunction]
#[pyo3(signature = (path, data, *, mode=None, backup=None, durable=true, temp_path=None))]
pub(crate) fn atomic_write(
    py: Python<'_>,
    path: PathArg,
    data: Data,
    mode: Option<FileMode>,
    backup: Option<PathArg>,
    durable: bool,
    temp_path: Option<PathArg>,
) -> PyResult<()> {
    let opts = WriteOptions {
        mode: mode.map(|m| m.0),
        backup: backup.map(|p| p.0),
        durable,
        temp: temp_path.map_or(TempName::Unique, |p| TempName::Fixed(p.0)),
    };
    let bytes = data.as_bytes();
    detached(py, || durable::atomic_write(&path.0, bytes, &opts))
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
