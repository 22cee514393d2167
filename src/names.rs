//! Validation of identifiers that become path components (job ids, loop names, task ids).
//!
//! The legacy modules put these straight into file names, so `../x` escaped their directory and a `/`
//! silently created subdirectories. Everything that turns an id into a path goes through here first.

use std::fmt;

use crate::error::{Error, Result};

/// Longest accepted component, in bytes (`NAME_MAX` on Linux filesystems).
pub const MAX_COMPONENT_LEN: usize = 255;

/// The kinds of identifier that become path components. A closed set, so an [`Error::InvalidName`]
/// always names what the caller passed, and a misspelt label is an error instead of a vague "name".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// A logist job id (`<jobs>/<job_id>/.lock`).
    JobId,
    /// A todo2 task id (`.todo2/locks/task_<id>.lock`).
    TaskId,
    /// A little-loops loop name (`.loops/.running/<name>.lock`, `group/loop` nests).
    LoopName,
    /// A little-loops instance id, used instead of the loop name for the claim's record.
    InstanceId,
}

impl IdKind {
    /// Every kind, in the order error messages list them.
    pub const ALL: [Self; 4] = [Self::JobId, Self::TaskId, Self::LoopName, Self::InstanceId];

    /// How messages name this kind ("job id").
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::JobId => "job id",
            Self::TaskId => "task id",
            Self::LoopName => "loop name",
            Self::InstanceId => "instance id",
        }
    }

    /// The kind whose [`label`](Self::label) is `label`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for any other text.
    pub fn from_label(label: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.label() == label)
            .ok_or_else(|| Error::InvalidArgument {
                what: "kind of name",
                value: format!("{label:?}"),
                reason: "expected \"job id\", \"task id\", \"loop name\" or \"instance id\"",
            })
    }
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Checks that `name` is usable as a single path component: not empty, not `.` or `..`, no `/`, no NUL,
/// at most [`MAX_COMPONENT_LEN`] bytes. `kind` names the id in the error ("invalid job id ...").
///
/// # Errors
/// [`Error::InvalidName`] saying which rule `name` breaks.
pub fn validate_component(kind: IdKind, name: &str) -> Result<&str> {
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
            what: kind.label(),
            name: name.to_owned(),
            reason,
        }),
        None => Ok(name),
    }
}

/// Checks a relative path of components separated by `/` (little-loops' `group/loop` names): not
/// absolute, and every component valid as in [`validate_component`].
///
/// # Errors
/// [`Error::InvalidName`] for an absolute name or a bad component.
pub fn validate_relative(kind: IdKind, name: &str) -> Result<&str> {
    let what = kind.label();
    if name.starts_with('/') {
        return Err(Error::InvalidName {
            what,
            name: name.to_owned(),
            reason: "is an absolute path",
        });
    }
    for part in name.split('/') {
        validate_component(kind, part).map_err(|_| Error::InvalidName {
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
            assert!(validate_component(IdKind::JobId, ok).is_ok(), "{ok}");
        }
        assert!(validate_relative(IdKind::LoopName, "group/loop").is_ok());
    }

    #[test]
    fn rejects_escapes() {
        let long = "x".repeat(256);
        for bad in ["", ".", "..", "../x", "a/b", "/abs", "a\0b", long.as_str()] {
            assert!(validate_component(IdKind::TaskId, bad).is_err(), "{bad:?}");
        }
        for bad in ["/abs", "a/../b", "a//b", "a/", "..", "a/\0"] {
            assert!(validate_relative(IdKind::LoopName, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn messages_name_the_kind_and_labels_are_a_closed_set() {
        for kind in IdKind::ALL {
            assert_eq!(IdKind::from_label(kind.label()).unwrap(), kind);
            let err = validate_component(kind, "..").unwrap_err().to_string();
            assert!(err.starts_with(&format!("invalid {kind} \"..\"")), "{err}");
        }
        for unknown in ["name", "job-id", "Job id", ""] {
            assert!(
                matches!(IdKind::from_label(unknown), Err(Error::InvalidArgument { .. })),
                "{unknown:?}"
            );
        }
    }
}
