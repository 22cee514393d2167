//! The thread mechanism against real files: exact timeouts, adoption of abandoned requests, and
//! helpers that give back a lock nobody waits for any more.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

use super::super::CancelToken;
use super::*;

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("ferrolock-by-thread-{tag}-{}", std::process::id()));
        Self(path)
    }

    fn open(&self) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.0)
            .unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn locked_by(file: &File) -> bool {
    !matches!(sys::flock(file.as_fd(), FlockOp::Exclusive, true), Ok(()))
}

fn abandoned_for(key: Key) -> usize {
    HELPERS.lock().abandoned.iter().filter(|r| r.key == key).count()
}

#[test]
fn timeouts_are_exact_and_an_abandoned_helper_gives_the_lock_back() {
    let scratch = Scratch::new("timeout");
    let holder = scratch.open();
    sys::flock(holder.as_fd(), FlockOp::Exclusive, true).unwrap();
    let waiter = scratch.open();
    let started = Instant::now();
    let end = wait(
        waiter.as_fd(),
        FlockOp::Exclusive,
        Some(started + Duration::from_millis(50)),
        &mut WaitControl::default(),
    );
    assert!(matches!(end, Err(WaitEnd::TimedOut)), "{end:?}");
    assert!(started.elapsed() >= Duration::from_millis(50));
    drop(waiter); // its description lives on in the abandoned helper
    sys::flock(holder.as_fd(), FlockOp::Unlock, false).unwrap();
    // The helper is granted the lock and gives it back at once: a new waiter gets it.
    let probe = scratch.open();
    let got = wait(
        probe.as_fd(),
        FlockOp::Exclusive,
        Some(Instant::now() + Duration::from_secs(30)),
        &mut WaitControl::default(),
    );
    assert!(got.is_ok(), "{got:?}");
    assert!(locked_by(&holder), "the probe does not hold the lock it was given");
}

#[test]
fn repeated_timeouts_on_one_lock_keep_one_helper_and_the_last_waiter_gets_the_lock() {
    let scratch = Scratch::new("adopt");
    let holder = scratch.open();
    sys::flock(holder.as_fd(), FlockOp::Exclusive, true).unwrap();
    let key = Key::of(scratch.open().as_fd(), FlockOp::Exclusive).unwrap();
    for _ in 0..5 {
        let waiter = scratch.open();
        let end = wait(
            waiter.as_fd(),
            FlockOp::Exclusive,
            Some(Instant::now() + Duration::from_millis(5)),
            &mut WaitControl::default(),
        );
        assert!(matches!(end, Err(WaitEnd::TimedOut)), "{end:?}");
        assert_eq!(abandoned_for(key), 1, "each timeout left its own helper");
    }
    let waiter = scratch.open();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let got = wait(
                waiter.as_fd(),
                FlockOp::Exclusive,
                Some(Instant::now() + Duration::from_secs(30)),
                &mut WaitControl::default(),
            );
            tx.send(got.is_ok()).unwrap();
        });
        // The last waiter took the abandoned request over (so there is nothing abandoned left)...
        let adopted_by = Instant::now() + Duration::from_secs(30);
        while abandoned_for(key) != 0 {
            assert!(
                Instant::now() < adopted_by,
                "the last wait never adopted the abandoned request"
            );
            std::thread::yield_now();
        }
        sys::flock(holder.as_fd(), FlockOp::Unlock, false).unwrap();
        assert!(rx.recv().unwrap(), "the waiter did not get the lock");
    });
    // ...and holds the lock through its own descriptor.
    assert!(locked_by(&holder));
    sys::flock(waiter.as_fd(), FlockOp::Unlock, false).unwrap();
    assert!(!locked_by(&holder));
    sys::flock(holder.as_fd(), FlockOp::Unlock, false).unwrap();
}

#[test]
fn cancellation_and_interruption_end_a_wait_and_leave_nothing_held() {
    let scratch = Scratch::new("cancel");
    let holder = scratch.open();
    sys::flock(holder.as_fd(), FlockOp::Exclusive, true).unwrap();
    let token = CancelToken::new();
    let waiter = scratch.open();
    std::thread::scope(|s| {
        s.spawn(|| token.cancel());
        let mut ctl = WaitControl {
            cancel: Some(&token),
            ..WaitControl::default()
        };
        let end = wait(waiter.as_fd(), FlockOp::Exclusive, None, &mut ctl);
        assert!(matches!(end, Err(WaitEnd::Cancelled)), "{end:?}");
    });
    let mut checks = 0;
    let mut check = || {
        checks += 1;
        checks == 3
    };
    let mut ctl = WaitControl {
        interrupt_every: Some(Duration::from_millis(10)),
        on_interrupt: Some(&mut check),
        ..WaitControl::default()
    };
    let end = wait(scratch.open().as_fd(), FlockOp::Exclusive, None, &mut ctl);
    assert!(matches!(end, Err(WaitEnd::Interrupted)), "{end:?}");
    assert_eq!(checks, 3);
    drop(waiter);
    sys::flock(holder.as_fd(), FlockOp::Unlock, false).unwrap();
    let probe = scratch.open();
    let got = wait(
        probe.as_fd(),
        FlockOp::Exclusive,
        Some(Instant::now() + Duration::from_secs(30)),
        &mut WaitControl::default(),
    );
    assert!(
        got.is_ok(),
        "a cancelled or interrupted wait left the lock held: {got:?}"
    );
}
