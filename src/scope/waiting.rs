//! Waiting for a scope to become free, in the kernel.
//!
//! The legacy `wait_for_scope` re-scanned once a second. Here the waiter sleeps on the conflicting
//! claim itself and re-scans only when it changes:
//!
//! * a ferrolock claim is held with `flock(LOCK_EX)`, so the waiter blocks in `flock(LOCK_SH)` on the
//!   record: the kernel wakes it when the claimant releases or dies;
//! * a legacy record (no lock) ends when its process exits or when the file is removed or rewritten:
//!   the waiter polls a `pidfd` and an inotify watch on the record's directory.
//!
//! Where neither kernel facility is available (or the pid is gone while the judge still says the
//! process lives, e.g. a zombie), it falls back to re-checking every [`FALLBACK_RECHECK`].

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::libc;

use super::entry::ScopeEntry;
use super::judge::Judge;
use super::manager::{Query, ScopeDir};
use super::scan;
use crate::error::{Error, Result};
use crate::lock::{WaitControl, WaitEnd, block_until_locked};
use crate::sys::{self, DirWatch, FlockOp};

/// How often a legacy record is re-checked when no kernel event can announce its end.
pub const FALLBACK_RECHECK: Duration = Duration::from_millis(250);

/// Why a wait on one claim ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Woke {
    /// The claim may have ended: scan again.
    Changed,
    /// The recorded process exited.
    PidExited,
    /// The deadline passed.
    TimedOut,
}

impl ScopeDir {
    /// Waits until no live claim conflicts with `query` (`true`), or until `wait` runs out
    /// (`false`; with [`Wait::Try`](crate::Wait::Try) this is a single check). The wait ends within
    /// microseconds of the conflicting claim's release or its holder's death; `ctl` can interrupt it.
    pub fn wait_for_scope(
        &self,
        query: &Query<'_>,
        wait: crate::Wait,
        judge: &mut dyn Judge,
        ctl: &mut WaitControl<'_>,
    ) -> Result<bool> {
        let deadline = wait.deadline();
        let mut pid_exited: Option<(u64, u64, i64)> = None;
        let mut pid_wait_useless = HashSet::new();
        loop {
            let Some(entry) = self.find_conflict(query, judge)? else {
                return Ok(true);
            };
            if wait == crate::Wait::Try || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            if pid_exited == Some(entry.key()) {
                // The process exited but the judge still calls it alive (a zombie, or a patched
                // `os.kill`): its pidfd would wake us at once forever.
                pid_wait_useless.insert(entry.key());
            }
            let woke = if entry.held {
                wait_unlocked(&entry, deadline, ctl)?
            } else {
                let use_pidfd = !pid_wait_useless.contains(&entry.key());
                wait_legacy(&entry, deadline, ctl, use_pidfd)?
            };
            pid_exited = (woke == Woke::PidExited).then(|| entry.key());
            log::trace!(target: "ferrolock::scope", "wait on {} ended: {woke:?}", entry.name);
        }
    }
}

/// Blocks in a shared flock on the claim's record until its holder lets go.
fn wait_unlocked(entry: &ScopeEntry, deadline: Option<Instant>, ctl: &mut WaitControl<'_>) -> Result<Woke> {
    let file = match scan::open_record(&entry.path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Woke::Changed),
        Err(e) => return Err(Error::io("open claim record", &entry.path, e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| Error::io("stat claim record", &entry.path, e))?;
    if (meta.dev(), meta.ino()) != (entry.dev, entry.ino) {
        return Ok(Woke::Changed);
    }
    match block_until_locked(file.as_fd(), FlockOp::Shared, deadline, ctl) {
        Ok(()) => {
            let _ = sys::flock(file.as_fd(), FlockOp::Unlock, false);
            Ok(Woke::Changed)
        }
        Err(WaitEnd::TimedOut) => Ok(Woke::TimedOut),
        Err(end) => Err(wait_error(&entry.path, end)),
    }
}

/// Sleeps until a legacy record's process exits or its file changes.
fn wait_legacy(
    entry: &ScopeEntry,
    deadline: Option<Instant>,
    ctl: &mut WaitControl<'_>,
    use_pidfd: bool,
) -> Result<Woke> {
    let dir = entry.path.parent().unwrap_or(Path::new("."));
    let file_name = entry.path.file_name().map(OsStrExt::as_bytes).unwrap_or_default();
    let watch = DirWatch::new(dir)
        .inspect_err(|e| log::debug!(target: "ferrolock::scope", "no inotify watch on {}: {e}", dir.display()))
        .ok();
    // The watch exists from here on; anything that changed before it was set up is seen now.
    match scan::read_record(&entry.path, &entry.name) {
        Ok(Some(now)) if now.dev == entry.dev && now.ino == entry.ino && now.bytes == entry.bytes && !now.held => {}
        _ => return Ok(Woke::Changed),
    }
    let pidfd: Option<OwnedFd> = if use_pidfd {
        sys::pidfd_open(entry.record.pid)
            .inspect_err(|e| log::debug!(target: "ferrolock::scope", "no pidfd for {}: {e}", entry.record.pid))
            .ok()
    } else {
        None
    };
    let recheck_at = (watch.is_none() || pidfd.is_none()).then(|| Instant::now() + FALLBACK_RECHECK);
    loop {
        if ctl.cancel.is_some_and(crate::CancelToken::is_cancelled) {
            return Err(Error::Cancelled {
                path: entry.path.clone(),
            });
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Ok(Woke::TimedOut);
        }
        if recheck_at.is_some_and(|r| now >= r) {
            return Ok(Woke::Changed);
        }
        let wake_at = [deadline, recheck_at, ctl.interrupt_every.map(|every| now + every)]
            .into_iter()
            .flatten()
            .min();
        let mut fds: Vec<BorrowedFd<'_>> = Vec::with_capacity(2);
        if let Some(w) = &watch {
            fds.push(w.as_fd());
        }
        if let Some(p) = &pidfd {
            fds.push(p.as_fd());
        }
        let ready = match sys::poll_readable(&fds, wake_at.map(|at| at.saturating_duration_since(now))) {
            Ok(ready) => ready,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                if interrupted(ctl) {
                    return Err(Error::Interrupted {
                        path: entry.path.clone(),
                    });
                }
                continue;
            }
            Err(e) => return Err(Error::io("wait for claim", &entry.path, e)),
        };
        let pid_index = usize::from(watch.is_some());
        if pidfd.is_some() && ready.contains(&pid_index) {
            return Ok(Woke::PidExited);
        }
        if let Some(w) = watch.as_ref().filter(|_| ready.contains(&0)) {
            let events = w
                .drain(file_name)
                .map_err(|e| Error::io("read inotify events", dir, e))?;
            if events.named || events.overflow {
                return Ok(Woke::Changed);
            }
        }
        if ready.is_empty() && interrupted(ctl) {
            return Err(Error::Interrupted {
                path: entry.path.clone(),
            });
        }
    }
}

fn interrupted(ctl: &mut WaitControl<'_>) -> bool {
    ctl.on_interrupt.as_mut().is_some_and(|check| check())
}

fn wait_error(path: &Path, end: WaitEnd) -> Error {
    let path = path.to_path_buf();
    match end {
        WaitEnd::Cancelled => Error::Cancelled { path },
        WaitEnd::Interrupted | WaitEnd::TimedOut => Error::Interrupted { path },
        WaitEnd::Io(e) => Error::io("wait for claim", path, e),
    }
}
