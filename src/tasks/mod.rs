//! Atomic task claims: a queue of tasks, each held by at most one claimant at a time.
//!
//! The operations are the same for every backend: [`claim`](LocalQueue::claim) a given task,
//! [`claim_many`](LocalQueue::claim_many) (a batch, not all-or-nothing),
//! [`claim_next`](LocalQueue::claim_next) (the first free task, waiting for one to appear),
//! [`release`](LocalQueue::release), and reading who holds what. Their outcomes
//! ([`ClaimOutcome`], [`ReleaseOutcome`], [`Lookup`]) name what happened without reference to files,
//! so that a coordinator backend (a database shared by several machines) can report the same.
//!
//! [`LocalQueue`] is the one-machine backend: a state file updated under its lock plus a lock file per
//! task, with a lock order that cannot deadlock and a tidy-up that keeps lock files from piling up (its
//! module docs give the protocol). How the state file stores tasks is a [`TaskFormat`]: ferrolock's
//! own is [`NativeFormat`]; `ferrolock.compat.todo2` supplies todo2's `state.todo2.json`.
//!
//! On one machine a claim is a record in the state file: it stays until it is released, whatever
//! happens to the claimant ([`release`](LocalQueue::release) with `force` returns a dead claimant's
//! task to the queue).
//!
//! ```
//! use ferrolock::tasks::{ClaimOutcome, LocalQueue, NativeFormat, QueueLayout, QueueOptions};
//! use ferrolock::{Wait, WaitControl};
//!
//! let dir = std::env::temp_dir().join(format!("ferrolock-tasks-doc-{}", std::process::id()));
//! let queue = LocalQueue::new(QueueLayout::beside(dir.join("tasks.json")), QueueOptions::default())?;
//! let mut format = NativeFormat;
//! let mut ctl = WaitControl::default();
//! queue.modify(&mut format, Wait::Forever, &mut ctl, |_, doc| {
//!     let mut doc = doc.unwrap_or_default();
//!     doc.add(["build", "test"]);
//!     Ok((Some(doc), ()))
//! })?;
//! let claimed = queue.claim(&mut format, "build", "agent-1", Wait::Forever, &mut ctl)?;
//! assert!(claimed.is_claimed());
//! let next = queue.claim_next(&mut format, "agent-2", Wait::Forever, false, &mut ctl)?;
//! assert_eq!(next.as_deref(), Some("test"));
//! assert!(matches!(
//!     queue.claim(&mut format, "build", "agent-2", Wait::Forever, &mut ctl)?,
//!     ClaimOutcome::Taken(owner) if owner.by == "agent-1"
//! ));
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), ferrolock::Error>(())
//! ```

mod arrival;
mod local;
mod model;
mod native;

pub use arrival::FALLBACK_RECHECK;
pub use local::{LocalQueue, QueueLayout, QueueOptions};
pub use model::{ClaimOutcome, Entry, Lookup, ReleaseOutcome, TaskFormat};
pub use native::{ClaimRecord, NATIVE_VERSION, NativeDoc, NativeFormat};
