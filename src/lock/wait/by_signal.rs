//! The signal mechanism: the waiter blocks in `flock` itself, and a POSIX timer aimed at it
//! (`SIGEV_THREAD_ID`) delivers the wake signal at the deadline or the next periodic check, or at once
//! when a canceller fires it. The handler's return makes `flock` fail with `EINTR`. This is the
//! technique util-linux `flock -w` uses, with a real-time signal instead of `SIGALRM`.

use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use nix::libc;

use super::{Registration, Sleeper, WaitControl, WaitEnd};
use crate::sys::{self, FlockOp, UnblockedWakeSignal, WakeTimer};

/// How a signal wait ended.
pub(super) enum Outcome {
    /// With the lock (`Ok`) or without it, for good.
    Ended(Result<(), WaitEnd>),
    /// The signal cannot be relied on (no timer could be created, or the application took the signal
    /// during the wait): nothing is held, wait by other means.
    Unavailable,
}

pub(super) fn wait(
    fd: BorrowedFd<'_>,
    op: FlockOp,
    deadline: Option<Instant>,
    ctl: &mut WaitControl<'_>,
    signo: libc::c_int,
) -> Outcome {
    let _unblocked = match UnblockedWakeSignal::new(signo) {
        Ok(unblocked) => unblocked,
        Err(e) => return Outcome::Ended(Err(WaitEnd::Io(e))),
    };
    let timer = match WakeTimer::for_current_thread(signo) {
        Ok(timer) => Arc::new(timer),
        Err(e) => {
            // EAGAIN: RLIMIT_SIGPENDING is exhausted (every timer reserves a queued signal).
            note_no_timer(&e);
            return Outcome::Unavailable;
        }
    };
    let _registration = match Registration::new(ctl.cancel, || Sleeper::Timer(Arc::clone(&timer))) {
        Ok(registration) => registration,
        Err(end) => return Outcome::Ended(Err(end)),
    };
    Outcome::Ended(loop {
        if ctl.cancelled() {
            break Err(WaitEnd::Cancelled);
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break Err(WaitEnd::TimedOut);
        }
        let armed = match ctl.wake_at(deadline, now) {
            Some(at) => timer.fire_after(at.saturating_duration_since(now)),
            None => timer.disarm(),
        };
        if let Err(e) = armed {
            break Err(WaitEnd::Io(e));
        }
        let delivered_before = sys::wake_signal_deliveries();
        match sys::flock(fd, op, false) {
            Ok(()) => {
                break timer.disarm().map_err(WaitEnd::Io);
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                if let Err(e) = timer.disarm() {
                    break Err(WaitEnd::Io(e));
                }
                // Interrupted, but not by our handler: someone else's signal, or the application took
                // ours during this wait (a handler without SA_RESTART still interrupts us). Only then is
                // the disposition worth a system call.
                if sys::wake_signal_deliveries() == delivered_before && sys::usable_wake_signal().is_none() {
                    return Outcome::Unavailable;
                }
                if ctl.interrupted() {
                    break Err(WaitEnd::Interrupted);
                }
            }
            Err(e) => break Err(WaitEnd::Io(e)),
        }
    })
}

fn note_no_timer(e: &std::io::Error) {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        log::warn!(
            target: "ferrolock::wait",
            "no wake timer could be created ({e}); such waits use helper threads instead"
        );
    }
}
