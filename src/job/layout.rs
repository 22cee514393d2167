//! Where the locks of a jobs directory live (logist's layout, kept so that old and new processes lock
//! the same files).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::cleanup;
use super::job_lock::JobLock;
use crate::error::Result;
use crate::names::{self, IdKind};

/// Name of the lock file inside each job directory.
pub const JOB_LOCK_FILE: &str = ".lock";

/// Name of the lock file guarding the jobs index, directly in the jobs directory.
pub const JOBS_INDEX_LOCK_FILE: &str = ".jobs_index.lock";

/// Name of a job's workspace folder (logist's `<job_dir>/workspace`).
pub const WORKSPACE_DIR: &str = "workspace";

/// Name of the workspace-setup lock: logist's `workspace/.workspace_setup.lock`, and ferrolock's mutex
/// of the same name beside the workspace (`<job_dir>/.workspace_setup.lock`).
pub const WORKSPACE_SETUP_LOCK_FILE: &str = ".workspace_setup.lock";

/// The locks of one jobs directory: `<base>/<job_id>/.lock` per job and `<base>/.jobs_index.lock`.
///
/// Job ids are validated before they become paths, so `..`, `a/b`, an absolute path or a NUL byte can
/// never make a lock escape the jobs directory.
#[derive(Debug, Clone)]
pub struct JobLocks {
    base: PathBuf,
}

impl JobLocks {
    /// The locks under `base` (nothing is created until a lock is first acquired).
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Self { base: base.into() }
    }

    /// The jobs directory.
    #[must_use]
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// `<base>/<job_id>/.lock`.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName) if `job_id` is empty, `.`, `..`, contains `/`
    /// or NUL, or is longer than a file name may be.
    pub fn job_lock_path(&self, job_id: &str) -> Result<PathBuf> {
        let job_id = names::validate_component(IdKind::JobId, job_id)?;
        Ok(self.base.join(job_id).join(JOB_LOCK_FILE))
    }

    /// `<base>/.jobs_index.lock`.
    #[must_use]
    pub fn index_lock_path(&self) -> PathBuf {
        self.base.join(JOBS_INDEX_LOCK_FILE)
    }

    /// An (unacquired) lock on a job's directory; its holder record says `job <job_id>`.
    ///
    /// # Errors
    /// As [`job_lock_path`](Self::job_lock_path).
    pub fn job_lock(&self, job_id: &str) -> Result<JobLock> {
        let path = self.job_lock_path(job_id)?;
        JobLock::new(path, Some(format!("job {job_id}")))
    }

    /// An (unacquired) lock on the jobs index.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName) if the base path contains a NUL byte.
    pub fn index_lock(&self) -> Result<JobLock> {
        JobLock::new(self.index_lock_path(), Some("jobs index".to_owned()))
    }

    /// Removes the job lock files (and the index lock file) that nobody holds and that were last
    /// touched more than `max_age` ago; returns the names of the jobs whose lock file was removed.
    /// See [`cleanup_stale`](super::cleanup_stale).
    ///
    /// # Errors
    /// Only if the jobs directory exists but cannot be listed; problems with single lock files are
    /// logged and skipped.
    pub fn cleanup_stale(&self, max_age: Duration) -> Result<Vec<OsString>> {
        cleanup::cleanup_stale(&self.base, max_age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_logist() {
        let jobs = JobLocks::new("/srv/jobs");
        assert_eq!(jobs.job_lock_path("job-1").unwrap(), Path::new("/srv/jobs/job-1/.lock"));
        assert_eq!(jobs.index_lock_path(), Path::new("/srv/jobs/.jobs_index.lock"));
    }

    #[test]
    fn job_ids_cannot_escape() {
        let jobs = JobLocks::new("/srv/jobs");
        for bad in ["", ".", "..", "../x", "a/b", "/etc", "a\0b"] {
            assert!(jobs.job_lock_path(bad).is_err(), "{bad:?}");
        }
    }
}
