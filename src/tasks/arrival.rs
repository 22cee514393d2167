//! Waiting for a queue's state file to change (a task added or released), in the kernel: an inotify
//! watch on its directory wakes the waiter when the file is replaced. Where inotify is unavailable the
//! waiter looks again every [`FALLBACK_RECHECK`].

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::libc;

use crate::error::{Error, Result};
use crate::lock::{Wait, WaitControl};
use crate::sys::{self, DirWatch};

/// How often a waiter without an inotify watch looks at the queue again.
pub const FALLBACK_RECHECK: Duration = Duration::from_millis(250);

/// A watch on a state file's directory, set up before the state is read so that no change after the
/// read is missed.
pub(crate) struct QueueWatch {
    watch: Option<DirWatch>,
}

impl QueueWatch {
    pub(crate) fn new(state: &Path) -> Self {
        let dir = parent(state);
        let watch = DirWatch::new(dir)
            .inspect_err(|e| log::debug!(target: "ferrolock::tasks", "no inotify watch on {}: {e}", dir.display()))
            .ok();
        Self { watch }
    }

    /// Sleeps until the state file changes (`true`) or `wait` runs out (`false`; at once for
    /// [`Wait::Try`]).
    pub(crate) fn wait_for_change(&self, state: &Path, wait: Wait, ctl: &mut WaitControl<'_>) -> Result<bool> {
        let deadline = match wait {
            Wait::Try => return Ok(false),
            Wait::Forever => None,
            Wait::Until(at) => Some(at),
        };
        let name = state.file_name().map(OsStrExt::as_bytes).unwrap_or_default();
        let recheck_at = self.watch.is_none().then(|| Instant::now() + FALLBACK_RECHECK);
        loop {
            if ctl.cancel.is_some_and(crate::CancelToken::is_cancelled) {
                return Err(Error::Cancelled { path: state.into() });
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(false);
            }
            if recheck_at.is_some_and(|r| now >= r) {
                return Ok(true);
            }
            // A cancellation has no descriptor to wake this poll: look at the token every so often.
            let wake_at = [deadline, recheck_at, ctl.interrupt_every.map(|every| now + every)]
                .into_iter()
                .flatten()
                .chain(ctl.cancel.map(|_| now + FALLBACK_RECHECK))
                .min();
            let fds: Vec<_> = self.watch.iter().map(DirWatch::as_fd).collect();
            match sys::poll_readable(&fds, wake_at.map(|at| at.saturating_duration_since(now))) {
                Ok(ready) if !ready.is_empty() => {
                    if let Some(watch) = &self.watch {
                        let events = watch
                            .drain(name)
                            .map_err(|e| Error::io("read inotify events", parent(state), e))?;
                        if events.named || events.overflow {
                            return Ok(true);
                        }
                    }
                }
                Ok(_) => {
                    if interrupted(ctl) {
                        return Err(Error::Interrupted { path: state.into() });
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                    if interrupted(ctl) {
                        return Err(Error::Interrupted { path: state.into() });
                    }
                }
                Err(e) => return Err(Error::io("wait for the task queue", state, e)),
            }
        }
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn interrupted(ctl: &mut WaitControl<'_>) -> bool {
    ctl.on_interrupt.as_mut().is_some_and(|check| check())
}
