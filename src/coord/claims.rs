//! Scope claims across machines: what a claim is, how its paths are named, and the interface both
//! backends implement.
//!
//! A claim is a set of paths an owner works on. A claim on `a/b` covers `a/b` and everything below it;
//! two claims conflict when one of them is exclusive and some path of one is equal to or below some
//! path of the other (`a/b` and `a/bc` never conflict). A set of paths is claimed all or nothing.
//!
//! Paths are names inside a *project*: a key every host agrees on (`"default"` unless chosen), so two
//! repositories coordinated through one server never conflict. A path is given relative to the
//! project's root (`src/api`, `.` for the whole project), or absolute together with the directory
//! where this host keeps the project (`root`), which it must lie in. Paths are taken lexically:
//! symbolic links are not resolved, since another host could resolve them differently.

use std::fmt;

use super::backend::LostCallback;
use super::cancel::Cancel;
use crate::error::{Error, Result};
use crate::lock::{Holder, LockMode, Wait, WaitControl};

/// Longest project key, in bytes.
pub const MAX_PROJECT_LEN: usize = 200;

/// Longest claim path once normalised (components joined by `/`), in bytes: keys must fit in an
/// index entry of the PostgreSQL backend.
pub const MAX_CLAIM_PATH_LEN: usize = 1024;

/// Most paths in one claim.
pub const MAX_CLAIM_PATHS: usize = 1000;

/// A claim path, normalised: its components (none for the project's root).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClaimPath(Vec<String>);

impl ClaimPath {
    /// Normalises `path` (see the module docs): `root` is required for an absolute `path`.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for an empty path, a control character, a `..` component, an absolute
    /// path without a root or outside it, or a path longer than [`MAX_CLAIM_PATH_LEN`].
    pub fn parse(path: &str, root: Option<&str>) -> Result<Self> {
        let bad = |reason: &'static str| Error::InvalidName {
            what: "claim path",
            name: path.to_owned(),
            reason,
        };
        if path.is_empty() {
            return Err(bad("is empty (use \".\" for the whole project)"));
        }
        if path.chars().any(char::is_control) {
            return Err(bad("contains a control character"));
        }
        let mut parts = components(path).ok_or_else(|| bad("contains a \"..\" component"))?;
        if path.starts_with('/') {
            let Some(root) = root else {
                return Err(bad("is absolute, and no root was given to make it relative to"));
            };
            let base = components(root)
                .filter(|_| root.starts_with('/'))
                .ok_or_else(|| bad("is absolute, and the root is not an absolute path without \"..\""))?;
            if !parts.starts_with(&base) {
                return Err(bad("is outside the project's root"));
            }
            parts.drain(..base.len());
        }
        let normal = Self(parts.into_iter().map(str::to_owned).collect());
        if normal.display().len() > MAX_CLAIM_PATH_LEN {
            return Err(bad("is longer than 1024 bytes"));
        }
        Ok(normal)
    }

    /// The components (empty for the project's root).
    #[must_use]
    pub fn components(&self) -> &[String] {
        &self.0
    }

    /// `a/b`, or `.` for the project's root.
    #[must_use]
    pub fn display(&self) -> String {
        if self.0.is_empty() {
            ".".to_owned()
        } else {
            self.0.join("/")
        }
    }

    /// True if `self` is `other` or below it.
    #[must_use]
    pub fn is_within(&self, other: &Self) -> bool {
        self.0.starts_with(&other.0)
    }

    /// True if one of the two is the other or below it.
    #[must_use]
    pub fn overlaps(&self, other: &Self) -> bool {
        self.is_within(other) || other.is_within(self)
    }
}

/// The components of `path` with empty and `.` ones dropped; `None` if one is `..`.
fn components(path: &str) -> Option<Vec<&str>> {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    (!parts.contains(&"..")).then_some(parts)
}

/// Checks a project key: 1 to [`MAX_PROJECT_LEN`] bytes, no control characters.
///
/// # Errors
/// [`Error::InvalidName`] otherwise.
pub fn validate_project(project: &str) -> Result<&str> {
    let reason = if project.is_empty() {
        Some("is empty")
    } else if project.len() > MAX_PROJECT_LEN {
        Some("is longer than 200 bytes")
    } else if project.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName {
            what: "claim project",
            name: project.to_owned(),
            reason,
        }),
        None => Ok(project),
    }
}

/// Normalises a set of paths: sorted, without duplicates, and without any path that another path of
/// the set already covers (claiming `a` and `a/b` is claiming `a`). A claim never conflicts with
/// itself, on any backend.
///
/// # Errors
/// [`Error::InvalidName`] for an empty set or more than [`MAX_CLAIM_PATHS`] paths.
pub fn minimal_set(mut paths: Vec<ClaimPath>) -> Result<Vec<ClaimPath>> {
    if paths.is_empty() || paths.len() > MAX_CLAIM_PATHS {
        return Err(Error::InvalidName {
            what: "claim",
            name: format!("{} paths", paths.len()),
            reason: "must have 1 to 1000 paths",
        });
    }
    paths.sort();
    let mut out: Vec<ClaimPath> = Vec::with_capacity(paths.len());
    for p in paths {
        // Sorted, an ancestor comes right before its descendants.
        if out.last().is_none_or(|last| !p.is_within(last)) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Two path sets conflict: some pair overlaps and not both are shared.
#[must_use]
pub fn sets_conflict(a: &[ClaimPath], a_mode: LockMode, b: &[ClaimPath], b_mode: LockMode) -> bool {
    !(a_mode == LockMode::Shared && b_mode == LockMode::Shared) && a.iter().any(|x| b.iter().any(|y| x.overlaps(y)))
}

/// What a backend is asked to claim.
#[derive(Clone)]
pub struct ClaimRequest<'a> {
    /// The project key (checked by [`validate_project`]).
    pub project: &'a str,
    /// A set made by [`minimal_set`].
    pub paths: &'a [ClaimPath],
    /// Exclusive or shared.
    pub mode: LockMode,
    /// Shown to others in [`ClaimInfo`] and in their `Timeout` errors.
    pub purpose: Option<&'a str>,
    /// Run if the claim is lost while held (PostgreSQL: its lease ran out, its session ended).
    pub on_lost: Option<LostCallback>,
}

impl fmt::Debug for ClaimRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimRequest")
            .field("project", &self.project)
            .field("paths", &self.paths)
            .field("mode", &self.mode)
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

impl ClaimRequest<'_> {
    /// The claimed paths as one line, for errors: `a/b, c`.
    #[must_use]
    pub fn describe(&self) -> String {
        describe(self.project, self.paths)
    }
}

