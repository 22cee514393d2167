//! The coordinator: one lock API on one machine (`file://DIR`) and across machines (`postgresql://`).
//!
//! ```
//! use ferrolock::coord::{Coordinator, LockSpec};
//! use ferrolock::{LockMode, Wait};
//!
//! let dir = std::env::temp_dir().join(format!("ferrolock-coord-doc-{}", std::process::id()));
//! let coord = Coordinator::connect(&format!("file://{}", dir.display()))?;
//! let lock = coord.lock(LockSpec::new("jobs/build-42")?);
//! lock.acquire(Wait::Forever)?;
//! let token = lock.token()?; // fencing token: strictly increasing per name
//! lock.fenced_write(b"done")?; // refused once a newer holder drew a token
//! lock.release()?;
//! # assert!(token >= 1);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), ferrolock::Error>(())
//! ```
//!
//! * A [`Backend`] is what differs between the two: how a named lock is granted and waited for, how
//!   fencing tokens are drawn and checked, where run-once markers live, what `status` sees. The file
//!   backend is the flock core rooted at a directory ([`file`]); the PostgreSQL backend uses session
//!   advisory locks (`pg`, behind the `postgres` cargo feature).
//! * Everything above a backend is written once: [`CoordLock`] (re-entry per owner, exclusion between
//!   lock objects of one process, deadlock detection, fork safety) and [`run_once`].
//! * Scope claims ([`claims`], [`CoordClaim`]): an owner claims a set of paths of a project, all or
//!   none; overlapping claims conflict unless both are shared. Each backend implements
//!   [`ClaimBackend`]: the file backend is the one-machine scope core, the PostgreSQL backend rows that
//!   an exclusion constraint keeps from overlapping, tied to their owner's session.
//! * Fencing tokens are drawn lazily: the first [`CoordLock::token`] (or fenced write) of a grant
//!   increments the name's durable counter, in the holder's own session, so it fails if the lock is
//!   already lost. A lock that never writes through a fence pays no durable commit per acquisition,
//!   and holders that do draw get strictly increasing tokens in the order they held the lock.

mod backend;
mod cancel;
mod claim;
pub mod claims;
mod file;
mod file_claims;
mod file_state;
mod file_tasks;
mod lock;
mod names;
#[cfg(feature = "postgres")]
mod pg;
pub mod queue;
mod run_once;
mod state;
mod url;

pub use backend::{Backend, Fence, Grant, LockStatus, LostCallback, StatusHolder};
pub use cancel::Cancel;
pub use claim::{ClaimSpec, CoordClaim};
pub use claims::{ClaimBackend, ClaimGrant, ClaimInfo, ClaimPath};
pub use file::FileBackend;
pub use lock::{CoordLock, Coordinator, LockSpec};
pub use names::{MAX_NAME_LEN, validate_name};
#[cfg(feature = "postgres")]
pub use pg::{PgBackend, RawAdvisory};
pub use queue::{CoordQueue, QueueBackend, validate_task_id};
pub use run_once::run_once;
pub use state::{CoordState, STATE_LOCK_PREFIX, state_lock_name};
pub use url::{CoordUrl, redact};
