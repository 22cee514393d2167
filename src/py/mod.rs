//! The `PyO3` binding: the only part of the crate that imports `pyo3`. Each file wraps one core concept
//! and delegates; the Python API reference is `python/ferrolock/_ferrolock.pyi`.
// PyO3 extracts arguments as owned values (`PathBuf`, `String`); borrowing them is not an option.
#![allow(clippy::needless_pass_by_value)]

mod convert;
mod durable;
mod errors;
mod file_lock;
mod scope;

use pyo3::prelude::*;

/// The native half of the `ferrolock` package.
#[pymodule(gil_used = false)]
#[pyo3(name = "_ferrolock")]
fn ferrolock_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Rust `log` records reach Python `logging` under `ferrolock.*`. Another extension may already
    // have installed a logger in this process; then ours simply stays silent.
    let _ = pyo3_log::try_init();
    m.add("__version__", python_version())?;
    m.add_class::<file_lock::PyFileLock>()?;
    m.add_class::<file_lock::PyAcquireReturnProxy>()?;
    m.add_class::<file_lock::PyCancelToken>()?;
    m.add_function(wrap_pyfunction!(file_lock::probe, m)?)?;
    m.add_function(wrap_pyfunction!(file_lock::remove_if_unheld, m)?)?;
    m.add_function(wrap_pyfunction!(durable::atomic_write, m)?)?;
    m.add_function(wrap_pyfunction!(durable::validate_name, m)?)?;
    m.add_function(wrap_pyfunction!(durable::_set_failpoint, m)?)?;
    // Scope claims (little-loops).
    m.add_class::<scope::PyScopeDir>()?;
    m.add_class::<scope::PyScopeEntry>()?;
    m.add_function(wrap_pyfunction!(scope::process_ancestry, m)?)?;
    Ok(())
}

/// Cargo's version in PEP 440 spelling (`0.2.0-beta.1` becomes `0.2.0b1`).
fn python_version() -> String {
    env!("CARGO_PKG_VERSION")
        .replace("-alpha.", "a")
        .replace("-beta.", "b")
        .replace("-rc.", "rc")
}
