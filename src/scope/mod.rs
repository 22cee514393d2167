//! Path-scope claims: "this loop works on these paths", shared by processes on one machine.
//!
//! The format on disk is little-loops' (`.loops/.running/<name>.lock` JSON records and the
//! `.acquire.lock` sentinel), so legacy processes and ferrolock processes see and exclude each other.
//! What ferrolock adds is a kernel lock behind every claim it makes: the record file is held with
//! `flock(LOCK_EX)` for the claim's lifetime, so a claim's liveness never depends on a pid, a crashed
//! claimant's claim is free at once, and a waiter wakes the moment a claim ends.
//!
//! ```
//! use ferrolock::scope::{ClaimRequest, Query, ScopeDir, SystemJudge};
//! use ferrolock::WaitControl;
//!
//! let dir = std::env::temp_dir().join(format!("ferrolock-scope-doc-{}", std::process::id()));
//! let running = ScopeDir::new(dir.join(".running"))?;
//! let src = vec!["/repo/src".to_owned()];
//! let request = ClaimRequest { loop_name: "fix", scope: &src, ..ClaimRequest::default() };
//! let (judge, ctl) = (&mut SystemJudge::new(), &mut WaitControl::default());
//! assert!(running.acquire("fix", &request, judge, ctl)?);
//!
//! let api = vec!["/repo/src/api".to_owned()];
//! let query = Query { scope: &api, ..Query::default() };
//! assert_eq!(running.find_conflict(&query, judge)?.map(|c| c.name), Some("fix".to_owned()));
//! assert!(running.release("fix")?);
//! assert!(running.find_conflict(&query, judge)?.is_none());
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), ferrolock::Error>(())
//! ```

mod claims;
mod entry;
mod judge;
mod manager;
mod paths;
mod record;
mod scan;
mod waiting;

pub use entry::ScopeEntry;
pub use judge::{Judge, JudgeAborted, SystemJudge, pid_alive, process_ancestry};
pub use manager::{ClaimRequest, Query, ScopeDir};
pub use paths::{is_normalized, paths_overlap, resolve_lenient, scopes_overlap};
pub use record::{MARKER_KEY, PROTOCOL_VERSION, ScopeRecord, iso_now};
pub use scan::SENTINEL_NAME;
pub use waiting::FALLBACK_RECHECK;

/// Name of little-loops' running directory (`.loops/.running`), which holds the claim records and the
/// sentinel.
pub const RUNNING_DIR: &str = ".running";
