//! [`ScopeDir`]: the claims of one running directory (little-loops' `.loops/.running`).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::claims::{self, DirKey};
use super::entry::ScopeEntry;
use super::judge::{Judge, JudgeAborted};
use super::paths::is_normalized;
use super::record::{ScopeRecord, iso_now};
use super::scan::{self, Found, SENTINEL_NAME};
use crate::error::{Error, Result};
use crate::lock::{FileLock, LockOptions, Owner, Wait, WaitControl};
use crate::names::{self, IdKind};

/// Outside `acquire`, removing a stale record needs the sentinel; waiting longer than this for it
/// is not worth it (the record is ignored anyway and removed by a later scan).
const CLEANUP_SENTINEL_WAIT: Duration = Duration::from_millis(100);

/// What a claim looks like on disk. `pid` and `started_at` default to this process and now.
#[derive(Debug, Clone, Default)]
pub struct ClaimRequest<'a> {
    /// The loop's name (recorded; the singleton rule compares it).
    pub loop_name: &'a str,
    /// The normalised paths to claim.
    pub scope: &'a [String],
    /// The pid to record (default: this process).
    pub pid: Option<i64>,
    /// The start time to record (default: now, in Python's `isoformat()` form).
    pub started_at: Option<&'a str>,
    /// Conflict with every other singleton claim of the same loop name.
    pub singleton: bool,
    /// A shared claim: it conflicts only with exclusive claims that overlap it.
    pub shared: bool,
}

/// What a caller wants to run on: its normalised scope and, for the singleton rule, its name.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<'a> {
    /// The normalised paths the caller wants.
    pub scope: &'a [String],
    /// The caller's loop name.
    pub caller_loop_name: Option<&'a str>,
    /// Whether the caller is a singleton loop.
    pub caller_singleton: bool,
    /// Whether the caller wants the scope shared (then overlapping shared claims do not conflict).
    pub shared: bool,
}

/// The scope claims kept in one running directory, shared with legacy little-loops processes.
///
/// * A claim is `<dir>/<name>.lock` (JSON, see [`ScopeRecord`]) held with `flock(LOCK_EX)` by its
///   claimant for its lifetime; it is published by rename, so it is never seen partial or unheld.
/// * Check-and-claim runs under `flock` on `<dir>/.acquire.lock`, the sentinel legacy processes
///   take too, so both kinds exclude each other.
/// * Liveness: a held record is live; an unheld record carrying ferrolock's marker is dead (its
///   claimant crashed); an unheld record without it was written by a legacy process and is judged
///   by its pid through the [`Judge`].
/// * Stale records are removed only under the sentinel, after checking that the file is still the
///   one judged (same inode, same bytes) and unheld, so a live claim is never deleted.
#[derive(Debug)]
pub struct ScopeDir {
    running_dir: PathBuf,
    sentinel: FileLock,
}

impl ScopeDir {
    /// The claims in `running_dir`. Nothing is created until the first [`acquire`](Self::acquire).
    pub fn new(running_dir: impl Into<PathBuf>) -> Result<Self> {
        let running_dir = running_dir.into();
        let options = LockOptions {
            file_mode: 0o666,     // as the legacy `open(path, "w")`: the umask decides
            holder_record: false, // the legacy code truncates the sentinel on every open anyway
            ..LockOptions::default()
        };
        let sentinel = FileLock::new(running_dir.join(SENTINEL_NAME), &options)?;
        Ok(Self { running_dir, sentinel })
    }

    /// The running directory.
    #[must_use]
    pub fn running_dir(&self) -> &Path {
        &self.running_dir
    }

    /// Claims `scope` under the record name `name` (`instance_id or loop_name`; may be nested,
    /// `group/loop`). `Ok(false)` if a live claim conflicts (overlapping scope, or the singleton
    /// rule) or a live claim already has this record name. The sentinel wait is in the kernel and
    /// ends early only through `ctl`.
    pub fn acquire(
        &self,
        name: &str,
        request: &ClaimRequest<'_>,
        judge: &mut dyn Judge,
        ctl: &mut WaitControl<'_>,
    ) -> Result<bool> {
        names::validate_relative(IdKind::LoopName, name)?;
        // Created under the link rule: never through a link another user planted on the way.
        crate::sys::Dir::open(&self.running_dir, true)?;
        let dir = claims::dir_key(&self.running_dir).map_err(|e| Error::io("stat", &self.running_dir, e))?;
        let owner = Owner::current_thread();
        self.sentinel.acquire_as(owner, Wait::Forever, ctl)?;
        let result = self.acquire_under_sentinel(dir, name, request, judge);
        let unlocked = self.sentinel.release_as(owner, false);
        let claimed = result?;
        unlocked?;
        Ok(claimed)
    }

