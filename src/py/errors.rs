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
            Error::WouldBlock { path, holder, .. } | Error::Timeout { path, holder, .. } => Python::attach(|py| {
                let holder = holder.map(|h| holder_to_dict(py, &h).map(Bound::unbind)).transpose();
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
            Error::WouldDeadlock { .. } => WouldDeadlock::new_err(message),
            Error::Symlink { path } => PyOSError::new_err((nix::libc::ELOOP, message, path.into_os_string())),
            Error::NotRegularFile { path, kind } => {
                let errno = if kind == "directory" {
                    nix::libc::EISDIR
                } else {
                    nix::libc::EINVAL
                };
                PyOSError::new_err((errno, message, path.into_os_string()))
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
