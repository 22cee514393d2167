//! What a lock file guards, judged from where it lives. The legacy layouts are fixed by the modules
//! ferrolock replaces, so their files can be recognised by name; each name comes from the module that
//! owns its layout. Names are compared as bytes: a name that is not UTF-8 is classified like any other.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::job::{JOB_LOCK_FILE, JOBS_INDEX_LOCK_FILE, WORKSPACE_DIR, WORKSPACE_SETUP_LOCK_FILE};
use crate::scope::{RUNNING_DIR, SENTINEL_NAME};
use crate::state_md::{STATE_FILE, STATE_LOCK_FILE};

/// How every lock file's name ends (logist's job lock is exactly this).
pub const LOCK_SUFFIX: &str = ".lock";

// todo2's layout (`<root>/.todo2/state.todo2.json.lock`, `<root>/.todo2/locks/task_<id>.lock`). The
// core has no todo2 module yet to own these names; they live here, where they are recognised, until it
// does.
/// todo2's directory in a project root.
pub const TODO2_DIR: &str = ".todo2";
/// The lock of todo2's whole state file, in [`TODO2_DIR`].
pub const TODO2_STATE_LOCK_FILE: &str = "state.todo2.json.lock";
/// The directory of todo2's task locks, in [`TODO2_DIR`].
pub const TODO2_LOCKS_DIR: &str = "locks";
/// A todo2 task lock is `<prefix><task id>.lock` in [`TODO2_LOCKS_DIR`].
pub const TODO2_TASK_LOCK_PREFIX: &str = "task_";

/// The kinds of lock `ferrolock status` knows. The names are the `kind` field of `--json` output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// Any other `*.lock` file (a `FileLock`, `ferrolock run`, a `StateFile`'s lock, `flock(1)`).
    LockFile,
    /// logist `<jobs>/<job_id>/.lock`.
    LogistJob,
    /// logist `<jobs>/.jobs_index.lock`.
    LogistIndex,
    /// logist workspace setup (`workspace/.workspace_setup.lock` or ferrolock's `<job>/.workspace_setup.lock`).
    WorkspaceSetup,
    /// little-loops `.running/<name>.lock` claim record.
    ScopeClaim,
    /// little-loops `.running/.acquire.lock` sentinel.
    ScopeSentinel,
    /// todo2 `.todo2/state.todo2.json.lock`.
    Todo2State,
    /// todo2 `.todo2/locks/task_<id>.lock`.
    Todo2Task,
    /// `BlackBox5` `STATE.lock` (beside `STATE.md`).
    BlackBox5State,
}

impl LockKind {
    /// The stable name used in JSON output.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::LockFile => "lock_file",
            Self::LogistJob => "logist_job",
            Self::LogistIndex => "logist_index",
            Self::WorkspaceSetup => "workspace_setup",
            Self::ScopeClaim => "scope_claim",
            Self::ScopeSentinel => "scope_sentinel",
            Self::Todo2State => "todo2_state",
            Self::Todo2Task => "todo2_task",
            Self::BlackBox5State => "blackbox5_state",
        }
    }

    /// May `ferrolock clean` remove this kind when nobody holds it or has it open? Never the
    /// little-loops sentinel: legacy processes lock it without re-checking the inode afterwards, so a
    /// recreated sentinel would stop excluding them. Claim records are cleaned by their own rule.
    #[must_use]
    pub fn removable_when_unused(self) -> bool {
        !matches!(self, Self::ScopeSentinel | Self::ScopeClaim)
    }
}

/// `*.lock`, including logist's bare `.lock`. Case-sensitive, as the legacy layouts are.
pub(crate) fn has_lock_name(name: &OsStr) -> bool {
    name.as_bytes().ends_with(LOCK_SUFFIX.as_bytes())
}

