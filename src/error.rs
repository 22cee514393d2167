//! The one error type of the core. The Python binding maps each variant in exactly one place
//! (`src/py/errors.rs`), with an exhaustive match so a new variant forces a decision there.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::lock::Holder;

/// Everything that can go wrong in ferrolock.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed. `op` says what ferrolock was doing, `path` on which file.
    #[error("{op} {path}: {source}", path = path.display())]
    Io {
        /// What ferrolock was doing (`"open lock file"`, `"rename"`).
        op: &'static str,
        /// The file it was doing it to.
        path: PathBuf,
        /// The system call's error.
        #[source]
        source: io::Error,
    },

    /// A non-blocking attempt found the lock held (in a conflicting mode) by someone else.
    /// `holder` is the holder's record, present only when the kernel confirms that the holding process
    /// wrote it; `held_by` is the pid the kernel names as the exclusive holder, where it can be read.
    #[error("{path} is locked{}", holder_suffix(holder.as_deref(), *held_by), path = path.display())]
    WouldBlock {
        /// The lock file.
        path: PathBuf,
        /// The holder's record, when the kernel confirms its writer holds the lock.
        holder: Option<Box<Holder>>,
        /// The pid the kernel names as the exclusive holder (`/proc/locks`), where readable.
        held_by: Option<u32>,
    },

    /// The deadline passed before the lock was free. `holder` and `held_by` as for `WouldBlock`.
    #[error(
        "could not acquire the lock on {path} within {secs:.3} s{}",
        holder_suffix(holder.as_deref(), *held_by),
        path = path.display(),
        secs = waited.as_secs_f64()
    )]
    Timeout {
        /// The lock file.
        path: PathBuf,
        /// How long the wait lasted.
        waited: Duration,
        /// The holder's record, when the kernel confirms its writer holds the lock.
        holder: Option<Box<Holder>>,
        /// The pid the kernel names as the exclusive holder (`/proc/locks`), where readable.
        held_by: Option<u32>,
    },

    /// Another thread cancelled the wait through its [`CancelToken`](crate::CancelToken).
    #[error("the wait for {path} was cancelled", path = path.display())]
    Cancelled {
        /// The lock file waited for.
        path: PathBuf,
    },

    /// The caller's interrupt check asked the wait to stop (in Python: a signal handler raised, e.g.
    /// `KeyboardInterrupt`). Nothing is held.
    #[error("the wait for {path} was interrupted", path = path.display())]
    Interrupted {
        /// The lock file waited for.
        path: PathBuf,
    },

    /// The caller already holds this lock file through another lock object, so waiting would block on
    /// itself forever.
    #[error(
        "{path}: this thread already holds the lock through another lock object; waiting would deadlock",
        path = path.display()
    )]
    WouldDeadlock {
        /// The lock file.
        path: PathBuf,
    },

    /// The lock path is a symbolic link. Lock files are never followed through symlinks, so a link
    /// planted in a shared directory cannot make ferrolock open (or write) its target.
    #[error("{path} is a symbolic link; ferrolock does not follow symlinks for lock files", path = path.display())]
    Symlink {
        /// The lock path that is a symlink.
        path: PathBuf,
    },

    /// A symbolic link on the way to `path` sits in a shared directory (one that users other than its
    /// owner may write: world-writable, or sticky and group-writable) and belongs to neither the
    /// caller nor the directory's owner. ferrolock does not follow it: the kernel's
    /// `protected_symlinks` rule, applied whatever the sysctl says, to every component of the path.
    #[error(
        "{path}: not following the symbolic link {link}: it belongs to uid {owner} and sits in a directory \
         other users can write (owned by uid {dir_owner}); there ferrolock follows only links that belong \
         to you or to the directory's owner",
        path = path.display(),
        link = link.display()
    )]
    UntrustedLink {
        /// The path being reached.
        path: PathBuf,
        /// The symlink not followed.
        link: PathBuf,
        /// The uid owning the symlink.
        owner: u32,
        /// The uid owning the shared directory the symlink sits in.
        dir_owner: u32,
    },

    /// `path` belongs to another user and sits in a shared directory, where its owner may delete or
    /// replace it at any moment; `why` says what that would break. Files of the caller and of the
    /// directory's owner are trusted.
    #[error(
        "{path} belongs to uid {owner} and sits in a directory other users can write (owned by uid \
         {dir_owner}): {why}; there ferrolock uses only files that belong to you or to the directory's owner",
        path = path.display()
    )]
    UntrustedFile {
        /// The file refused.
        path: PathBuf,
        /// The uid owning it.
        owner: u32,
        /// The uid owning the shared directory it sits in.
        dir_owner: u32,
        /// What trusting it would break.
        why: &'static str,
    },

    /// The owner is already inside an edit of this state file: a nested edit would re-enter the lock,
    /// and the outer edit's write would then silently undo the inner one's.
    #[error(
        "{path}: this thread is already editing this StateFile; a nested edit's write would be overwritten \
         by the outer one. Finish the outer edit first.",
        path = path.display()
    )]
    NestedEdit {
        /// The state file.
        path: PathBuf,
    },

    /// The lock path exists but is not a regular file (a directory, FIFO, socket or device).
    #[error("{path} is a {kind}, not a regular file", path = path.display())]
    NotRegularFile {
        /// The path.
        path: PathBuf,
        /// What it is instead (`"directory"`, `"FIFO"`, ...).
        kind: &'static str,
    },

    /// An identifier that becomes a path component would escape its directory or is unusable.
    #[error("invalid {what} {name:?}: {reason}")]
    InvalidName {
        /// What kind of identifier (`"job id"`, `"task id"`).
        what: &'static str,
        /// The identifier as given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },

    /// A file that must hold a known format does not parse. Nothing was overwritten.
    #[error("{path} is corrupt: {reason}", path = path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What does not parse.
        reason: String,
    },

    /// An argument has no meaning (a NaN timeout, a file mode with bits beyond `0o777`). Refused
    /// before anything was touched.
    #[error("invalid {what} {value}: {reason}")]
    InvalidArgument {
        /// Which argument (`"timeout"`, `"mode"`).
        what: &'static str,
        /// The value as given.
        value: String,
        /// Why it has no meaning.
        reason: &'static str,
    },

    /// One owner re-entered a lock `u32::MAX` times without releasing it; one more would wrap the
    /// count, and the release that brings it back to zero would come far too early.
    #[error("{path}: re-entered {} times without a release; the re-entry count would overflow", u32::MAX, path = path.display())]
    ReentryOverflow {
        /// The lock file.
        path: PathBuf,
    },

    /// A coordinator lock is no longer held: its session ended (lease expired, server restart,
    /// network failure) or it was never held by the caller. Whatever it protected may have a new owner.
    #[error("the lock {name:?} is lost: {reason}")]
    LockLost {
        /// The coordinator lock's name.
        name: String,
        /// How it was lost.
        reason: String,
    },

    /// A write fenced by `token` was refused: the lock `name` has since been granted to a newer holder.
    #[error("stale fencing token {token} for {name:?}: the lock has since been granted with token {current}")]
    StaleToken {
        /// The coordinator lock's name.
        name: String,
        /// The token the refused write carried.
        token: u64,
        /// The newest token drawn for the name.
        current: u64,
    },

    /// The coordinator's backend failed or refused: a bad URL, a connection or server error, a missing
    /// schema the role may not create, a connection pooler that would break session locks.
    #[error("{op}: {message}")]
    Coordinator {
        /// What the coordinator was doing.
        op: &'static str,
        /// The backend's error.
        message: String,
    },
}

