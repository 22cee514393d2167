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
    let timer = match sys::thread_timer(signo) {
        Ok(timer) => timer,
        Err(e) => {
            // EAGAIN: RLIMIT_SIGPENDING is exhausted (every timer reserves a queued signal).
            note_no_timer(&e);
            return Outcome::Unavailable;
        }
    };
    let registration = match Registration::new(ctl.cancel, || Sleeper::Timer(Arc::clone(&timer))) {
        Ok(registration) => registration,
        Err(end) => return Outcome::Ended(Err(end)),
    };
    let outcome = wait_armed(fd, op, deadline, ctl, &timer);
    if ctl.cancel.is_some() {
        // A canceller may have fired the timer after the wait's last disarm; once unregistered, none
        // can, and the timer must be quiet before the thread keeps it for its next wait.
        drop(registration);
        if let Err(e) = timer.disarm() {
            log::warn!(target: "ferrolock::wait", "could not disarm the wake timer: {e}");
        }
    }
    outcome
}

/// The wait proper. Every way out leaves the timer disarmed: a thread keeps its timer between waits,
/// and one left armed would interrupt whatever the thread does next.
fn wait_armed(
    fd: BorrowedFd<'_>,
    op: FlockOp,
    deadline: Option<Instant>,
    ctl: &mut WaitControl<'_>,
    timer: &WakeTimer,
) -> Outcome {
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
            let _ = timer.disarm();
            break Err(WaitEnd::Io(e));
        }
        let delivered_before = sys::wake_signal_deliveries();
        let locked = sys::flock(fd, op, false);
        // The one system call between winning the lock and returning that the floor does not make.
        let disarmed = timer.disarm();
        match locked {
            Ok(()) => break disarmed.map_err(WaitEnd::Io),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                if let Err(e) = disarmed {
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

#[cfg(test)]
mod tests {
    use std::fs::{File, OpenOptions};
    use std::os::fd::AsFd;
    use std::time::Duration;

    use super::*;
    use crate::lock::CancelToken;

    /// The ids of the POSIX timers that signal thread `tid`, from `/proc/self/timers`.
    fn timers_of(tid: libc::pid_t) -> Vec<String> {
        let text = std::fs::read_to_string("/proc/self/timers").expect("/proc/self/timers");
        let mut ids = Vec::new();
        let mut id = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("ID: ") {
                id = Some(rest.trim().to_owned());
            } else if line.trim() == format!("notify: signal/tid.{tid}") {
                ids.extend(id.take());
            }
        }
        ids
    }

    fn open(path: &std::path::Path) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap()
    }

    fn time_out(fd: &File, signo: libc::c_int, cancel: Option<&CancelToken>) {
        let mut ctl = WaitControl {
            cancel,
            ..WaitControl::default()
        };
        let deadline = Instant::now() + Duration::from_millis(20);
        match wait(fd.as_fd(), FlockOp::Exclusive, Some(deadline), &mut ctl, signo) {
            Outcome::Ended(Err(WaitEnd::TimedOut)) => {}
            Outcome::Ended(other) => panic!("expected a timeout, got {other:?}"),
            Outcome::Unavailable => panic!("the wake signal was unavailable"),
        }
    }

    #[test]
    fn a_thread_keeps_one_disarmed_timer_across_its_waits() {
        let Some(signo) = sys::usable_wake_signal() else {
            panic!("no real-time signal is free in the test process");
        };
        let path = std::env::temp_dir().join(format!("ferrolock-kept-timer-{}.lock", std::process::id()));
        let holder = open(&path);
        sys::flock(holder.as_fd(), FlockOp::Exclusive, true).unwrap();
        // A fresh thread, so that no other test's waits share its timer.
        let path_for_thread = path.clone();
        std::thread::spawn(move || {
            let tid = nix::unistd::gettid().as_raw();
            let waiter = open(&path_for_thread);
            assert!(timers_of(tid).is_empty());
            time_out(&waiter, signo, None);
            let first = timers_of(tid);
            assert_eq!(first.len(), 1, "one timer kept after the first wait: {first:?}");
            assert!(!sys::thread_timer(signo).unwrap().is_armed(), "kept armed after a wait");
            let token = CancelToken::new();
            time_out(&waiter, signo, Some(&token));
            token.cancel(); // after the wait: nothing is registered, nothing may fire
            assert_eq!(timers_of(tid), first, "the second wait made a timer of its own");
            assert!(!sys::thread_timer(signo).unwrap().is_armed(), "kept armed after a wait");
        })
        .join()
        .unwrap();
        let _ = std::fs::remove_file(&path);
    }
}
