//! Waiting for a lock in the kernel.
//!
//! A waiter sleeps until the kernel grants its `flock(2)`, so it wakes the moment the holder releases
//! (or dies) and uses no CPU meanwhile. Nothing here polls the lock, except as the last resort below.
//! A deadline, a cancellation or a Ctrl-C check must also be able to end that sleep, which a blocking
//! `flock` does not do by itself. Two mechanisms do it (see the README section "Waiting, timeouts,
//! threads, fork" for how to choose):
//!
//! * **signal** (the default on Linux): the waiter blocks in `flock` itself, and a POSIX timer aimed at
//!   the waiting thread delivers a real-time signal whose handler makes `flock` return `EINTR`
//!   ([`by_signal`]). One wake-up per hand-off: the fastest.
//! * **thread**: a helper thread blocks in `flock` on a duplicate of the waiter's descriptor, while the
//!   waiter sleeps on an eventfd with its deadline ([`by_thread`]). It needs no signal of its own, so it
//!   is what runs when the application has taken or ignored ours, when no real-time signal is free, when
//!   a timer cannot be created (`RLIMIT_SIGPENDING`), when `FERROLOCK_WAKE=thread` asks for it, and on a
//!   platform without thread-directed timers.
//!
//! A wait that nothing can end early (no deadline, no cancel token, no periodic check) needs neither:
//! it blocks in `flock` and only the lock ends it.

mod by_signal;
mod by_thread;
mod mechanism;

use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::libc;

pub use mechanism::{WakeMechanism, set_wake_mechanism, wake_mechanism};

use crate::sys::{self, FlockOp, WakeTimer, Wakeup};

/// How long an acquisition may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// One attempt; never sleeps.
    Try,
    /// Until the lock is free, however long that takes.
    Forever,
    /// Until this instant at the latest.
    Until(Instant),
}

impl Wait {
    /// The Python convention: no timeout, a negative or an infinite one waits forever, zero is one
    /// attempt, anything else is a deadline that many seconds from now.
    #[must_use]
    pub fn from_timeout(timeout: Option<Seconds>) -> Self {
        match timeout.map(Seconds::get) {
            None => Self::Forever,
            Some(t) if t < 0.0 => Self::Forever,
            Some(t) => Duration::try_from_secs_f64(t).map_or(Self::Forever, Self::after),
        }
    }

    /// A deadline `d` from now (one attempt if `d` is zero).
    #[must_use]
    pub fn after(d: Duration) -> Self {
        if d.is_zero() {
            return Self::Try;
        }
        Instant::now().checked_add(d).map_or(Self::Forever, Self::Until)
    }

    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Self::Until(d) => Some(d),
            Self::Try | Self::Forever => None,
        }
    }
}

/// A timeout in seconds as callers of the Python-style APIs give it: any float but NaN.
///
/// NaN has no meaning as a duration (it compares false with everything, so it used to wait forever
/// in one API and return at once in another); it is refused where a timeout enters the library.
/// Negative and infinite values are kept: each API says what they mean (see [`Wait::from_timeout`]).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Seconds(f64);

impl Seconds {
    /// `secs`, unless it is NaN.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for NaN.
    pub fn new(secs: f64) -> crate::Result<Self> {
        if secs.is_nan() {
            return Err(crate::Error::InvalidArgument {
                what: "timeout",
                value: "NaN".to_owned(),
                reason: "NaN is not a number of seconds",
            });
        }
        Ok(Self(secs))
    }

    /// A whole number of seconds (never NaN), for constants.
    #[must_use]
    pub const fn whole(secs: i32) -> Self {
        Self(secs as f64)
    }

    /// The number of seconds.
    #[must_use]
    pub const fn get(self) -> f64 {
        self.0
    }
}

/// Cancels a wait from another thread (the asyncio layer uses one per waiting task).
///
/// Cancelling is sticky: once cancelled, every wait that uses the token ends with
/// [`Error::Cancelled`](crate::Error::Cancelled) as soon as it notices, which is at once if it is
/// sleeping in the kernel.
#[derive(Default)]
pub struct CancelToken {
    state: Mutex<CancelState>,
}

#[derive(Default)]
struct CancelState {
    cancelled: bool,
    sleeper: Option<Sleeper>,
}

/// How to wake the thread sleeping on a token.
#[derive(Debug, Clone)]
enum Sleeper {
    /// Fire its timer now (and every millisecond until it notices): its `flock` returns `EINTR`.
    Timer(Arc<WakeTimer>),
    /// Write to the eventfd it sleeps on.
    Wakeup(Arc<Wakeup>),
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl CancelToken {
    /// A token that has not been cancelled.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every present and future wait that uses this token.
    pub fn cancel(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.cancelled = true;
        match &st.sleeper {
            // A failure here leaves the waiter to its deadline.
            Some(Sleeper::Timer(timer)) => {
                if let Err(e) = timer.fire_after(Duration::ZERO) {
                    log::warn!(target: "ferrolock::wait", "could not wake a cancelled waiter: {e}");
                }
            }
            Some(Sleeper::Wakeup(wakeup)) => wakeup.wake(),
            None => {}
        }
    }

    /// Whether [`cancel`](Self::cancel) was called.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).cancelled
    }