/// `Result` with the core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The file the error is about, where there is one.
    #[must_use]
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Self::Io { path, .. }
            | Self::WouldBlock { path, .. }
            | Self::Timeout { path, .. }
            | Self::Cancelled { path }
            | Self::Interrupted { path }
            | Self::WouldDeadlock { path }
            | Self::Symlink { path }
            | Self::NotRegularFile { path, .. }
            | Self::Corrupt { path, .. }
            | Self::UntrustedLink { path, .. }
            | Self::UntrustedFile { path, .. }
            | Self::NestedEdit { path }
            | Self::ReentryOverflow { path } => Some(path),
            Self::InvalidName { .. }
            | Self::InvalidArgument { .. }
            | Self::LockLost { .. }
            | Self::StaleToken { .. }
            | Self::Coordinator { .. } => None,
        }
    }

    /// True for the two "someone else has it" outcomes: [`Error::WouldBlock`] and [`Error::Timeout`].
    #[must_use]
    pub fn is_contention(&self) -> bool {
        matches!(self, Self::WouldBlock { .. } | Self::Timeout { .. })
    }
}

/// ` (held by pid 4121 on build-3 since ... (purpose))` from a confirmed record, else the kernel's pid
/// alone: text a record holds is shown only when its writer holds the lock.
fn holder_suffix(holder: Option<&Holder>, held_by: Option<u32>) -> String {
    match (holder, held_by) {
        (Some(h), _) => format!(" (held by {})", h.describe()),
        (None, Some(pid)) => format!(" (held by pid {pid}, which wrote no holder record)"),
        (None, None) => String::new(),
    }
}