/// `project:a/b, c`, for errors and logs.
#[must_use]
pub fn describe(project: &str, paths: &[ClaimPath]) -> String {
    let list: Vec<String> = paths.iter().map(ClaimPath::display).collect();
    format!("{project}:{}", list.join(", "))
}

/// A live claim, as a backend reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimInfo {
    /// The project key.
    pub project: String,
    /// The claimed paths (`a/b`, `.` for the whole project).
    pub paths: Vec<String>,
    /// Exclusive or shared.
    pub mode: LockMode,
    /// Who holds it (`pid`, `host`, `since`, `purpose`).
    pub holder: Holder,
}

/// The claims half of a [`Backend`](super::Backend).
pub trait ClaimBackend: Send + Sync + fmt::Debug {
    /// Claims `req`'s paths, all or none, waiting (as `wait`, `ctl` and `cancel` allow) while a live
    /// claim conflicts.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] / [`Error::Timeout`] naming the conflicting claim's holder (its path is
    /// the claim's description); [`Error::Cancelled`] / [`Error::Interrupted`] with nothing claimed;
    /// backend failures.
    fn claim(
        &self,
        req: &ClaimRequest<'_>,
        wait: Wait,
        ctl: &mut WaitControl<'_>,
        cancel: Option<&Cancel>,
    ) -> Result<Box<dyn ClaimGrant>>;

    /// The first live claim of `project` that conflicts with claiming `paths` in `mode`. Dead claims
    /// met on the way are removed.
    fn find_conflict(&self, project: &str, paths: &[ClaimPath], mode: LockMode) -> Result<Option<ClaimInfo>>;

    /// Waits until no live claim conflicts with claiming `paths` in `mode` (`true`), or until `wait`
    /// runs out (`false`). Woken by the conflicting claim's release or its owner's death, never by
    /// polling.
    fn wait_for_scope(
        &self,
        project: &str,
        paths: &[ClaimPath],
        mode: LockMode,
        wait: Wait,
        ctl: &mut WaitControl<'_>,
        cancel: Option<&Cancel>,
    ) -> Result<bool>;

    /// Every live claim of `project`.
    fn live_claims(&self, project: &str) -> Result<Vec<ClaimInfo>>;
}

/// One held claim. Dropping it without [`release`](Self::release) releases it too (logging errors).
pub trait ClaimGrant: Send + Sync + fmt::Debug {
    /// Checks with the backend that the claim is still held.
    ///
    /// # Errors
    /// [`Error::LockLost`] once the lease or the session is gone.
    fn ensure_held(&self) -> Result<()>;

    /// Whether the backend already knows the claim is lost (no round trip).
    fn is_lost(&self) -> bool;

    /// Releases the claim.
    fn release(self: Box<Self>) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ClaimPath {
        ClaimPath::parse(s, Some("/srv/repo")).expect(s)
    }

    #[test]
    fn normalises_relative_and_absolute_paths() {
        assert_eq!(p("a//b/./").display(), "a/b");
        assert_eq!(p("/srv/repo/a/b").display(), "a/b");
        assert_eq!(p("/srv/repo").display(), ".");
        assert_eq!(p(".").display(), ".");
        for (bad, root) in [
            ("", None),
            ("a/../b", None),
            ("..", None),
            ("/srv/repo/x", None),
            ("/srv/other/x", Some("/srv/repo")),
            ("/srv/repository", Some("/srv/repo")),
            ("/x", Some("relative/root")),
            ("a\u{1}b", None),
            ("a\nb", None),
        ] {
            assert!(ClaimPath::parse(bad, root).is_err(), "{bad:?}");
        }
        assert!(ClaimPath::parse(&"x/".repeat(600), None).is_err());
    }

    #[test]
    fn overlap_is_by_component() {
        assert!(p("a").overlaps(&p("a/b")));
        assert!(p("a/b").overlaps(&p("a")));
        assert!(p(".").overlaps(&p("z")));
        assert!(!p("a/b").overlaps(&p("a/bc")));
        assert!(!p("a/b").overlaps(&p("a/b.c")));
        let (x, s) = (LockMode::Exclusive, LockMode::Shared);
        assert!(sets_conflict(&[p("a")], x, &[p("a/b")], s));
        assert!(!sets_conflict(&[p("a")], s, &[p("a/b")], s));
    }

    #[test]
    fn minimal_sets_drop_covered_paths() {
        let set = minimal_set(vec![p("a/b"), p("c"), p("a"), p("a/b/c"), p("c")]).expect("set");
        assert_eq!(set.iter().map(ClaimPath::display).collect::<Vec<_>>(), ["a", "c"]);
        assert!(minimal_set(vec![]).is_err());
    }
}
