//! Job-directory locks and run-once setup: the mechanism behind `ferrolock.JobLockManager` and
//! `ferrolock.run_once` (and logist's drop-in, `ferrolock.compat.logist`).
//!
//! * [`JobLocks`]: the layout of a jobs directory (`<base>/<job_id>/.lock`, `<base>/.jobs_index.lock`)
//!   with validated job ids, and a stale-lock cleanup that never removes a lock somebody holds.
//! * [`JobLock`]: an exclusive lock held by an *object* rather than a thread (any thread may release
//!   it, as logist's `FileLock` allows), whose [`JobLock::is_locked`] asks the kernel.
//! * [`run_once`]: a marker file plus a lock; the first caller runs the setup, everybody else waits
//!   for it and then finds the marker.

mod cleanup;
mod job_lock;
mod layout;
mod run_once;

pub use cleanup::cleanup_stale;
pub use job_lock::JobLock;
pub use layout::{JOB_LOCK_FILE, JOBS_INDEX_LOCK_FILE, JobLocks, WORKSPACE_DIR, WORKSPACE_SETUP_LOCK_FILE};
pub use run_once::{RunOnce, RunOnceError, RunOnceOutcome, default_marker_text, run_once};