    fn acquire_under_sentinel(
        &self,
        dir: DirKey,
        name: &str,
        request: &ClaimRequest<'_>,
        judge: &mut dyn Judge,
    ) -> Result<bool> {
        let mut session = Session::new(self, judge, true);
        let query = Query {
            scope: request.scope,
            caller_loop_name: Some(request.loop_name),
            caller_singleton: request.singleton,
            shared: request.shared,
        };
        if let Some(conflict) = session.find_conflict(&query)? {
            log::debug!(target: "ferrolock::scope", "{name}: conflicts with {}", conflict.name);
            return Ok(false);
        }
        let path = self.record_path(name);
        if let Some(found) = scan::read_record(&path, name)? {
            if found.held {
                // A live claim, even if its content is damaged: never replace a held record.
                log::debug!(target: "ferrolock::scope", "{name}: a live claim has this name");
                return Ok(false);
            }
            match session.classify(found)? {
                Verdict::Live(_) => {
                    log::debug!(target: "ferrolock::scope", "{name}: a live claim has this name");
                    return Ok(false);
                }
                Verdict::Stale(_) => {} // replaced by the rename below
                Verdict::Unreadable(found) => log::warn!(
                    target: "ferrolock::scope",
                    "replacing {}, which is not a claim record ({})",
                    found.path.display(),
                    found.record.err().unwrap_or_default()
                ),
            }
        }
        let record = ScopeRecord {
            loop_name: request.loop_name.to_owned(),
            scope: request.scope.to_vec(),
            pid: request.pid.unwrap_or_else(|| i64::from(std::process::id())),
            started_at: request.started_at.map_or_else(iso_now, str::to_owned),
            singleton: request.singleton,
            shared: request.shared,
            marked: true,
        };
        claims::create(dir, name, &path, &record)?;
        Ok(true)
    }

    /// Releases the claim `name` if this process holds it (`true`); otherwise does nothing (`false`):
    /// a process can never remove another's claim.
    pub fn release(&self, name: &str) -> Result<bool> {
        names::validate_relative(IdKind::LoopName, name)?;
        match claims::dir_key(&self.running_dir) {
            Ok(dir) => claims::release(dir, name),
            Err(_) => Ok(false),
        }
    }

    /// True if this process holds the claim `name`.
    pub fn holds(&self, name: &str) -> Result<bool> {
        names::validate_relative(IdKind::LoopName, name)?;
        Ok(claims::dir_key(&self.running_dir).is_ok_and(|dir| claims::holds(dir, name)))
    }

    /// The first live claim that conflicts with `query`, in directory order; stale records met on
    /// the way are removed (when the sentinel is free).
    pub fn find_conflict(&self, query: &Query<'_>, judge: &mut dyn Judge) -> Result<Option<ScopeEntry>> {
        Session::new(self, judge, false).find_conflict(query)
    }

