//! The platform layer: the only place in the crate that may use `unsafe`.
//!
//! Everything here is a thin, documented wrapper over one Linux facility that `std` and `nix` do not
//! expose in the shape the lock core needs:
//!
//! * [`flock`]: `flock(2)` on a borrowed descriptor, reporting `EINTR` instead of retrying it, so a
//!   blocking wait can be interrupted by our timer signal.
//! * [`WakeTimer`] and [`usable_wake_signal`]: a POSIX timer aimed at one thread (`SIGEV_THREAD_ID`)
//!   whose real-time signal interrupts that thread's blocking `flock` at a deadline, the technique
//!   util-linux `flock -w` uses (`lib/timer.c`), and the check that the application has not taken the
//!   signal since.
//! * [`Wakeup`] and [`share_description`]: an eventfd a thread sleeps on with a nanosecond timeout, and
//!   `dup3`, for the wake mechanism that needs no signal.
//! * [`pidfd_open`], [`DirWatch`] and [`poll_readable`]: process-exit and directory-change events for
//!   scope waits on legacy records, which hold no lock to block on.
//! * [`ForkLocal`]: a value a forked child replaces on first use (a counter bumped in every child tells
//!   it was inherited), the one way the crate forgets what a child inherited (lock holds, idle
//!   descriptors, claims, pending waits, coordinator grants and sessions).
//! * [`LockFile`]: a descriptor a forked child closes the moment it is born (without unlocking), so a
//!   dead parent's locks are free even while its children live.
//! * [`current_thread_owner`]: an owner id per thread, never reused in the life of the process.
//! * [`flock_table`] / [`flock_info`]: the kernel's table of flock locks (`/proc/locks`).
//! * [`fs`]: paths another user may control: file kinds, opening without following links, and
//!   reaching a path under the kernel's link-protection rules ([`locate`], [`Dir`]).
//! * [`getdents64`]: listing an open directory through its descriptor (the descriptor-relative walk of
//!   `ferrolock status` and `clean`).
#![allow(unsafe_code)]

mod detach;
mod dirents;
mod events;
pub(crate) mod fs;
mod locks;
mod process;
mod signal;
mod timer;
mod wakeup;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::libc;

pub(crate) use detach::LockFile;
pub(crate) use dirents::getdents64;
pub(crate) use events::{DirWatch, pidfd_open, poll_readable};
pub(crate) use fs::{Dir, FileKind, FinalLink, Located, euid, locate};
pub(crate) use locks::{FileKey, FlockInfo, flock_info, flock_table, key_of};
#[cfg_attr(not(feature = "python"), allow(unused_imports))]
pub(crate) use process::is_main_thread;
pub(crate) use process::{ForkLocal, THREAD_OWNER_BIT, current_thread_owner, open_files_soft_limit, process_exists};
pub(crate) use signal::{
    AllSignalsBlocked, UnblockedWakeSignal, deliveries as wake_signal_deliveries, usable_wake_signal,
};
pub(crate) use timer::{WakeTimer, thread_timer};
pub(crate) use wakeup::{Wakeup, share_description};

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