    /// Registers how to wake the sleeping thread; `false` if already cancelled.
    fn register(&self, sleeper: Sleeper) -> bool {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.cancelled {
            return false;
        }
        st.sleeper = Some(sleeper);
        true
    }

    fn unregister(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).sleeper = None;
    }
}

/// A sleeper registered with a wait's token (if it has one) until dropped.
struct Registration<'a>(Option<&'a CancelToken>);

impl<'a> Registration<'a> {
    /// `Err(Cancelled)` if the token was cancelled before the wait could register.
    fn new(token: Option<&'a CancelToken>, sleeper: impl FnOnce() -> Sleeper) -> Result<Self, WaitEnd> {
        match token {
            Some(t) if !t.register(sleeper()) => Err(WaitEnd::Cancelled),
            _ => Ok(Self(token)),
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if let Some(token) = self.0 {
            token.unregister();
        }
    }
}

/// What a waiter should do besides waiting.
#[derive(Default)]
pub struct WaitControl<'a> {
    /// Ends the wait when cancelled.
    pub cancel: Option<&'a CancelToken>,
    /// Wake at least this often to run `on_interrupt` (the Python layer sets it on the main thread, so
    /// a Ctrl-C that arrives just before the thread enters the kernel is still noticed).
    pub interrupt_every: Option<Duration>,
    /// Called after every interruption of the sleep (a signal, a periodic wake). Returning `true` ends
    /// the wait with [`Error::Interrupted`](crate::Error::Interrupted).
    pub on_interrupt: Option<&'a mut dyn FnMut() -> bool>,
}

impl fmt::Debug for WaitControl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitControl")
            .field("cancel", &self.cancel)
            .field("interrupt_every", &self.interrupt_every)
            .field("on_interrupt", &self.on_interrupt.is_some())
            .finish()
    }
}

impl WaitControl<'_> {
    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(CancelToken::is_cancelled)
    }

    /// Runs `on_interrupt`; `true` if it asks to stop.
    fn interrupted(&mut self) -> bool {
        self.on_interrupt.as_mut().is_some_and(|check| check())
    }

    /// When the sleep must end at the latest: the deadline or the next periodic check.
    fn wake_at(&self, deadline: Option<Instant>, now: Instant) -> Option<Instant> {
        let periodic = self.interrupt_every.map(|every| now + every);
        match (deadline, periodic) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Why a kernel wait ended without the lock.
#[derive(Debug)]
pub(crate) enum WaitEnd {
    TimedOut,
    Cancelled,
    Interrupted,
    Io(io::Error),
}

/// Sleeps until the kernel grants `flock(fd, op)`, `deadline` passes, the token is cancelled or
/// `on_interrupt` asks to stop.
///
/// `fd` must be a descriptor that holds no lock. When the wait ends with the lock, the lock is on the
/// open file description `fd` then refers to: with the thread mechanism that may be a different
/// description of the same file, opened with the same flags (a timed-out waiter's, whose request this
/// wait took over, so that repeated timeouts keep one helper). When it ends without the lock, the
/// description `fd` refers to must not be locked or reused by the caller: a helper thread may still be
/// waiting on it and will unlock it when its request is granted.
pub(crate) fn block_until_locked(
    fd: BorrowedFd<'_>,
    op: FlockOp,
    deadline: Option<Instant>,
    ctl: &mut WaitControl<'_>,
) -> Result<(), WaitEnd> {
    let needs_waking = deadline.is_some() || ctl.cancel.is_some() || ctl.interrupt_every.is_some();
    if !needs_waking {
        return block_plainly(fd, op, ctl);
    }
    if wake_mechanism() == WakeMechanism::Signal
        && let Some(signo) = sys::usable_wake_signal()
    {
        match by_signal::wait(fd, op, deadline, ctl, signo) {
            by_signal::Outcome::Ended(result) => return result,
            by_signal::Outcome::Unavailable => {}
        }
    }
    by_thread::wait(fd, op, deadline, ctl)
}

/// A wait only the lock can end: no timer, no helper.
fn block_plainly(fd: BorrowedFd<'_>, op: FlockOp, ctl: &mut WaitControl<'_>) -> Result<(), WaitEnd> {
    loop {
        match sys::flock(fd, op, false) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                if ctl.interrupted() {
                    return Err(WaitEnd::Interrupted);
                }
            }
            Err(e) => return Err(WaitEnd::Io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_conventions() {
        let wait = |t: f64| Wait::from_timeout(Some(Seconds::new(t).unwrap()));
        assert_eq!(Wait::from_timeout(None), Wait::Forever);
        assert_eq!(wait(-1.0), Wait::Forever);
        assert_eq!(wait(f64::NEG_INFINITY), Wait::Forever);
        assert_eq!(wait(f64::INFINITY), Wait::Forever);
        assert_eq!(wait(0.0), Wait::Try);
        assert_eq!(wait(-0.0), Wait::Try);
        assert_eq!(wait(1e300), Wait::Forever);
        assert!(matches!(wait(0.5), Wait::Until(_)));
        assert_eq!(Seconds::whole(30), Seconds::new(30.0).unwrap());
    }

    #[test]
    fn nan_is_not_a_timeout() {
        let err = Seconds::new(f64::NAN).unwrap_err();
        assert!(
            matches!(err, crate::Error::InvalidArgument { what: "timeout", .. }),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "invalid timeout NaN: NaN is not a number of seconds");
    }
}
