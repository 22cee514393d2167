//! The one mapping from the core's `Error` to Python exceptions.

use pyo3::exceptions::{PyOSError, PyOverflowError, PyValueError};
use pyo3::prelude::*;

use super::convert::holder_to_dict;
use crate::error::Error;

pyo3::import_exception!(ferrolock.exceptions, Timeout);
pyo3::import_exception!(ferrolock.exceptions, WouldDeadlock);
pyo3::import_exception!(ferrolock.exceptions, Cancelled);
pyo3::import_exception!(ferrolock.exceptions, InvalidName);
pyo3::import_exception!(ferrolock.exceptions, CorruptFileError);
pyo3::import_exception!(ferrolock.exceptions, LockLost);
pyo3::import_exception!(ferrolock.exceptions, StaleToken);
pyo3::import_exception!(ferrolock.exceptions, CoordinatorError);
pyo3::import_exception!(ferrolock.exceptions, UntrustedPathError);

impl From<Error> for PyErr {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::Io { op, path, source } => {
                let errno = source.raw_os_error().unwrap_or(0);
                let strerror = format!("{op}: {}", strip_os_error_suffix(&source));
                PyOSError::new_err((errno, strerror, path.into_os_string()))
            }
            // py-filelock's message, built by `Timeout` itself from the path and a confirmed holder record;
            // without one, the pid the kernel names is appended here.
            Error::WouldBlock { path, holder, held_by }
            | Error::Timeout {
                path, holder, held_by, ..
            } => Python::attach(|py| {
                let no_record = holder.is_none();
                let holder = holder.map(|h| holder_to_dict(py, &h).map(Bound::unbind)).transpose();
                let message = held_by.filter(|_| no_record).map(|pid| {
                    format!(
                        "The file lock '{}' could not be acquired: held by pid {pid}, which wrote no holder record.",
                        path.display()
                    )
                });
                match holder {
                    Ok(holder) => Timeout::new_err((path.into_os_string(), holder, message)),
                    Err(e) => e,
                }
            }),
            Error::Cancelled { .. } => Cancelled::new_err(message),
            Error::Interrupted { .. } => {
                // Only reachable when the interrupt check itself did not leave a Python exception.
                pyo3::exceptions::PyKeyboardInterrupt::new_err(message)
            }
            // py-filelock's wording (code matches "Deadlock").
            Error::WouldDeadlock { path } => WouldDeadlock::new_err(format!(
                "Deadlock: lock '{}' is already held by a different lock object in this thread. Reuse that \
                 object, or use is_singleton=True to enable reentrant locking across instances.",
                path.display()
            )),
            Error::Symlink { path } => PyOSError::new_err((nix::libc::ELOOP, message, path.into_os_string())),
            // A directory is the OS's EISDIR, in the OS's words ("Is a directory"), as open(2) reports it.
            Error::NotRegularFile {
                path,
                kind: "directory",
            } => PyOSError::new_err((nix::libc::EISDIR, "Is a directory", path.into_os_string())),
            Error::NotRegularFile { path, .. } => {
                PyOSError::new_err((nix::libc::EINVAL, message, path.into_os_string()))
            }
            Error::UntrustedLink { path, .. } | Error::UntrustedFile { path, .. } => {
                UntrustedPathError::new_err((nix::libc::EACCES, message, path.into_os_string()))
            }
            Error::NestedEdit { .. } => pyo3::exceptions::PyRuntimeError::new_err(message),
            Error::InvalidName { .. } => InvalidName::new_err(message),
            Error::Corrupt { path, reason } => CorruptFileError::new_err((path.into_os_string(), reason)),
            Error::InvalidArgument { .. } => PyValueError::new_err(message),
            // As CPython's `RLock` reports the same condition.
            Error::ReentryOverflow { .. } => PyOverflowError::new_err(message),
            Error::LockLost { name, reason } => LockLost::new_err((name, reason)),
            Error::StaleToken { name, token, current } => StaleToken::new_err((name, token, current)),
            Error::Coordinator { .. } => CoordinatorError::new_err(message),
        }
    }
}

/// `io::Error`'s Display ends with " (os error N)"; Python shows errno itself.
fn strip_os_error_suffix(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}
