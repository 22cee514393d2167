//! Fork safety of the core, with a real `fork()`. This binary holds a single test (the rest of the core
//! tests are one binary in `tests/core/`), so no other test thread can hold a mutex at the moment of the
//! fork.
#![allow(unsafe_code)]

use std::fs;

use ferrolock::{Error, FileLock, LockOptions, Owner, Wait};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};

#[test]
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
