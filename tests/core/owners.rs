//! Owner ids: a thread that ends while holding a lock leaves its hold to nobody, even when glibc gives
//! its `pthread_self()` to the next thread.

use std::thread;

use crate::common::TempDir;
use ferrolock::{Error, FileLock, LockOptions, Owner, Wait};

#[allow(unsafe_code)]
fn pthread_self() -> nix::libc::pthread_t {
    // SAFETY: pthread_self has no preconditions and cannot fail.
    unsafe { nix::libc::pthread_self() }
}

#[test]
fn a_later_thread_never_inherits_a_finished_threads_hold() {
    let dir = TempDir::new("owners");
    let lock = FileLock::new(dir.join("o.lock"), &LockOptions::default()).unwrap();
    let (dead_pthread, dead_owner) = thread::scope(|s| {
        s.spawn(|| {
            lock.acquire(Wait::Try).unwrap();
            (pthread_self(), Owner::current_thread())
        })
        .join()
        .unwrap()
    });
    assert!(lock.is_locked());
    let mut reused = false;
    for _ in 0..20 {
        let (pthread, owner, count, attempt, released) = thread::scope(|s| {
            s.spawn(|| {
                let me = Owner::current_thread();
                let count = lock.lock_count(me);
                let attempt = lock.acquire(Wait::Try);
                let released = lock.release().unwrap();
                (pthread_self(), me, count, attempt, released)
            })
            .join()
            .unwrap()
        });
        assert_ne!(owner, dead_owner, "an owner id was handed out twice");
        assert!(owner.is_thread());
        assert_eq!(count, 0, "a new thread inherited a finished thread's re-entry count");
        assert!(
            matches!(attempt, Err(Error::WouldBlock { .. })),
            "a new thread re-entered: {attempt:?}"
        );
        assert!(!released, "a new thread released a finished thread's hold");
        assert!(lock.is_locked());
        if pthread == dead_pthread {
            reused = true;
            break;
        }
    }
    assert!(
        reused,
        "no later thread got the finished thread's pthread_t; the test relies on glibc reusing it"
    );
}

#[test]
fn caller_chosen_owner_ids_below_the_top_bit_never_equal_a_threads() {
    assert!(Owner::current_thread().is_thread());
    assert!(!Owner::from_raw(u64::MAX >> 1).is_thread());
    assert_eq!(Owner::from_raw(42).as_raw(), 42);
}
