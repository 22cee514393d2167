//! The thread mechanism: waking without a signal of our own.
//!
//! A helper thread blocks in `flock` on a duplicate of the waiter's descriptor. A duplicate shares the
//! open file description, and flock locks belong to descriptions, so the lock the kernel grants the
//! helper is the waiter's. The waiter meanwhile sleeps on a [`Wakeup`] (an eventfd in `ppoll`) until
//! the helper reports, its deadline or periodic check comes, a canceller writes to it, or a signal
//! handler runs (Ctrl-C). One more thread wake-up per hand-off than the signal mechanism, no signal.
//!
//! A blocked `flock` cannot be called off without a signal, so a waiter that gives up (timeout,
//! cancellation, Ctrl-C) leaves its helper blocked: the request is *abandoned*. Its helper unlocks the
//! moment the kernel grants it and then ends, so an abandoned request keeps nobody waiting (a single
//! non-blocking attempt made in the microseconds between that grant and the give-back can find the
//! lock busy, as it could find any passing holder). Until then it costs one thread and one
//! descriptor, which is bounded two ways:
//!
//! * a later wait on the same file, in the same mode, through a descriptor opened with the same flags
//!   *adopts* an abandoned request instead of starting a helper: its descriptor is pointed at the
//!   request's description (`dup3`), whose lock request is already queued. A loop of timed-out
//!   acquisitions on one lock therefore keeps one helper, however long the lock stays held;
//! * at most [`MAX_HELPERS`] helpers exist at once. A wait that finds none free checks the lock with
//!   `LOCK_NB` on a backoff from 1 to 16 ms (still sleeping on its wakeup, so cancellation and Ctrl-C
//!   stay immediate) until a helper ends: the only place ferrolock polls, and only past that bound.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, fcntl};
use nix::libc;
use nix::sys::stat::fstat;

use super::{Registration, Sleeper, WaitControl, WaitEnd};
use crate::sys::{self, AllSignalsBlocked, FlockOp, ForkLocal, LockFile, Wakeup};

/// The most helper threads (each holding one duplicated descriptor) that exist at once, serving
/// waiters or abandoned.
const MAX_HELPERS: usize = 32;
/// Past [`MAX_HELPERS`], how often a waiter re-tries the lock: first after this long...
const POLL_FIRST: Duration = Duration::from_millis(1);
/// ...doubling up to this.
const POLL_LONGEST: Duration = Duration::from_millis(16);
/// A helper runs one `flock` call and a few lines around it.
const HELPER_STACK: usize = 64 * 1024;

/// What a request waits for. Two waits with the same key are interchangeable: same file, same mode,
/// descriptors opened the same way (so a description of one serves the other).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    dev: u64,
    ino: u64,
    op: FlockOp,
    flags: libc::c_int,
}

impl Key {
    fn of(fd: BorrowedFd<'_>, op: FlockOp) -> io::Result<Self> {
        let st = fstat(fd)?;
        let flags = fcntl(fd, FcntlArg::F_GETFL)?;
        Ok(Self {
            dev: st.st_dev,
            ino: st.st_ino,
            op,
            flags,
        })
    }
}

/// One lock request a helper thread is blocked in.
#[derive(Debug)]
struct Request {
    key: Key,
    /// The helper's duplicate: the same open file description as its waiter's descriptor (closed at
    /// once in a forked child, see `sys::LockFile`).
    fd: LockFile,
    state: Mutex<RequestState>,
}

#[derive(Debug)]
struct RequestState {
    /// What the helper's `flock` returned, once it has, until a waiter takes it.
    granted: Option<io::Result<()>>,
    /// Who to wake when it returns; `None` while abandoned.
    waiter: Option<Arc<Wakeup>>,
}

