//! A POSIX timer that sends the wake signal to one thread, kept by that thread between its waits.

use std::cell::RefCell;
use std::io;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::libc;

use super::process::fork_generation;

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

    /// Whether the timer is armed (it will fire, or repeat).
    #[cfg(test)]
    pub(crate) fn is_armed(&self) -> bool {
        let mut current = MaybeUninit::<libc::itimerspec>::zeroed();
        // SAFETY: `self.id` is a live timer; `current` is written by the call.
        let rc = unsafe { libc::timer_gettime(self.id, current.as_mut_ptr()) };
        assert_eq!(rc, 0, "timer_gettime: {}", io::Error::last_os_error());
        // SAFETY: timer_gettime succeeded and filled `current`.
        let current = unsafe { current.assume_init() };
        current.it_value.tv_sec != 0 || current.it_value.tv_nsec != 0
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

/// How many threads may keep a timer between waits. Every timer reserves a queued signal against
/// `RLIMIT_SIGPENDING` for as long as it exists, so an application with thousands of threads that each
/// waited once must not keep thousands of them: past this many, a thread's timer lives for one wait.
const MAX_KEPT_TIMERS: usize = 256;

/// Timers kept by threads of this process (a forked child starts counting from its own first wait).
static KEPT: AtomicUsize = AtomicUsize::new(0);
/// The fork generation `KEPT` counts for.
static KEPT_GENERATION: AtomicUsize = AtomicUsize::new(0);

/// A thread's kept timer: the signal it sends and the fork generation it was created in.
struct Kept {
    signo: libc::c_int,
    generation: u64,
    timer: Option<Arc<WakeTimer>>,
}

impl Drop for Kept {
    fn drop(&mut self) {
        // The thread ends: its timer goes (timer_delete, once no canceller still holds it). One
        // inherited through fork is not this process's to delete (see `thread_timer`).
        let Some(timer) = self.timer.take() else { return };
        if self.generation == fork_generation() {
            drop(timer);
            KEPT.fetch_sub(1, Ordering::Relaxed);
        } else {
            std::mem::forget(timer);
        }
    }
}

thread_local! {
    static THREAD_TIMER: RefCell<Option<Kept>> = const { RefCell::new(None) };
}

/// The calling thread's wake timer for `signo`, disarmed: created at the thread's first wait and kept
/// for the next ones, so a wait costs no `timer_create`/`timer_delete` pair (two system calls, one of
/// them on the way out of every wait). Falls back to a timer for this wait alone when too many threads
/// keep one already.
///
/// After `fork()` a timer id inherited from the parent names nothing in the child (timers are not
/// inherited), or a timer the child made since: it is forgotten, never deleted, and a new one is made.
pub(crate) fn thread_timer(signo: libc::c_int) -> io::Result<Arc<WakeTimer>> {
    let generation = fork_generation();
    let kept = THREAD_TIMER.try_with(|cell| {
        let mut slot = cell.borrow_mut();
        if let Some(kept) = slot.as_ref()
            && kept.generation == generation
            && kept.signo == signo
            && let Some(timer) = &kept.timer
        {
            return Ok(Arc::clone(timer));
        }
        // Another signal, or inherited through fork: `Kept::drop` deletes or forgets it.
        drop(slot.take());
        let timer = Arc::new(WakeTimer::for_current_thread(signo)?);
        if reserve_kept_slot(generation) {
            *slot = Some(Kept {
                signo,
                generation,
                timer: Some(Arc::clone(&timer)),
            });
        }
        Ok(timer)
    });
    // The thread is ending (a wait from another thread-local's destructor): a timer for this wait only.
    kept.unwrap_or_else(|_| WakeTimer::for_current_thread(signo).map(Arc::new))
}

/// Counts one more kept timer if fewer than [`MAX_KEPT_TIMERS`] are kept in this process.
fn reserve_kept_slot(generation: u64) -> bool {
    // A forked child inherits the parent's count, but none of the parent's other threads: start over.
    let generation = generation as usize;
    if KEPT_GENERATION.swap(generation, Ordering::Relaxed) != generation {
        KEPT.store(0, Ordering::Relaxed);
    }
    KEPT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        (n < MAX_KEPT_TIMERS).then_some(n + 1)
    })
    .is_ok()
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
