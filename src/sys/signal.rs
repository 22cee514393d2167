//! The wake signal: a real-time signal with a do-nothing handler installed *without* `SA_RESTART`, so
//! that its delivery makes a blocking `flock(2)` in the target thread return `EINTR`.
//!
//! A real-time signal (rather than `SIGALRM`, which util-linux uses) keeps clear of handlers that
//! applications and Python code install for the classic signals. We take the highest real-time
//! signal whose disposition is still the default, once per process, and never change it back.

use std::io;
use std::mem::MaybeUninit;
use std::sync::OnceLock;

use nix::libc;

static WAKE_SIGNAL: OnceLock<Result<libc::c_int, i32>> = OnceLock::new();

extern "C" fn on_wake_signal(_: libc::c_int) {
    // Nothing to do: the point of the signal is the EINTR it causes.
}

/// The signal number used to interrupt waits, installing its handler on first use.
pub(crate) fn wake_signal() -> io::Result<libc::c_int> {
    let chosen = WAKE_SIGNAL.get_or_init(install);
    chosen.map_err(io::Error::from_raw_os_error)
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
        // SA_RESTART: that is the whole point. The handler is async-signal-safe (it does nothing).
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
    Err(libc::EAGAIN)
}

/// While alive, the wake signal is unblocked in the calling thread (some libraries block every signal
/// in the threads they create); the previous mask is restored on drop.
#[derive(Debug)]
pub(crate) struct UnblockedWakeSignal {
    previous: libc::sigset_t,
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
        Ok(Self {
            previous: unsafe { previous.assume_init() },
        })
    }
}

impl Drop for UnblockedWakeSignal {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `new`; the pointer is valid for the call.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &raw const self.previous, std::ptr::null_mut());
        }
    }
}
