//! Lock names: the same rules on every backend, so code moves between `file://` and `postgresql://`
//! without surprises.

use crate::error::{Error, Result};

/// Longest accepted name, in bytes.
pub const MAX_NAME_LEN: usize = 200;

/// Checks a lock name: 1 to [`MAX_NAME_LEN`] bytes, no control characters (NUL cannot be stored in a
/// PostgreSQL `text`, and the rest would garble `status` output and logs). Any other character,
/// including `/`, is allowed and kept exactly: two different names are always two different locks.
pub fn validate_name(name: &str) -> Result<&str> {
    let reason = if name.is_empty() {
        Some("is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("is longer than 200 bytes")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName {
            what: "lock name",
            name: name.to_owned(),
            reason,
        }),
        None => Ok(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_paths_and_unicode() {
        for ok in ["a", "jobs/build-42", "../x", "日本/語", " spaced ", "%2F"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_empty_long_and_control() {
        let long = "x".repeat(MAX_NAME_LEN + 1);
        for bad in ["", "a\0b", "tab\there", "nl\n", "\u{7f}", long.as_str()] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