impl Request {
    fn state(&self) -> MutexGuard<'_, RequestState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The process's helpers. Lock order: this, then a request's state.
#[derive(Debug)]
struct Helpers {
    /// Helper threads running (each blocked in, or just back from, `flock`).
    live: usize,
    /// Requests whose waiter gave up while their helper still waits.
    abandoned: Vec<Arc<Request>>,
}

impl Helpers {
    const fn new() -> Self {
        Self {
            live: 0,
            abandoned: Vec::new(),
        }
    }
}

/// A forked child has none of its parent's helper threads: it forgets their requests (closing its
/// copies of their descriptors, which unlocks nothing).
static HELPERS: ForkLocal<Helpers> = ForkLocal::new(Helpers::new(), Helpers::new);

/// Waits for `flock(fd, op)` without using a signal. See [`super::block_until_locked`].
pub(super) fn wait(
    fd: BorrowedFd<'_>,
    op: FlockOp,
    deadline: Option<Instant>,
    ctl: &mut WaitControl<'_>,
) -> Result<(), WaitEnd> {
    let wakeup = Arc::new(Wakeup::new().map_err(WaitEnd::Io)?);
    let _registration = Registration::new(ctl.cancel, || Sleeper::Wakeup(Arc::clone(&wakeup)))?;
    let key = Key::of(fd, op).map_err(WaitEnd::Io)?;
    match request_for(fd, key, &wakeup).map_err(WaitEnd::Io)? {
        Some(request) => wait_for_helper(fd, &request, &wakeup, deadline, ctl),
        None => poll(fd, op, &wakeup, deadline, ctl),
    }
}

/// Adopts an abandoned request for `key` or starts a helper for a new one; `None` if no helper can be
/// had (the bound is reached, or no thread or descriptor could be created).
fn request_for(fd: BorrowedFd<'_>, key: Key, wakeup: &Arc<Wakeup>) -> io::Result<Option<Arc<Request>>> {
    let mut helpers = HELPERS.lock();
    // A finished helper removes its request from this list under this lock, so what is here is still
    // blocked in flock.
    if let Some(i) = helpers.abandoned.iter().position(|r| r.key == key) {
        let request = helpers.abandoned.swap_remove(i);
        if let Err(e) = sys::share_description(fd, request.fd.as_fd()) {
            helpers.abandoned.push(request);
            return Err(e);
        }
        request.state().waiter = Some(Arc::clone(wakeup));
        return Ok(Some(request));
    }
    if helpers.live >= MAX_HELPERS {
        note_bound_reached();
        return Ok(None);
    }
    let Ok(duplicate) = fd.try_clone_to_owned() else {
        return Ok(None); // out of descriptors: polling needs none
    };
    let request = Arc::new(Request {
        key,
        fd: LockFile::new(duplicate.into()),
        state: Mutex::new(RequestState {
            granted: None,
            waiter: Some(Arc::clone(wakeup)),
        }),
    });
    helpers.live += 1;
    drop(helpers);
    if let Err(e) = start_helper(Arc::clone(&request)) {
        log::debug!(target: "ferrolock::wait", "no helper thread ({e}); polling instead");
        HELPERS.lock().live -= 1;
        return Ok(None);
    }
    Ok(Some(request))
}

fn start_helper(request: Arc<Request>) -> io::Result<()> {
    // The helper inherits a mask that blocks every signal, so a signal meant for the process (Ctrl-C)
    // never lands on it instead of on a thread that would act on it, and its flock is never interrupted.
    let _blocked = AllSignalsBlocked::new()?;
    std::thread::Builder::new()
        .name("ferrolock-flock".into())
        .stack_size(HELPER_STACK)
        .spawn(move || serve(&request))
        .map(drop)
}

/// The helper thread: one blocking `flock`, then report (or, if abandoned, give the lock back).
fn serve(request: &Arc<Request>) {
    let result = loop {
        match sys::flock(request.fd.as_fd(), request.key.op, false) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            result => break result,
        }
    };
    let mut helpers = HELPERS.lock();
    helpers.live -= 1;
    let mut state = request.state();
    if let Some(waiter) = state.waiter.clone() {
        state.granted = Some(result);
        waiter.wake();
    } else {
        // Nobody wants it any more: give it back at once, and let the next wait start afresh.
        if result.is_ok() {
            let _ = sys::flock(request.fd.as_fd(), FlockOp::Unlock, false);
        }
        helpers.abandoned.retain(|r| !Arc::ptr_eq(r, request));
    }
}

