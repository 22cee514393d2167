//! `getdents64(2)` on a borrowed descriptor: listing a directory that is already open (and was
//! checked) without the `dup`, `fdopendir` and `rewinddir` calls a `DIR*` stream would cost per
//! directory. The records are parsed by the caller, in safe code.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::libc;

/// Reads the next entries of the directory open as `fd` into `buf` (replacing its contents, at most
/// its capacity), in the kernel's `linux_dirent64` layout; `Ok(0)` at the end of the directory.
pub(crate) fn getdents64(fd: BorrowedFd<'_>, buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.clear();
    let room = buf.capacity();
    // SAFETY: `fd` is a live descriptor borrowed for the duration of the call; the kernel writes at
    // most `room` bytes into the vector's spare capacity, which nothing else refers to meanwhile.
    let n = unsafe { libc::syscall(libc::SYS_getdents64, fd.as_raw_fd(), buf.as_mut_ptr(), room) };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    // SAFETY: the kernel initialised the first `n` bytes, and `n <= room` (it never writes more).
    unsafe { buf.set_len(n.min(room)) };
    Ok(n)
}
