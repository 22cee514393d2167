//! Waiting for a lock in the kernel.
//!
//! A waiter sleeps inside a blocking `flock(2)`, so it wakes the moment the holder releases (or dies)
//! and uses no CPU meanwhile. Deadlines, cancellation and signal checks interrupt that sleep with a
//! thread-directed timer signal (see [`crate::sys::WakeTimer`]); nothing here polls the lock.

use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::libc;

use crate::sys::{self, FlockOp, UnblockedWakeSignal, WakeTimer};

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
    sleeper: Option<Arc<WakeTimer>>,
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
        if let Some(timer) = &st.sleeper {
            // Fire the sleeper's timer now (and every millisecond until it notices): its flock returns
            // EINTR and the loop sees the flag. A failure here leaves the waiter to its deadline.
            if let Err(e) = timer.fire_after(Duration::ZERO) {
                log::warn!(target: "ferrolock::wait", "could not wake a cancelled waiter: {e}");
            }
        }
    }

    /// Whether [`cancel`](Self::cancel) was called.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).cancelled
    }

    /// Registers the sleeping thread's timer; `false` if already cancelled.
    fn register(&self, timer: &Arc<WakeTimer>) -> bool {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.cancelled {
            return false;
        }
        st.sleeper = Some(Arc::clone(timer));
        true
    }

    fn unregister(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).sleeper = None;
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

/// Why a kernel wait ended without the lock.
#[derive(Debug)]
pub(crate) enum WaitEnd {
    TimedOut,
    Cancelled,
    Interrupted,
    Io(io::Error),
}

/// Sleeps in a blocking `flock(fd, op)` until it succeeds, `deadline` passes, the token is cancelled
/// or `on_interrupt` asks to stop.
pub(crate) fn block_until_locked(
    fd: BorrowedFd<'_>,
    op: FlockOp,
    deadline: Option<Instant>,
    ctl: &mut WaitControl<'_>,
) -> Result<(), WaitEnd> {
    let signo = sys::wake_signal().map_err(WaitEnd::Io)?;
    let _unblocked = UnblockedWakeSignal::new(signo).map_err(WaitEnd::Io)?;
    let timer = Arc::new(WakeTimer::for_current_thread(signo).map_err(WaitEnd::Io)?);
    let _registration = match ctl.cancel {
        Some(token) if !token.register(&timer) => return Err(WaitEnd::Cancelled),
        Some(token) => Some(Registration(token)),
        None => None,
    };
    loop {
        if ctl.cancel.is_some_and(CancelToken::is_cancelled) {
            return Err(WaitEnd::Cancelled);
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Err(WaitEnd::TimedOut);
        }
        let periodic = ctl.interrupt_every.map(|every| now + every);
        let wake_at = match (deadline, periodic) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match wake_at {
            Some(at) => timer.fire_after(at.saturating_duration_since(now)),
            None => timer.disarm(),
        }
        .map_err(WaitEnd::Io)?;
        match sys::flock(fd, op, false) {
            Ok(()) => {
                timer.disarm().map_err(WaitEnd::Io)?;
                return Ok(());
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                timer.disarm().map_err(WaitEnd::Io)?;
                if let Some(check) = ctl.on_interrupt.as_mut()
                    && check()
                {
                    return Err(WaitEnd::Interrupted);
                }
            }
            Err(e) => return Err(WaitEnd::Io(e)),
        }
    }
}

struct Registration<'a>(&'a CancelToken);

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.0.unregister();
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
