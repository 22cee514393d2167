//! What the signal-free wake mechanism sleeps on: an `eventfd(2)` that a helper thread or a canceller
//! writes to, waited for with `ppoll(2)`, which takes a nanosecond timeout and, unlike `flock`, is never
//! restarted after a signal handler (so Ctrl-C still wakes it, whatever `SA_RESTART` says). A port to
//! another Unix would use a pipe here; nothing else changes.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::libc;

/// A wake-up channel for one sleeping thread.
#[derive(Debug)]
pub(crate) struct Wakeup {
    file: File,
}

impl Wakeup {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: eventfd takes an initial count and flags and returns a new descriptor (or -1).
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        Ok(Self {
            file: File::from(unsafe { OwnedFd::from_raw_fd(fd) }),
        })
    }

    /// Wakes the sleeper (now, or at its next sleep if it is not sleeping yet). Callable from any thread.
    pub(crate) fn wake(&self) {
        // EAGAIN means the counter is saturated: the sleeper is already due to wake.
        let _ = (&self.file).write(&1u64.to_ne_bytes());
    }

    /// Sleeps until woken (`Ok(true)`, and the wake is consumed) or `timeout` passes (`Ok(false)`;
    /// `None`: no limit). A signal handler's return ends the sleep with `EINTR`, which is returned.
    pub(crate) fn sleep(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let mut pollfd = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let spec = timeout.map(|t| libc::timespec {
            tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
        });
        let spec_ptr = spec.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
        // SAFETY: one valid pollfd, a timespec (or null) and a null signal mask, all outliving the call.
        let rc = unsafe { libc::ppoll(&raw mut pollfd, 1, spec_ptr, std::ptr::null()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        if rc == 0 {
            return Ok(false);
        }
        let mut count = [0u8; 8];
        match (&self.file).read(&mut count) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(true),
            Err(e) => Err(e),
        }
    }
}

/// Makes the descriptor `target` refer to `source`'s open file description (`dup3`), closing the one it
/// referred to before, atomically: the descriptor number, and whoever owns it, stay the same.
pub(crate) fn share_description(target: BorrowedFd<'_>, source: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: both descriptors are live for the call. `target` stays open throughout (dup3 replaces
    // what it refers to in one step), so its owner still owns an open descriptor afterwards; the
    // description it loses is closed by the kernel like any other close.
    let rc = unsafe { libc::dup3(source.as_raw_fd(), target.as_raw_fd(), libc::O_CLOEXEC) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