fn wait_for_helper(
    fd: BorrowedFd<'_>,
    request: &Arc<Request>,
    wakeup: &Wakeup,
    deadline: Option<Instant>,
    ctl: &mut WaitControl<'_>,
) -> Result<(), WaitEnd> {
    loop {
        if let Some(result) = request.state().granted.take() {
            return result.map_err(WaitEnd::Io);
        }
        if ctl.cancelled() {
            return abandon(fd, request, WaitEnd::Cancelled);
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return abandon(fd, request, WaitEnd::TimedOut);
        }
        let wake_at = ctl.wake_at(deadline, now);
        match wakeup.sleep(wake_at.map(|at| at.saturating_duration_since(now))) {
            Ok(true) => {} // the helper reported, or a canceller: look again
            Ok(false) => {
                if ctl.interrupted() {
                    return abandon(fd, request, WaitEnd::Interrupted);
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                if ctl.interrupted() {
                    return abandon(fd, request, WaitEnd::Interrupted);
                }
            }
            Err(e) => return abandon(fd, request, WaitEnd::Io(e)),
        }
    }
}

/// The waiter gives up. If the helper got the lock in the meantime, a timed-out waiter takes it (it
/// was granted, if a hair late) and any other gives it back; otherwise the request is left to its
/// helper, for a later wait to adopt.
fn abandon(fd: BorrowedFd<'_>, request: &Arc<Request>, end: WaitEnd) -> Result<(), WaitEnd> {
    let mut helpers = HELPERS.lock();
    let mut state = request.state();
    match state.granted.take() {
        Some(Ok(())) => {
            drop((state, helpers));
            if matches!(end, WaitEnd::TimedOut) {
                return Ok(());
            }
            sys::flock(fd, FlockOp::Unlock, false).map_err(WaitEnd::Io)?;
        }
        Some(Err(_)) => {}
        None => {
            state.waiter = None;
            helpers.abandoned.push(Arc::clone(request));
        }
    }
    Err(end)
}

/// Past the helper bound: re-try without blocking, sleeping on the wakeup in between.
fn poll(
    fd: BorrowedFd<'_>,
    op: FlockOp,
    wakeup: &Wakeup,
    deadline: Option<Instant>,
    ctl: &mut WaitControl<'_>,
) -> Result<(), WaitEnd> {
    let mut backoff = POLL_FIRST;
    loop {
        match sys::flock(fd, op, true) {
            Ok(()) => return Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EWOULDBLOCK | libc::EINTR)) => {}
            Err(e) => return Err(WaitEnd::Io(e)),
        }
        if ctl.cancelled() {
            return Err(WaitEnd::Cancelled);
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Err(WaitEnd::TimedOut);
        }
        let periodic = ctl.interrupt_every.map(|every| now + every);
        let retry = now + backoff;
        let wake_at = [deadline, periodic, Some(retry)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(retry);
        match wakeup.sleep(Some(wake_at.saturating_duration_since(now))) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                if ctl.interrupted() {
                    return Err(WaitEnd::Interrupted);
                }
            }
            Err(e) => return Err(WaitEnd::Io(e)),
        }
        if periodic.is_some_and(|p| Instant::now() >= p) && ctl.interrupted() {
            return Err(WaitEnd::Interrupted);
        }
        backoff = (backoff * 2).min(POLL_LONGEST);
    }
}

fn note_bound_reached() {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        log::warn!(
            target: "ferrolock::wait",
            "{MAX_HELPERS} helper threads are waiting for locks (mostly for waits that gave up); \
             further waits re-check their lock every few milliseconds until one ends"
        );
    }
}

#[cfg(test)]
mod tests;
