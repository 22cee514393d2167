//! File modes callers choose for the files ferrolock creates (lock files, state files).
//!
//! Only permission bits are accepted. A setuid, setgid or sticky bit on a lock or state file has no
//! use, and a caller passing one by mistake (`0o6777` for `0o777`) would create a setuid file that
//! anyone allowed to write it could turn into a privilege escalation.

use crate::error::{Error, Result};

/// The bits a caller may ask for: read, write and execute for owner, group and others.
pub const PERMISSION_BITS: u32 = 0o777;

/// `mode`, if it has no bits outside [`PERMISSION_BITS`].
///
/// # Errors
/// [`Error::InvalidArgument`] otherwise.
pub fn check(mode: u32) -> Result<u32> {
    if mode & !PERMISSION_BITS == 0 {
        Ok(mode)
    } else {
        Err(out_of_range(format!("{mode:#o}")))
    }
}

/// The error for a mode outside [`PERMISSION_BITS`], shown as `shown` (for callers whose integers do
/// not fit a `u32`, such as a negative Python int).
#[must_use]
pub fn out_of_range(shown: String) -> Error {
    Error::InvalidArgument {
        what: "file mode",
        value: shown,
        reason: "only the permission bits 0o777 may be set (no setuid, setgid or sticky bit)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_permission_bits_pass() {
        for ok in [0, 0o600, 0o644, 0o777] {
            assert_eq!(check(ok).unwrap(), ok);
        }
        for bad in [0o1000, 0o2755, 0o4755, 0o6777, 0o10000, u32::MAX] {
            let err = check(bad).unwrap_err().to_string();
            assert!(err.starts_with(&format!("invalid file mode {bad:#o}: ")), "{err}");
        }
    }
}