    /// Every live claim; stale records are removed (when the sentinel is free).
    pub fn list(&self, judge: &mut dyn Judge) -> Result<Vec<ScopeEntry>> {
        let mut session = Session::new(self, judge, false);
        let mut live = Vec::new();
        scan::visit(&self.running_dir, &mut |found| {
            match session.classify(found)? {
                Verdict::Live(entry) => live.push(entry),
                Verdict::Stale(found) => session.remove_stale(&found),
                Verdict::Unreadable(_) => {}
            }
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(live)
    }

    pub(crate) fn record_path(&self, name: &str) -> PathBuf {
        self.running_dir.join(format!("{name}.lock"))
    }

    pub(crate) fn aborted(&self) -> Error {
        Error::Interrupted {
            path: self.running_dir.clone(),
        }
    }
}

/// How a scan judged one record.
pub(crate) enum Verdict {
    Live(ScopeEntry),
    Stale(Found),
    Unreadable(Found),
}

/// One scan's worth of judging, holding the sentinel when it has to.
struct Session<'a, 'j> {
    dir: &'a ScopeDir,
    judge: &'j mut dyn Judge,
    sentinel: Sentinel,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sentinel {
    /// Held by the caller (`acquire`) since before the scan.
    Held,
    /// Not needed yet.
    Idle,
    /// Taken by this session; released on drop.
    Taken,
    /// Could not be had in time: stale records are left for a later scan.
    Unavailable,
}

impl<'a, 'j> Session<'a, 'j> {
    fn new(dir: &'a ScopeDir, judge: &'j mut dyn Judge, sentinel_held: bool) -> Self {
        let sentinel = if sentinel_held { Sentinel::Held } else { Sentinel::Idle };
        Self { dir, judge, sentinel }
    }

    fn find_conflict(&mut self, query: &Query<'_>) -> Result<Option<ScopeEntry>> {
        let mut conflict = None;
        let running_dir = self.dir.running_dir.clone();
        scan::visit(&running_dir, &mut |found| {
            match self.classify(found)? {
                Verdict::Live(entry) => {
                    if self.conflicts(query, &entry)? {
                        conflict = Some(entry);
                        return Ok(ControlFlow::Break(()));
                    }
                }
                Verdict::Stale(found) => self.remove_stale(&found),
                Verdict::Unreadable(_) => {}
            }
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(conflict)
    }

    fn classify(&mut self, found: Found) -> Result<Verdict> {
        let found = match &found.record {
            Err(_) if !found.held && self.sentinel != Sentinel::Held && self.sentinel_now() => {
                // A legacy writer truncates and rewrites records in place under the sentinel, so an
                // unparseable record read outside it may be half-written: read it again under it.
                match scan::read_record(&found.path, &found.name)? {
                    Some(again) => again,
                    None => return Ok(Verdict::Unreadable(found)),
                }
            }
            _ => found,
        };
        let record = match &found.record {
            Ok(record) => record.clone(),
            Err(reason) => {
                log::debug!(target: "ferrolock::scope", "skipping {}: {reason}", found.path.display());
                return Ok(Verdict::Unreadable(found));
            }
        };
        let live = if found.held {
            true
        } else if record.marked {
            false // a ferrolock claim whose holder is gone, whatever its pid says now
        } else {
            self.judge
                .pid_alive(record.pid)
                .map_err(|JudgeAborted| self.dir.aborted())?
        };
        Ok(if live {
            Verdict::Live(ScopeEntry::new(found, record))
        } else {
            Verdict::Stale(found)
        })
    }

    fn conflicts(&mut self, query: &Query<'_>, entry: &ScopeEntry) -> Result<bool> {
        let abort = |JudgeAborted| self.dir.aborted();
        let mut lock_scope = Vec::with_capacity(entry.record.scope.len());
        for path in &entry.record.scope {
            lock_scope.push(if is_normalized(path) {
                path.clone()
            } else {
                self.judge.normalize(path).map_err(abort)?
            });
        }
        let overlap = !(query.shared && entry.record.shared)
            && self.judge.scopes_overlap(query.scope, &lock_scope).map_err(abort)?;
        let same_singleton = query.caller_singleton
            && entry.record.singleton
            && query.caller_loop_name == Some(entry.record.loop_name.as_str());
        if !overlap && !same_singleton {
            return Ok(false);
        }
        // A claim of one of our ancestors is the parent loop that started us: not a conflict.
        if self.judge.is_ancestor(entry.record.pid).map_err(abort)? {
            log::debug!(target: "ferrolock::scope", "ignoring ancestor claim {} (pid {})", entry.name, entry.record.pid);
            return Ok(false);
        }
        Ok(true)
    }

    /// Holds the sentinel from now on if it can be had (at once, or within a short wait).
    fn sentinel_now(&mut self) -> bool {
        if self.sentinel == Sentinel::Idle {
            self.sentinel = match self.dir.sentinel.acquire(Wait::after(CLEANUP_SENTINEL_WAIT)) {
                Ok(_) => Sentinel::Taken,
                Err(e) => {
                    log::debug!(target: "ferrolock::scope", "sentinel unavailable for cleanup: {e}");
                    Sentinel::Unavailable
                }
            };
        }
        matches!(self.sentinel, Sentinel::Held | Sentinel::Taken)
    }

    /// Removes a stale record under the sentinel, if it is still exactly what was judged and still
    /// unheld. Legacy writers only write under the sentinel and ferrolock claims are published under
    /// it, so nothing can revive the file between that check and the unlink.
    fn remove_stale(&mut self, found: &Found) {
        if !self.sentinel_now() {
            return;
        }
        match scan::read_record(&found.path, &found.name) {
            Ok(Some(now)) if now.dev == found.dev && now.ino == found.ino && !now.held && now.bytes == found.bytes => {}
            _ => return,
        }
        match claims::unlink_if_same(&found.path, found.dev, found.ino) {
            Ok(()) => log::info!(target: "ferrolock::scope", "removed stale claim record {}", found.path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Cleanup is a courtesy: a record we may not remove is still not a live claim.
            Err(e) => log::warn!(
                target: "ferrolock::scope",
                "could not remove stale claim record {}: {e}",
                found.path.display()
            ),
        }
    }
}

impl Drop for Session<'_, '_> {
    fn drop(&mut self) {
        if self.sentinel == Sentinel::Taken {
            let _ = self.dir.sentinel.release();
        }
    }
}
