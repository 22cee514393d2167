//! Validation of identifiers that become path components (job ids, loop names, task ids).
//!
//! The legacy modules put these straight into file names, so `../x` escaped their directory and a `/`
//! silently created subdirectories. Everything that turns an id into a path goes through here first.

use crate::error::{Error, Result};

/// Longest accepted component, in bytes (`NAME_MAX` on Linux filesystems).
pub const MAX_COMPONENT_LEN: usize = 255;

/// Checks that `name` is usable as a single path component: not empty, not `.` or `..`, no `/`, no NUL,
/// at most [`MAX_COMPONENT_LEN`] bytes. `what` names the kind of id in the error ("job id").
pub fn validate_component<'a>(what: &'static str, name: &'a str) -> Result<&'a str> {
    let reason = if name.is_empty() {
        Some("is empty")
    } else if name == "." || name == ".." {
        Some("is a relative directory reference")
    } else if name.contains('/') {
        Some("contains a path separator")
    } else if name.contains('\0') {
        Some("contains a NUL byte")
    } else if name.len() > MAX_COMPONENT_LEN {
        Some("is longer than 255 bytes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName {
            what,
            name: name.to_owned(),
            reason,
        }),
        None => Ok(name),
    }
}

/// Checks a relative path of components separated by `/` (little-loops' `group/loop` names): not
/// absolute, and every component valid as in [`validate_component`].
pub fn validate_relative<'a>(what: &'static str, name: &'a str) -> Result<&'a str> {
    if name.starts_with('/') {
        return Err(Error::InvalidName {
            what,
            name: name.to_owned(),
            reason: "is an absolute path",
        });
    }
    for part in name.split('/') {
        validate_component(what, part).map_err(|_| Error::InvalidName {
            what,
            name: name.to_owned(),
            reason: "has an empty, '.', '..', NUL or over-long component",
        })?;
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids() {
        for ok in ["job-17", "T-1", "a.b", "..hidden", "x..y", "日本"] {
            assert!(validate_component("id", ok).is_ok(), "{ok}");
        }
        assert!(validate_relative("name", "group/loop").is_ok());
    }

    #[test]
    fn rejects_escapes() {
        let long = "x".repeat(256);
        for bad in ["", ".", "..", "../x", "a/b", "/abs", "a\0b", long.as_str()] {
            assert!(validate_component("id", bad).is_err(), "{bad:?}");
        }
        for bad in ["/abs", "a/../b", "a//b", "a/", "..", "a/\0"] {
            assert!(validate_relative("name", bad).is_err(), "{bad:?}");
        }
    }
}
