//! A POSIX timer that sends the wake signal to one thread.

use std::io;
use std::mem::MaybeUninit;
use std::time::Duration;

use nix::libc;

/// How often a fired timer repeats until it is re-armed or disarmed.
///
/// A signal that lands in the few instructions between the waiter's last check and its entry into
/// `flock(2)` interrupts nothing. Repeating makes the next one, a millisecond later, interrupt the
/// syscall, so a deadline or a cancellation can be late by about this much but never lost.
const REPEAT: Duration = Duration::from_millis(1);

/// A `CLOCK_MONOTONIC` timer whose expiry delivers the wake signal to the thread that created it.
#[derive(Debug)]
pub(crate) struct WakeTimer {
    id: libc::timer_t,
}

// SAFETY: a timer id is a process-wide kernel handle. timer_settime and timer_delete may be called from
// any thread, which is how a canceller re-arms a waiter's timer to fire at once.
unsafe impl Send for WakeTimer {}
// SAFETY: see `Send`; the kernel serialises operations on one timer.
unsafe impl Sync for WakeTimer {}

impl WakeTimer {
    /// Creates a disarmed timer aimed at the calling thread.
    pub(crate) fn for_current_thread(signo: libc::c_int) -> io::Result<Self> {
        let mut event = MaybeUninit::<libc::sigevent>::zeroed();
        let mut id = MaybeUninit::<libc::timer_t>::zeroed();
        // SAFETY: `event` is zero-initialised and then filled in; SIGEV_THREAD_ID targets the calling
        // thread (gettid), which stays alive at least as long as the timer because the waiter deletes
        // it before returning.
        let rc = unsafe {
            let ev = event.as_mut_ptr();
            (*ev).sigev_notify = libc::SIGEV_THREAD_ID;
            (*ev).sigev_signo = signo;
            (*ev).sigev_notify_thread_id = libc::gettid();
            libc::timer_create(libc::CLOCK_MONOTONIC, ev, id.as_mut_ptr())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: timer_create succeeded and wrote the id.
        Ok(Self {
            id: unsafe { id.assume_init() },
        })
    }

    /// Fires after `delay` (at once if zero), then every millisecond until re-armed or disarmed.
    pub(crate) fn fire_after(&self, delay: Duration) -> io::Result<()> {
        // A zero it_value would disarm the timer; one nanosecond means "now".
        let delay = delay.max(Duration::from_nanos(1));
        self.set(to_timespec(delay), to_timespec(REPEAT))
    }

    /// Stops the timer. A signal already generated is delivered on return from this syscall, while the
    /// wake signal is still unblocked, so it cannot interrupt a later syscall of the caller's.
    pub(crate) fn disarm(&self) -> io::Result<()> {
        self.set(to_timespec(Duration::ZERO), to_timespec(Duration::ZERO))
    }

    fn set(&self, value: libc::timespec, interval: libc::timespec) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: interval,
            it_value: value,
        };
        // SAFETY: `self.id` is a live timer (deleted only in Drop); `spec` outlives the call.
        let rc = unsafe { libc::timer_settime(self.id, 0, &raw const spec, std::ptr::null_mut()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl Drop for WakeTimer {
    fn drop(&mut self) {
        // SAFETY: the id came from timer_create and is deleted exactly once.
        unsafe {
            libc::timer_delete(self.id);
        }
    }
}

fn to_timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
    }
}
