//! The judgments a scope scan cannot make from the kernel alone, behind one trait so that the Python
//! layer can route them through the legacy hooks that tests patch (`os.kill`, `_get_ancestry`,
//! `_normalize_path`, `_scopes_overlap`), while Rust callers use [`SystemJudge`].
//!
//! None of these is asked about ferrolock's own claims' liveness: that is the kernel lock's answer.

use std::collections::HashSet;

use super::paths;

/// A judge gave up (in Python: a hook raised). The operation stops; the caller re-raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JudgeAborted;

/// Decisions delegated by scans and waits.
pub trait Judge {
    /// Whether the process that wrote a legacy (unlocked) record is still alive.
    fn pid_alive(&mut self, pid: i64) -> Result<bool, JudgeAborted>;

    /// Whether `pid` is an ancestor of the calling process (a parent loop that started this one, whose
    /// claims must not block it).
    fn is_ancestor(&mut self, pid: i64) -> Result<bool, JudgeAborted>;

    /// The normalised form of a record's scope entry that is not already absolute and clean.
    fn normalize(&mut self, path: &str) -> Result<String, JudgeAborted>;

    /// Whether two normalised scopes overlap. The default is the legacy lexical rule.
    fn scopes_overlap(&mut self, a: &[String], b: &[String]) -> Result<bool, JudgeAborted> {
        Ok(paths::scopes_overlap(a, b))
    }
}

/// The judge for Rust callers: `kill(pid, 0)`, the `/proc` process tree and
/// [`resolve_lenient`](paths::resolve_lenient).
#[derive(Debug, Default)]
pub struct SystemJudge {
    ancestry: Option<HashSet<i64>>,
}

impl SystemJudge {
    /// A judge that computes the ancestry at most once (on first need).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl Judge for SystemJudge {
    fn pid_alive(&mut self, pid: i64) -> Result<bool, JudgeAborted> {
        Ok(pid_alive(pid))
    }

    fn is_ancestor(&mut self, pid: i64) -> Result<bool, JudgeAborted> {
        let ancestry = self
            .ancestry
            .get_or_insert_with(|| process_ancestry(i64::from(std::process::id())).into_iter().collect());
        Ok(ancestry.contains(&pid))
    }

    fn normalize(&mut self, path: &str) -> Result<String, JudgeAborted> {
        Ok(paths::resolve_lenient(path))
    }
}

/// The legacy liveness rule: `kill(pid, 0)` succeeds, or fails with anything but `ESRCH` (`EPERM`:
/// alive but not ours). A pid outside the kernel's range is dead, and so are 0 and negative pids
/// (`kill` would address a process group, which says nothing about the record's writer).
#[must_use]
pub fn pid_alive(pid: i64) -> bool {
    crate::sys::process_exists(pid)
}

/// The ancestors of `pid`: its parent, grandparent, ... up to but excluding pid 1, read from
/// `/proc/<pid>/stat` (the legacy code ran `ps` once per level). On an unreadable entry the
/// ancestors found so far are returned, as the legacy code did.
#[must_use]
pub fn process_ancestry(pid: i64) -> Vec<i64> {
    let mut ancestors = Vec::new();
    let mut current = pid;
    while current > 1 {
        let Some(parent) = parent_of(current) else {
            log::debug!(target: "ferrolock::scope", "could not read the parent of pid {current}");
            break;
        };
        if parent <= 1 || ancestors.contains(&parent) {
            break;
        }
        ancestors.push(parent);
        current = parent;
    }
    ancestors
}

fn parent_of(pid: i64) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may contain spaces and parentheses, so split after the last ')'.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_ascii_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestry_starts_at_the_parent() {
        let me = i64::from(std::process::id());
        let ancestry = process_ancestry(me);
        assert!(!ancestry.contains(&me));
        let parent = i64::from(nix::unistd::getppid().as_raw());
        if parent > 1 {
            assert_eq!(ancestry.first(), Some(&parent));
        }
        assert!(process_ancestry(1).is_empty());
    }

    #[test]
    fn liveness_follows_kill() {
        assert!(pid_alive(i64::from(std::process::id())));
        assert!(!pid_alive(i64::from(i32::MAX)));
        assert!(!pid_alive(1 << 40));
        assert!(!pid_alive(0));
        assert!(!pid_alive(-1));
    }
}
