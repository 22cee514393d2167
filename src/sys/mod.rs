//! The platform layer: the only place in the crate that may use `unsafe`.
//!
//! Everything here is a thin, documented wrapper over one Linux facility that `std` and `nix` do not
//! expose in the shape the lock core needs:
//!
//! * [`flock`]: `flock(2)` on a borrowed descriptor, reporting `EINTR` instead of retrying it, so a
//!   blocking wait can be interrupted by our timer signal.
//! * [`WakeTimer`]: a POSIX timer aimed at one thread (`SIGEV_THREAD_ID`) that interrupts that thread's
//!   blocking `flock` at a deadline, the technique util-linux `flock -w` uses (`lib/timer.c`).
//! * [`pidfd_open`], [`DirWatch`] and [`poll_readable`]: process-exit and directory-change events for
//!   scope waits on legacy records, which hold no lock to block on.
//! * [`fork_generation`]: a counter bumped in every forked child, so lock objects notice they were
//!   inherited without a `getpid()` call on the hot path.
//! * [`getdents64`]: listing an open directory through its descriptor (the descriptor-relative walk of
//!   `ferrolock status` and `clean`).
#![allow(unsafe_code)]

mod dirents;
mod events;
mod process;
mod signal;
mod timer;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::libc;

pub(crate) use dirents::getdents64;
pub(crate) use events::{DirWatch, pidfd_open, poll_readable};
#[cfg_attr(not(feature = "python"), allow(unused_imports))]
pub(crate) use process::is_main_thread;
pub(crate) use process::{current_thread_owner, fork_generation};
pub(crate) use signal::{UnblockedWakeSignal, wake_signal};
pub(crate) use timer::WakeTimer;

/// The flock(2) operations the core uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FlockOp {
    Exclusive,
    Shared,
    Unlock,
}

/// Calls `flock(2)` once. `nonblocking` adds `LOCK_NB`.
///
/// `EINTR` is returned to the caller rather than retried: the wait loop uses it to notice deadlines,
/// cancellation and pending Python signals.
pub(crate) fn flock(fd: BorrowedFd<'_>, op: FlockOp, nonblocking: bool) -> io::Result<()> {
    let mut raw = match op {
        FlockOp::Exclusive => libc::LOCK_EX,
        FlockOp::Shared => libc::LOCK_SH,
        FlockOp::Unlock => libc::LOCK_UN,
    };
    if nonblocking {
        raw |= libc::LOCK_NB;
    }
    // SAFETY: `fd` is a live descriptor borrowed for the duration of the call; flock(2) does not
    // retain it and touches no memory of ours.
    let rc = unsafe { libc::flock(fd.as_raw_fd(), raw) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
