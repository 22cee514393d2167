//! The `PyO3` binding: the only part of the crate that imports `pyo3`. Each file wraps one core concept
//! and delegates; the Python API reference is `python/ferrolock/_ferrolock.pyi`.
// PyO3 extracts arguments as owned values (`PathBuf`, `String`); borrowing them is not an option.
#![allow(clippy::needless_pass_by_value)]

mod convert;
mod coord;
mod coord_claims;
mod coord_tasks;
mod durable;
mod errors;
#[cfg(feature = "failpoints")]
mod failpoints;
mod file_lock;
mod inspect;
mod job;
mod lock_acquire;
mod lock_log;
mod lock_options;
mod lock_tools;
mod scope;
mod state_file;
mod state_md;
mod tasks;
mod tasks_format;
mod wait;

use pyo3::prelude::*;

/// The native half of the `ferrolock` package.
#[pymodule(gil_used = false)]
#[pyo3(name = "_ferrolock")]
fn ferrolock_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Rust `log` records reach Python `logging` under `ferrolock.*`. If another extension already
    // installed a logger, or `logging` cannot be imported, ours stays silent: logging must never make
    // `import ferrolock` fail (pyo3_log::try_init would panic in the second case).
    if let Ok(logger) = pyo3_log::Logger::new(m.py(), pyo3_log::Caching::LoggersAndLevels)
        && let Ok(handle) = logger.install()
    {
        let _ = LOG_RESET.set(handle);
    }
    m.add("__version__", python_version())?;
    m.add_class::<file_lock::PyFileLock>()?;
    m.add_class::<file_lock::PyAcquireReturnProxy>()?;
    m.add_class::<lock_tools::PyCancelToken>()?;
    m.add_function(wrap_pyfunction!(lock_tools::probe, m)?)?;
    m.add_function(wrap_pyfunction!(lock_tools::remove_if_unheld, m)?)?;
    m.add_function(wrap_pyfunction!(lock_log::_logging_changed, m)?)?;
    m.add_function(wrap_pyfunction!(lock_log::_logging_unwatched, m)?)?;
    m.add_function(wrap_pyfunction!(lock_log::_filelock_debug_enabled, m)?)?;
    m.add_function(wrap_pyfunction!(durable::atomic_write, m)?)?;
    m.add_function(wrap_pyfunction!(durable::validate_name, m)?)?;
    m.add_function(wrap_pyfunction!(convert::_check_timeout, m)?)?;
    #[cfg(feature = "failpoints")]
    {
        m.add_function(wrap_pyfunction!(failpoints::_set_failpoint, m)?)?;
        m.add_function(wrap_pyfunction!(failpoints::_failpoints, m)?)?;
    }
    m.add_function(wrap_pyfunction!(_reset_logging_cache, m)?)?;
    m.add_function(wrap_pyfunction!(_thread_owner, m)?)?;
    // Job-directory locks and run-once setup.
    m.add_class::<job::PyJobLock>()?;
    m.add_function(wrap_pyfunction!(job::job_lock_path, m)?)?;
    m.add_function(wrap_pyfunction!(job::jobs_index_lock_path, m)?)?;
    m.add_function(wrap_pyfunction!(job::cleanup_stale_job_locks, m)?)?;
    m.add_function(wrap_pyfunction!(job::run_once, m)?)?;
    // Durable state files and the STATE.md format.
    m.add_class::<state_file::PyStateFile>()?;
    m.add_class::<state_file::PyStateEdit>()?;
    m.add_class::<state_file::PyStateDraft>()?;
    m.add_class::<state_file::PyStateLock>()?;
    m.add_class::<state_md::PyParsedStateMd>()?;
    m.add_function(wrap_pyfunction!(state_md::_parse_state_md, m)?)?;
    m.add_function(wrap_pyfunction!(state_md::_render_state_md, m)?)?;
    m.add_function(wrap_pyfunction!(state_md::_render_task, m)?)?;
    m.add_class::<state_md::PyRenderedStateMd>()?;
    m.add_function(wrap_pyfunction!(state_md::_render_update, m)?)?;
    m.add_function(wrap_pyfunction!(state_md::_state_md_add_note, m)?)?;
    m.add_function(wrap_pyfunction!(state_md::_state_md_corruption, m)?)?;
    m.add_function(wrap_pyfunction!(state_md::_state_md_decode, m)?)?;
    m.add_function(wrap_pyfunction!(state_md::_state_md_validate, m)?)?;
    // Task claims.
    m.add_class::<tasks::PyTaskQueue>()?;
    m.add_class::<tasks::PyClaimResult>()?;
    // `ferrolock status` / `clean`.
    m.add_function(wrap_pyfunction!(inspect::_scan_locks, m)?)?;
    m.add_function(wrap_pyfunction!(inspect::_clean_locks, m)?)?;
    inspect::add_layout_names(m)?;
    // Scope claims (little-loops).
    m.add_class::<scope::PyScopeDir>()?;
    m.add_class::<scope::PyScopeEntry>()?;
    m.add_function(wrap_pyfunction!(scope::process_ancestry, m)?)?;
    // The coordinator (file:// and postgresql://).
    m.add_class::<coord::PyCoordinator>()?;
    m.add_class::<coord::PyCoordLock>()?;
    m.add_class::<coord::PyCoordAcquired>()?;
    m.add_class::<coord::PyCoordCancel>()?;
    m.add_class::<coord_tasks::PyCoordTaskQueue>()?;
    m.add_function(wrap_pyfunction!(coord::_coord_schema_sql, m)?)?;
    m.add_function(wrap_pyfunction!(coord::_coord_state_lock_name, m)?)?;
    m.add_class::<coord_claims::PyCoordClaim>()?;
    m.add_class::<coord_claims::PyClaimAcquired>()?;
    m.add_function(wrap_pyfunction!(coord_claims::_claims_find_conflict, m)?)?;
    m.add_function(wrap_pyfunction!(coord_claims::_claims_wait_for_scope, m)?)?;
    m.add_function(wrap_pyfunction!(coord_claims::_claims_live, m)?)?;
    #[cfg(feature = "postgres")]
    m.add_class::<coord::PyRawAdvisory>()?;
    Ok(())
}

/// pyo3-log caches which Python loggers are enabled; this clears that cache.
static LOG_RESET: std::sync::OnceLock<pyo3_log::ResetHandle> = std::sync::OnceLock::new();

/// Forget cached Python logging levels (call after changing `logging` configuration at run time).
#[pyfunction]
fn _reset_logging_cache() {
    reset_log_cache();
}

/// Clears `pyo3-log`'s cache of Python loggers and their levels.
fn reset_log_cache() {
    if let Some(handle) = LOG_RESET.get() {
        handle.reset();
    }
}

/// The calling thread's owner id in the core: unique for the life of the process (a thread that ends
/// leaves its id unused), unlike `threading.get_ident()`, which a later thread may reuse.
#[pyfunction]
fn _thread_owner() -> u64 {
    crate::lock::Owner::current_thread().as_raw()
}

/// Cargo's version in PEP 440 spelling (`0.2.0-beta.1` becomes `0.2.0b1`).
fn python_version() -> String {
    env!("CARGO_PKG_VERSION")
        .replace("-alpha.", "a")
        .replace("-beta.", "b")
        .replace("-rc.", "rc")
}
