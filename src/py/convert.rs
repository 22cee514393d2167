//! Conversions between Python values and core types. Every argument that takes a path, a timeout,
//! a file mode or "bytes or str" is extracted here, so each refuses bad input the same way: a
//! `TypeError` that says what was expected (`data must be bytes or str, not int`), or the core's
//! `ValueError` for a value without a meaning (a NaN timeout, a mode beyond `0o777`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyString};

use crate::lock::{Holder, Seconds, Wait};
use crate::mode;

/// `TypeError("<what> must be <expected>, not <type of value>")`.
pub(crate) fn expected(what: &str, expected: &str, value: &Bound<'_, PyAny>) -> PyErr {
    let type_name = value
        .get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string());
    PyTypeError::new_err(format!("{what} must be {expected}, not {type_name}"))
}

/// Bytes (or a bytearray) or text (written as UTF-8), borrowed from the Python object without a copy.
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

impl FromPyObject<'_, '_> for Data {
    type Error = PyErr;

    fn extract(ob: Borrowed<'_, '_, PyAny>) -> PyResult<Self> {
        if ob.is_instance_of::<PyString>() {
            Ok(Self::Text(ob.extract()?))
        } else if ob.is_instance_of::<PyBytes>() || ob.is_instance_of::<PyByteArray>() {
            Ok(Self::Bytes(ob.extract()?))
        } else {
            Err(expected("data", "bytes or str", &ob))
        }
    }
}

/// A path argument: `str` or `os.PathLike[str]`. A `str` that `os.fsdecode` made from undecodable
/// bytes converts back to those bytes, so any path the filesystem has round-trips.
pub(crate) struct PathArg(pub(crate) PathBuf);

impl FromPyObject<'_, '_> for PathArg {
    type Error = PyErr;

    fn extract(ob: Borrowed<'_, '_, PyAny>) -> PyResult<Self> {
        let refuse = || expected("path", "str or os.PathLike[str]", &ob);
        if ob.is_instance_of::<PyBytes>() {
            return Err(refuse());
        }
        match ob.extract::<PathBuf>() {
            Ok(path) => Ok(Self(path)),
            Err(e) if e.is_instance_of::<PyTypeError>(ob.py()) => Err(refuse()),
            Err(e) => Err(e),
        }
    }
}

/// Several paths (`also_lock`, the roots of a scan).
pub(crate) fn paths(args: Vec<PathArg>) -> Vec<PathBuf> {
    args.into_iter().map(|p| p.0).collect()
}

/// A timeout argument: an `int` or `float` (anything with `__float__`), never NaN.
impl FromPyObject<'_, '_> for Seconds {
    type Error = PyErr;

    fn extract(ob: Borrowed<'_, '_, PyAny>) -> PyResult<Self> {
        let secs = match ob.extract::<f64>() {
            Ok(secs) => secs,
            Err(e) if e.is_instance_of::<PyTypeError>(ob.py()) => {
                return Err(expected("timeout", "a number of seconds", &ob));
            }
            Err(e) => return Err(e),
        };
        Ok(Seconds::new(secs)?)
    }
}

/// A file mode argument: an `int` holding permission bits only (see [`crate::mode`]).
pub(crate) struct FileMode(pub(crate) u32);

impl FromPyObject<'_, '_> for FileMode {
    type Error = PyErr;

    fn extract(ob: Borrowed<'_, '_, PyAny>) -> PyResult<Self> {
        let value = match ob.extract::<i64>() {
            Ok(value) => value,
            Err(e) if e.is_instance_of::<PyTypeError>(ob.py()) => {
                return Err(expected("mode", "an int of permission bits (such as 0o644)", &ob));
            }
            // Too large for an i64 (an OverflowError), so certainly beyond the permission bits.
            Err(_) => return Err(mode::out_of_range(ob.repr()?.to_string()).into()),
        };
        match u32::try_from(value) {
            Ok(bits) => Ok(Self(mode::check(bits)?)),
            Err(_) if value < 0 => Err(mode::out_of_range(format!("-{:#o}", value.unsigned_abs())).into()),
            Err(_) => Err(mode::out_of_range(format!("{value:#o}")).into()),
        }
    }
}

/// A default timeout that any thread may read or replace (`lock.timeout = 5`), in one atomic word.
/// `None` is stored as NaN, which a [`Seconds`] never holds.
pub(crate) struct SettableTimeout(AtomicU64);

impl SettableTimeout {
    pub(crate) fn new(timeout: Option<Seconds>) -> Self {
        Self(AtomicU64::new(Self::encode(timeout)))
    }

    pub(crate) fn get(&self) -> Option<Seconds> {
        let secs = f64::from_bits(self.0.load(Ordering::Relaxed));
        Seconds::new(secs).ok()
    }

    pub(crate) fn set(&self, timeout: Option<Seconds>) {
        self.0.store(Self::encode(timeout), Ordering::Relaxed);
    }

    fn encode(timeout: Option<Seconds>) -> u64 {
        timeout.map_or(f64::NAN, Seconds::get).to_bits()
    }
}

/// A holder record as the dict Python users see (`HolderRecord` in the stubs).
pub(crate) fn holder_to_dict<'py>(py: Python<'py>, h: &Holder) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("pid", h.pid)?;
    d.set_item("host", &h.host)?;
    d.set_item("since", &h.since)?;
    d.set_item("purpose", h.purpose.as_deref())?;
    d.set_item("version", h.version)?;
    Ok(d)
}

/// py-filelock's conventions: `blocking=False` is one attempt, a negative (or infinite) timeout waits
/// forever, zero is one attempt.
pub(crate) fn wait_for(timeout: Seconds, blocking: bool) -> Wait {
    if blocking {
        Wait::from_timeout(Some(timeout))
    } else {
        Wait::Try
    }
}

/// A timeout checked as every native API checks it, for the Python layers that do arithmetic on one
/// first (`acquire_async`, `wait_for_scope`): the same `TypeError`/`ValueError`, from one rule.
#[pyfunction]
pub(crate) fn _check_timeout(timeout: Seconds) -> f64 {
    timeout.get()
}
