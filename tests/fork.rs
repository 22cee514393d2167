//! Fork safety of the core, with a real `fork()`. This binary holds a single test (the rest of the core
//! tests are one binary in `tests/core/`), which runs the scenarios one after the other, so no other
//! test thread can hold a mutex at the moment of a fork.
#![allow(unsafe_code)]

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};

use ferrolock::{Error, FileLock, LockOptions, Owner, Wait};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork, pipe};

#[test]
fn fork_safety() {
    a_forked_child_can_neither_release_nor_reuse_the_parents_lock();
    a_forked_child_that_never_uses_ferrolock_does_not_keep_the_parents_lock();
}

fn a_forked_child_can_neither_release_nor_reuse_the_parents_lock() {
    let dir = std::env::temp_dir().join(format!("ferrolock-fork-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("f.lock");
    let lock = FileLock::new(&path, &LockOptions::default()).unwrap();
    lock.acquire(Wait::Try).unwrap();

    // SAFETY: the test binary runs this single test; the child only calls async-signal-safe-enough code
    // of ours (no allocator-holding threads exist) and leaves with _exit.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let me = Owner::current_thread();
            let code = (|| {
                if lock.is_locked() {
                    return 10; // the child must not believe it holds the parent's lock
                }
                if lock.release_as(me, true).unwrap() {
                    return 11; // releasing must be a no-op in the child
                }
                // Acquiring must not "succeed" through the inherited open file description.
                match lock.acquire(Wait::Try) {
                    Err(Error::WouldBlock { .. }) => {}
                    _ => return 12,
                }
                drop(lock); // dropping must not unlock the parent's lock either
                0
            })();
            // SAFETY: _exit skips atexit handlers and destructors, as a forked child should.
            unsafe { nix::libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0));
            assert!(lock.is_locked());
            let other = FileLock::new(
                &path,
                &LockOptions {
                    detect_deadlock: false,
                    ..LockOptions::default()
                },
            )
            .unwrap();
            assert!(
                matches!(other.acquire(Wait::Try), Err(Error::WouldBlock { .. })),
                "parent lost its lock"
            );
            lock.release().unwrap();
            other.acquire(Wait::Try).unwrap();
        }
    }
    fs::remove_dir_all(&dir).unwrap();
}

/// The parent's descriptor goes away (as when the parent dies) while a child that never called ferrolock
/// after the fork still runs: the lock must be free, not kept alive by the child's inherited copy.
fn a_forked_child_that_never_uses_ferrolock_does_not_keep_the_parents_lock() {
    let dir = std::env::temp_dir().join(format!("ferrolock-fork-detach-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("f.lock");
    let lock = FileLock::new(&path, &LockOptions::default()).unwrap();
    lock.acquire(Wait::Try).unwrap();
    let raw = lock.raw_fd(Owner::current_thread()).unwrap();
    let (started_read, started_write) = pipe().unwrap();
    let (done_read, done_write) = pipe().unwrap();

    // SAFETY: single-test binary (see the module docs); the child only uses pipes and leaves with _exit.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            drop((started_read, done_write));
            // Running here means fork() has returned in the child, after every atfork child handler: the
            // inherited lock descriptor is closed already (F_GETFD fails with EBADF).
            // SAFETY: fcntl(F_GETFD) on a descriptor number only reads its flags.
            let closed = unsafe { nix::libc::fcntl(raw, nix::libc::F_GETFD) } == -1;
            let _ = fs::File::from(started_write).write_all(if closed { b"c" } else { b"o" });
            let mut byte = [0u8; 1];
            let _ = fs::File::from(done_read).read(&mut byte); // until the parent is done checking
            // SAFETY: _exit skips atexit handlers and destructors, as a forked child should.
            unsafe { nix::libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop((started_write, done_read));
            let mut byte = [0u8; 1];
            fs::File::from(started_read).read_exact(&mut byte).unwrap();
            assert_eq!(&byte, b"c", "the child still had the inherited lock descriptor open");
            // "Die" as far as the lock is concerned: close the parent's descriptor without unlocking. Only
            // the child's inherited copy could still keep the description, and so the lock, alive.
            // SAFETY: takes over the descriptor the lock owns; the lock is leaked below, never closing it again.
            drop(unsafe { OwnedFd::from_raw_fd(raw) });
            std::mem::forget(lock);
            let other = FileLock::new(&path, &LockOptions::default()).unwrap();
            let freed = other.acquire(Wait::Try);
            fs::File::from(done_write).write_all(b"x").unwrap();
            assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0));
            assert!(freed.is_ok(), "the child kept the parent's lock: {freed:?}");
        }
    }
    fs::remove_dir_all(&dir).unwrap();
}
