//! Scope paths: the legacy overlap rule, and normalisation.
//!
//! Two paths overlap when they are equal or one lies inside the other. The legacy code decides that
//! lexically with `pathlib.PurePosixPath` (`==` and `relative_to`) on paths it resolved beforehand;
//! [`paths_overlap`] reproduces those semantics exactly, so the fast path here and the Python hooks
//! (`LockManager._paths_overlap`) always agree.

use std::path::{Component, PathBuf};

/// A path split the way `PurePosixPath` splits it: an optional root (`/`, or `//` which POSIX keeps
/// distinct) and the components, with empty and `.` components dropped and `..` kept.
#[derive(Debug, PartialEq, Eq)]
struct Parts<'a> {
    root: Option<&'a str>,
    names: Vec<&'a str>,
}

impl<'a> Parts<'a> {
    fn of(path: &'a str) -> Self {
        let root = if path.starts_with("//") && !path.starts_with("///") {
            Some("//")
        } else if path.starts_with('/') {
            Some("/")
        } else {
            None
        };
        let names = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
        Self { root, names }
    }

    /// `PurePosixPath(self).relative_to(base)` succeeds.
    fn is_within(&self, base: &Parts<'_>) -> bool {
        if base.root.is_none() && base.names.is_empty() {
            // relative_to(".") accepts every relative path and no absolute one.
            return self.root.is_none();
        }
        self.root == base.root && self.names.len() >= base.names.len() && self.names.starts_with(&base.names)
    }
}

/// The legacy `_paths_overlap`: equal, or either is inside the other (lexically).
#[must_use]
pub fn paths_overlap(a: &str, b: &str) -> bool {
    let (pa, pb) = (Parts::of(a), Parts::of(b));
    pa == pb || pa.is_within(&pb) || pb.is_within(&pa)
}

/// The legacy `_scopes_overlap`: some pair of paths overlaps.
#[must_use]
pub fn scopes_overlap(a: &[String], b: &[String]) -> bool {
    a.iter().any(|x| b.iter().any(|y| paths_overlap(x, y)))
}

/// True if `path` is already in the form `Path.resolve()` produces (absolute, no empty, `.` or `..`
/// components, no trailing slash), so re-resolving it is pointless. Every record written by an
/// `acquire` (legacy or ferrolock) has this form; hand-written records may not.
#[must_use]
pub fn is_normalized(path: &str) -> bool {
    path == "/" || (path.starts_with('/') && path[1..].split('/').all(|c| !c.is_empty() && c != "." && c != ".."))
}

/// An absolute path for `path` with symlinks resolved as far as the path exists, and the rest
/// applied lexically: close to Python's `Path(path).resolve()` (non-strict), for Rust callers that
/// have no Python to ask. Relative paths are taken against the current directory.
#[must_use]
pub fn resolve_lenient(path: &str) -> String {
    let start = if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    // Find the longest prefix that exists and canonicalise it; the tail cannot contain symlinks
    // (it does not exist), so it is applied lexically.
    let components: Vec<Component<'_>> = start.components().collect();
    for keep in (1..=components.len()).rev() {
        let prefix: PathBuf = components[..keep].iter().collect();
        if let Ok(mut resolved) = std::fs::canonicalize(&prefix) {
            for c in &components[keep..] {
                push_lexically(&mut resolved, *c);
            }
            return resolved.to_string_lossy().into_owned();
        }
    }
    start.to_string_lossy().into_owned()
}

fn push_lexically(path: &mut PathBuf, c: Component<'_>) {
    match c {
        Component::ParentDir => {
            path.pop();
        }
        Component::Normal(name) => path.push(name),
        Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_follows_pure_posix_path() {
        let yes = [
            ("/a", "/a"),
            ("/a/", "/a"),
            ("/a", "/a/b"),
            ("/a/./b", "/a/b/c"),
            ("/a//b", "/a/b"),
            ("a", "a/b"),
            ("src", "."),
            (".", ""),
            ("/", "/x"),
        ];
        for (a, b) in yes {
            assert!(paths_overlap(a, b), "{a} {b}");
            assert!(paths_overlap(b, a), "{b} {a}");
        }
        let no = [
            ("/a", "/ab"),
            ("/a/b", "/a/c"),
            ("/a", "a"),
            ("/a", "."),
            ("//a", "/a"),
            ("/a/../b", "/b"),
        ];
        for (a, b) in no {
            assert!(!paths_overlap(a, b), "{a} {b}");
            assert!(!paths_overlap(b, a), "{b} {a}");
        }
    }

    #[test]
    fn scopes_overlap_when_any_pair_does() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert!(scopes_overlap(&s(&["/x", "/a"]), &s(&["/b", "/a/c"])));
        assert!(!scopes_overlap(&s(&["/x", "/a"]), &s(&["/b", "/c"])));
        assert!(!scopes_overlap(&[], &s(&["/"])));
    }

    #[test]
    fn recognises_normalized_paths() {
        for ok in ["/", "/a", "/a/b.c", "/a/..b"] {
            assert!(is_normalized(ok), "{ok}");
        }
        for bad in ["", "a", "/a/", "/a//b", "/a/./b", "/a/../b", "//a", "."] {
            assert!(!is_normalized(bad), "{bad}");
        }
    }

    #[test]
    fn resolves_missing_tails_lexically() {
        let dir = std::env::temp_dir().canonicalize().expect("tmp");
        let base = dir.to_string_lossy();
        assert_eq!(
            resolve_lenient(&format!("{base}/no-such-ferrolock-dir/x/../y/")),
            format!("{base}/no-such-ferrolock-dir/y")
        );
        assert_eq!(resolve_lenient("/"), "/");
    }
}
