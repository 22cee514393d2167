//! The wake signal: a real-time signal with a handler installed *without* `SA_RESTART`, so that its
//! delivery makes a blocking `flock(2)` in the target thread return `EINTR`.
//!
//! A real-time signal (rather than `SIGALRM`, which util-linux uses) keeps clear of handlers that
//! applications and Python code install for the classic signals. We take the highest real-time
//! signal from `SIGRTMAX-2` down whose disposition is still the default, once per process.
//!
//! The application can take that signal back at any time (a handler of its own, `SIG_IGN`, `SIG_DFL`),
//! and nothing tells us when. A wait therefore asks [`usable_wake_signal`] before it arms a timer: one
//! `sigaction` query, made only by a wait that is about to sleep, never on an uncontended acquisition
//! and never between waking and returning. A change *during* a wait is noticed when the wait is
//! interrupted without our handler having run ([`deliveries`]). Once taken, the signal is left to the
//! application for good and waits use a mechanism that needs no signal.

use std::io;
use std::mem::MaybeUninit;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use nix::libc;

static WAKE_SIGNAL: OnceLock<Result<libc::c_int, i32>> = OnceLock::new();
/// Set when the application replaced our handler: from then on the signal is theirs.
static LOST: AtomicBool = AtomicBool::new(false);
/// How many times our handler ran, in any thread.
static DELIVERIES: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_wake_signal(_: libc::c_int) {
    // The point of the signal is the EINTR it causes; the count lets a waiter tell our signal from
    // someone else's. An atomic add is async-signal-safe.
    DELIVERIES.fetch_add(1, Ordering::Relaxed);
}

/// How many times the wake signal's handler has run in this process.
pub(crate) fn deliveries() -> u64 {
    DELIVERIES.load(Ordering::Relaxed)
}

/// The wake signal, if a wait can rely on it now: chosen (and its handler installed) on first use,
/// and still carrying our handler without `SA_RESTART`. `None` means: wake by other means. The first
/// time the answer turns to `None`, a warning says why.
pub(crate) fn usable_wake_signal() -> Option<libc::c_int> {
    if LOST.load(Ordering::Relaxed) {
        return None;
    }
    match *WAKE_SIGNAL.get_or_init(install) {
        Ok(signo) if still_ours(signo) => Some(signo),
        Ok(signo) => {
            if !LOST.swap(true, Ordering::Relaxed) {
                log::warn!(
                    target: "ferrolock::wait",
                    "real-time signal {signo}, which ferrolock used to wake waits, was given another \
                     disposition by the application; waits now use helper threads instead"
                );
            }
            None
        }
        Err(_) => None,
    }
}

/// True if `signo` still has our handler, without `SA_RESTART` (which would make the kernel restart
/// `flock` instead of returning `EINTR`).
fn still_ours(signo: libc::c_int) -> bool {
    let mut current = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: querying the disposition (null new action) writes only into `current`.
    if unsafe { libc::sigaction(signo, std::ptr::null(), current.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: sigaction(2) returned 0, so `current` was fully initialised.
    let current = unsafe { current.assume_init() };
    current.sa_sigaction == on_wake_signal as *const () as libc::sighandler_t
        && current.sa_flags & libc::SA_RESTART == 0
}

fn install() -> Result<libc::c_int, i32> {
    // glibc reserves the lowest real-time signals for itself (SIGRTMIN already skips them). Search from
    // the top, where libraries rarely look, for one nobody has claimed.
    let (low, high) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    for signo in (low..=high - 2).rev() {
        let mut current = MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: querying the disposition (null new action) writes only into `current`.
        if unsafe { libc::sigaction(signo, std::ptr::null(), current.as_mut_ptr()) } != 0 {
            continue;
        }
        // SAFETY: sigaction(2) returned 0, so `current` was fully initialised.
        let current = unsafe { current.assume_init() };
        if current.sa_sigaction != libc::SIG_DFL {
            continue;
        }
        let mut action = MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: a zeroed sigaction is valid (empty mask, no flags); we then set the handler. No
        // SA_RESTART: that is the whole point. The handler is async-signal-safe (one atomic add).
        let rc = unsafe {
            let action = action.as_mut_ptr();
            (*action).sa_sigaction = on_wake_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&raw mut (*action).sa_mask);
            libc::sigaction(signo, action, std::ptr::null_mut())
        };
        if rc == 0 {
            log::debug!(target: "ferrolock::sys", "wake signal is {signo}");
            return Ok(signo);
        }
    }
    log::warn!(
        target: "ferrolock::wait",
        "no real-time signal from {low} to {} is free (all handled or ignored); waits use helper threads",
        high - 2
    );
    Err(libc::EAGAIN)
}

/// While alive, the wake signal is unblocked in the calling thread (some libraries block every signal
/// in the threads they create); the previous mask is restored on drop if it blocked the signal. When it
/// did not (the usual case), there is nothing to restore, and the way out of a wait makes no
/// `rt_sigprocmask` call.
#[derive(Debug)]
pub(crate) struct UnblockedWakeSignal {
    /// The mask to restore, if it blocked the signal.
    previous: Option<libc::sigset_t>,
}

impl UnblockedWakeSignal {
    pub(crate) fn new(signo: libc::c_int) -> io::Result<Self> {
        let mut set = MaybeUninit::<libc::sigset_t>::zeroed();
        let mut previous = MaybeUninit::<libc::sigset_t>::zeroed();
        // SAFETY: both sets are initialised by sigemptyset/pthread_sigmask before being read.
        let rc = unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            libc::sigaddset(set.as_mut_ptr(), signo);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, set.as_ptr(), previous.as_mut_ptr())
        };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: pthread_sigmask succeeded and filled `previous`.
        let previous = unsafe { previous.assume_init() };
        // SAFETY: `previous` is an initialised set.
        let was_blocked = unsafe { libc::sigismember(&raw const previous, signo) } == 1;
        Ok(Self {
            previous: was_blocked.then_some(previous),
        })
    }
}

impl Drop for UnblockedWakeSignal {
    fn drop(&mut self) {
        if let Some(previous) = &self.previous {
            // SAFETY: restores the mask saved in `new`; the pointer is valid for the call.
            unsafe {
                libc::pthread_sigmask(libc::SIG_SETMASK, previous, std::ptr::null_mut());
            }
        }
    }
}

/// While alive, every signal that can be blocked is blocked in the calling thread; threads it spawns
/// meanwhile inherit that mask. Helper threads are started this way so that a signal meant for the
/// process (Ctrl-C) is never delivered to one of them instead of to the thread that should see it.
#[derive(Debug)]
pub(crate) struct AllSignalsBlocked {
    previous: libc::sigset_t,
}

impl AllSignalsBlocked {
    pub(crate) fn new() -> io::Result<Self> {
        let mut all = MaybeUninit::<libc::sigset_t>::zeroed();
        let mut previous = MaybeUninit::<libc::sigset_t>::zeroed();
        // SAFETY: both sets are initialised by sigfillset/pthread_sigmask before being read.
        let rc = unsafe {
            libc::sigfillset(all.as_mut_ptr());
            libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), previous.as_mut_ptr())
        };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: pthread_sigmask succeeded and filled `previous`.
        Ok(Self {
            previous: unsafe { previous.assume_init() },
        })
    }
}

impl Drop for AllSignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `new`; the pointer is valid for the call.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &raw const self.previous, std::ptr::null_mut());
        }
    }
}
