//! Kernel events a waiter can sleep on besides a lock: a process's exit (`pidfd_open(2)`) and changes
//! in a directory (`inotify(7)`), multiplexed with `poll(2)`.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use nix::libc;

/// A descriptor that becomes readable when process `pid` exits. `ESRCH` if there is no such process.
pub(crate) fn pidfd_open(pid: i64) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    if pid <= 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor (or -1); no memory of
    // ours is involved. PIDFD_NONBLOCK is not needed: we only poll it.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as libc::c_int) })
}

/// An inotify instance watching one directory.
#[derive(Debug)]
pub(crate) struct DirWatch {
    file: File,
}

/// What a [`DirWatch`] reported.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirEvents {
    /// An event named the file of interest.
    pub(crate) named: bool,
    /// The directory itself went away or events were lost: assume anything changed.
    pub(crate) overflow: bool,
}

impl DirWatch {
    /// Watches `dir` for files being created, closed after writing, removed or renamed.
    pub(crate) fn new(dir: &Path) -> io::Result<Self> {
        // SAFETY: inotify_init1 takes flags and returns a new descriptor (or -1).
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let c_dir =
            CString::new(dir.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mask = libc::IN_CREATE
            | libc::IN_CLOSE_WRITE
            | libc::IN_DELETE
            | libc::IN_MOVED_FROM
            | libc::IN_MOVED_TO
            | libc::IN_DELETE_SELF
            | libc::IN_MOVE_SELF
            | libc::IN_ONLYDIR;
        // SAFETY: `c_dir` is a valid NUL-terminated string for the duration of the call.
        if unsafe { libc::inotify_add_watch(file.as_raw_fd(), c_dir.as_ptr(), mask) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { file })
    }

    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Drains pending events and says whether any concerned `name` (a file in the watched directory).
    pub(crate) fn drain(&self, name: &[u8]) -> io::Result<DirEvents> {
        let mut events = DirEvents::default();
        let mut buf = [0u8; 4096];
        loop {
            let n = match (&self.file).read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(events),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Ok(events);
            }
            parse_events(&buf[..n], name, &mut events);
        }
    }
}

/// Walks `struct inotify_event { int wd; u32 mask; u32 cookie; u32 len; char name[len]; }` records.
fn parse_events(mut bytes: &[u8], name: &[u8], events: &mut DirEvents) {
    const HEADER: usize = 16;
    while bytes.len() >= HEADER {
        let word = |i: usize| u32::from_ne_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let mask = word(4);
        let len = word(12) as usize;
        let Some(raw_name) = bytes.get(HEADER..HEADER + len) else {
            break;
        };
        let event_name = raw_name.split(|&b| b == 0).next().unwrap_or_default();
        if mask & (libc::IN_Q_OVERFLOW | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF | libc::IN_IGNORED) != 0 {
            events.overflow = true;
        } else if event_name == name {
            events.named = true;
        }
        bytes = &bytes[HEADER + len..];
    }
}

/// Waits until one of `fds` is readable or `timeout` passes (`None`: no limit). Returns the indices
/// of the readable descriptors (empty on timeout). `EINTR` is returned, not retried, so that the
/// caller can look at signals.
pub(crate) fn poll_readable(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> io::Result<Vec<usize>> {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // Round up so a wait never ends early; clamp to poll's int range (about 24 days).
    let ms = timeout.map_or(-1, |t| {
        libc::c_int::try_from(t.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX)
    });
    // SAFETY: `pollfds` is a valid array of `pollfds.len()` entries for the duration of the call, and
    // every descriptor in it is borrowed for at least that long.
    let rc = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, ms) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pollfds
        .iter()
        .enumerate()
        .filter(|(_, p)| p.revents != 0)
        .map(|(i, _)| i)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_event_records() {
        let mut bytes = Vec::new();
        for (mask, name) in [(libc::IN_CLOSE_WRITE, &b"other.log"[..]), (libc::IN_DELETE, b"a.lock")] {
            let padded = 16usize;
            bytes.extend_from_slice(&1i32.to_ne_bytes());
            bytes.extend_from_slice(&mask.to_ne_bytes());
            bytes.extend_from_slice(&0u32.to_ne_bytes());
            bytes.extend_from_slice(&(padded as u32).to_ne_bytes());
            let mut n = name.to_vec();
            n.resize(padded, 0);
            bytes.extend_from_slice(&n);
        }
        let mut ev = DirEvents::default();
        parse_events(&bytes, b"b.lock", &mut ev);
        assert_eq!(ev, DirEvents::default());
        parse_events(&bytes, b"a.lock", &mut ev);
        assert!(ev.named && !ev.overflow);
    }
}
