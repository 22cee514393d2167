//! What a lock file guards, judged from where it lives. The legacy layouts are fixed by the modules
//! ferrolock replaces (see `spec/compat/`), so their files can be recognised by name.

use std::path::Path;

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

/// `*.lock`, including logist's bare `.lock` (which has no extension as far as `Path` is concerned).
/// Case-sensitive, as the legacy layouts are.
pub(crate) fn has_lock_name(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "lock") || path.file_name().is_some_and(|n| n == ".lock")
}

/// Classifies `path` (a `*.lock` file) and says what it guards, or `None` if it is not a lock file.
pub fn classify(path: &Path) -> Option<(LockKind, String)> {
    if !has_lock_name(path) {
        return None;
    }
    let name = path.file_name()?.to_str()?;
    let parent = path.parent().unwrap_or(Path::new(""));
    let parent_name = parent.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let in_running = path
        .ancestors()
        .skip(1)
        .any(|a| a.file_name().is_some_and(|n| n == ".running"));
    let kind = if in_running && name == ".acquire.lock" && parent_name == ".running" {
        (LockKind::ScopeSentinel, format!("claims in {}", parent.display()))
    } else if in_running {
        let running = path
            .ancestors()
            .find(|a| a.file_name().is_some_and(|n| n == ".running"))?;
        let record = path
            .strip_prefix(running)
            .ok()?
            .to_str()?
            .strip_suffix(".lock")?
            .to_owned();
        (LockKind::ScopeClaim, format!("scope claim {record}"))
    } else if name == ".jobs_index.lock" {
        (LockKind::LogistIndex, format!("jobs index of {}", parent.display()))
    } else if name == ".lock" {
        (LockKind::LogistJob, format!("job {parent_name}"))
    } else if name == ".workspace_setup.lock" {
        let job = if parent_name == "workspace" {
            parent.parent().unwrap_or(parent)
        } else {
            parent
        };
        (
            LockKind::WorkspaceSetup,
            format!("workspace setup of job {}", job.file_name()?.to_str()?),
        )
    } else if name == "state.todo2.json.lock" && parent_name == ".todo2" {
        (LockKind::Todo2State, "todo2 state file".to_owned())
    } else if parent_name == "locks" && parent.parent().and_then(Path::file_name).is_some_and(|n| n == ".todo2") {
        let task = name.strip_prefix("task_")?.strip_suffix(".lock")?;
        (LockKind::Todo2Task, format!("todo2 task {task}"))
    } else if name == "STATE.lock" {
        (
            LockKind::BlackBox5State,
            format!("{}", parent.join("STATE.md").display()),
        )
    } else {
        let guarded = name.strip_suffix(".lock").filter(|s| !s.is_empty()).unwrap_or(name);
        (LockKind::LockFile, guarded.to_owned())
    };
    Some(kind)
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
}