/// Classifies `path` (a `*.lock` file) and says what it guards, or `None` if it is not a lock file.
pub fn classify(path: &Path) -> Option<(LockKind, OsString)> {
    let name = path.file_name()?;
    if !has_lock_name(name) {
        return None;
    }
    let parent = path.parent().unwrap_or(Path::new(""));
    let parent_name = parent.file_name().unwrap_or_default();
    let running = path
        .ancestors()
        .skip(1)
        .find(|a| a.file_name() == Some(OsStr::new(RUNNING_DIR)));
    let classified = if let Some(running) = running {
        if name == SENTINEL_NAME && parent == running {
            (LockKind::ScopeSentinel, words("claims in ", parent.as_os_str()))
        } else {
            let record = path.strip_prefix(running).ok()?.as_os_str().as_bytes();
            let record = OsStr::from_bytes(record.strip_suffix(LOCK_SUFFIX.as_bytes())?);
            (LockKind::ScopeClaim, words("scope claim ", record))
        }
    } else if name == JOBS_INDEX_LOCK_FILE {
        (LockKind::LogistIndex, words("jobs index of ", parent.as_os_str()))
    } else if name == JOB_LOCK_FILE {
        (LockKind::LogistJob, words("job ", parent_name))
    } else if name == WORKSPACE_SETUP_LOCK_FILE {
        let job = if parent_name == WORKSPACE_DIR {
            parent.parent().unwrap_or(parent)
        } else {
            parent
        };
        (
            LockKind::WorkspaceSetup,
            words("workspace setup of job ", job.file_name()?),
        )
    } else if name == TODO2_STATE_LOCK_FILE && parent_name == TODO2_DIR {
        (LockKind::Todo2State, "todo2 state file".into())
    } else if parent_name == TODO2_LOCKS_DIR && parent.parent().and_then(Path::file_name) == Some(OsStr::new(TODO2_DIR))
    {
        let task = name.as_bytes().strip_prefix(TODO2_TASK_LOCK_PREFIX.as_bytes())?;
        let task = OsStr::from_bytes(task.strip_suffix(LOCK_SUFFIX.as_bytes())?);
        (LockKind::Todo2Task, words("todo2 task ", task))
    } else if name == STATE_LOCK_FILE {
        (LockKind::BlackBox5State, parent.join(STATE_FILE).into_os_string())
    } else {
        let stem = &name.as_bytes()[..name.len() - LOCK_SUFFIX.len()];
        let guarded = if stem.is_empty() { name } else { OsStr::from_bytes(stem) };
        (LockKind::LockFile, guarded.to_owned())
    };
    Some(classified)
}

fn words(prefix: &str, name: &OsStr) -> OsString {
    let mut out = OsString::from(prefix);
    out.push(name);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_every_legacy_layout() {
        let cases = [
            ("/r/.loops/.running/.acquire.lock", LockKind::ScopeSentinel),
            ("/r/.loops/.running/fix.lock", LockKind::ScopeClaim),
            ("/r/.loops/.running/group/loop.lock", LockKind::ScopeClaim),
            ("/r/jobs/.jobs_index.lock", LockKind::LogistIndex),
            ("/r/jobs/job-1/.lock", LockKind::LogistJob),
            (
                "/r/jobs/job-1/workspace/.workspace_setup.lock",
                LockKind::WorkspaceSetup,
            ),
            ("/r/jobs/job-1/.workspace_setup.lock", LockKind::WorkspaceSetup),
            ("/r/.todo2/state.todo2.json.lock", LockKind::Todo2State),
            ("/r/.todo2/locks/task_T-1.lock", LockKind::Todo2Task),
            ("/r/STATE.lock", LockKind::BlackBox5State),
            ("/r/build.lock", LockKind::LockFile),
        ];
        for (path, kind) in cases {
            assert_eq!(classify(Path::new(path)).map(|(k, _)| k), Some(kind), "{path}");
        }
        assert_eq!(
            classify(Path::new("/r/.loops/.running/group/loop.lock")).unwrap().1,
            "scope claim group/loop"
        );
        assert_eq!(classify(Path::new("/r/notes.txt")), None);
    }

    #[test]
    fn names_that_are_not_utf8_are_classified_too() {
        use std::os::unix::ffi::OsStrExt;
        let path = Path::new(OsStr::from_bytes(b"/r/.todo2/locks/task_\xff.lock"));
        let (kind, guards) = classify(path).unwrap();
        assert_eq!(kind, LockKind::Todo2Task);
        assert_eq!(guards.as_bytes(), b"todo2 task \xff");
    }
}
