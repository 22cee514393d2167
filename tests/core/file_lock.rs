//! The lock core, tested from Rust without Python. flock locks belong to open file descriptions, so two
//! `FileLock`s (or two owners) in one process contend exactly like two processes.
#![allow(clippy::many_single_char_names)]

use std::fs;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::TempDir;
use ferrolock::{
    Acquired, CancelToken, Error, FileLock, LockMode, LockOptions, LockState, Owner, Removal, Wait, WaitControl, probe,
    remove_if_unheld,
};

fn exclusive(path: &std::path::Path) -> FileLock {
    FileLock::new(path, &LockOptions::default()).unwrap()
}

/// A second lock object used by the same thread that holds the first, to test waits and timeouts
/// without tripping deadlock detection (which is what a real second process would see).
fn contender(path: &std::path::Path) -> FileLock {
    FileLock::new(
        path,
        &LockOptions {
            detect_deadlock: false,
            ..LockOptions::default()
        },
    )
    .unwrap()
}

fn shared(path: &std::path::Path) -> FileLock {
    FileLock::new(
        path,
        &LockOptions {
            mode: LockMode::Shared,
            ..LockOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn two_objects_on_one_path_exclude_each_other() {
    let dir = TempDir::new("two-objects");
    let path = dir.join("a.lock");
    let (a, b) = (exclusive(&path), exclusive(&path));
    let held = a.try_lock().unwrap();
    assert!(matches!(b.try_lock(), Err(Error::WouldBlock { .. })));
    drop(held);
    let _held = b.try_lock().unwrap();
    assert!(matches!(a.try_lock(), Err(Error::WouldBlock { .. })));
}

#[test]
fn shared_holders_coexist_and_exclude_exclusive() {
    let dir = TempDir::new("shared");
    let path = dir.join("s.lock");
    let (r1, r2, w) = (shared(&path), shared(&path), exclusive(&path));
    let g1 = r1.try_lock().unwrap();
    let g2 = r2.try_lock().unwrap();
    assert!(matches!(w.try_lock(), Err(Error::WouldBlock { .. })));
    drop((g1, g2));
    let gw = w.try_lock().unwrap();
    assert!(matches!(r1.try_lock(), Err(Error::WouldBlock { .. })));
    drop(gw);
}

#[test]
fn reentry_counts_per_owner() {
    let dir = TempDir::new("reentry");
    let lock = exclusive(&dir.join("r.lock"));
    let me = Owner::current_thread();
    assert_eq!(lock.acquire(Wait::Try).unwrap(), Acquired::Fresh);
    assert_eq!(lock.acquire(Wait::Try).unwrap(), Acquired::Reentered);
    assert_eq!(lock.lock_count(me), 2);
    assert!(lock.release().unwrap());
    assert!(lock.is_locked());
    assert!(lock.release().unwrap());
    assert!(!lock.is_locked());
    assert!(!lock.release().unwrap(), "releasing what we do not hold is a no-op");
}

#[test]
fn force_release_drops_every_level() {
    let dir = TempDir::new("force");
    let lock = exclusive(&dir.join("f.lock"));
    let me = Owner::current_thread();
    for _ in 0..3 {
        lock.acquire(Wait::Try).unwrap();
    }
    assert!(lock.release_as(me, true).unwrap());
    assert_eq!(lock.lock_count(me), 0);
    assert!(!lock.is_locked());
}

#[test]
fn threads_sharing_one_object_exclude_each_other_and_cannot_release_it() {
    let dir = TempDir::new("threads");
    let lock = Arc::new(exclusive(&dir.join("t.lock")));
    let held = lock.try_lock().unwrap();
    let other = Arc::clone(&lock);
    let outcome = thread::spawn(move || {
        let attempt = matches!(other.try_lock(), Err(Error::WouldBlock { .. }));
        let released = other.release().unwrap();
        (attempt, released)
    })
    .join()
    .unwrap();
    assert_eq!(outcome, (true, false));
    assert!(lock.is_locked());
    drop(held);
}

#[test]
fn a_waiter_wakes_when_the_holder_releases() {
    let dir = TempDir::new("wake");
    let path = dir.join("w.lock");
    let holder = exclusive(&path);
    let held = holder.try_lock().unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let lock = exclusive(&path);
        ready_tx.send(()).unwrap();
        let got = lock.acquire(Wait::after(Duration::from_secs(20)));
        (got.is_ok(), lock.is_locked())
    });
    ready_rx.recv().unwrap();
    drop(held);
    assert_eq!(waiter.join().unwrap(), (true, true));
}

#[test]
fn timeouts_are_never_early() {
    let dir = TempDir::new("timeout");
    let path = dir.join("t.lock");
    let (a, b) = (exclusive(&path), contender(&path));
    let _held = a.try_lock().unwrap();
    for ms in [1_u64, 20, 60] {
        let want = Duration::from_millis(ms);
        let start = Instant::now();
        let err = b.acquire(Wait::after(want)).unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(took >= want, "returned after {took:?}, before the {want:?} deadline");
        assert!(
            took < want + Duration::from_millis(250),
            "{took:?} is far past {want:?}"
        );
        assert!(!b.is_locked());
    }
}

#[test]
fn cancellation_ends_a_kernel_wait_and_holds_nothing() {
    let dir = TempDir::new("cancel");
    let path = dir.join("c.lock");
    let a = exclusive(&path);
    let _held = a.try_lock().unwrap();
    let token = Arc::new(CancelToken::new());
    let b = Arc::new(contender(&path));
    let (t, l) = (Arc::clone(&token), Arc::clone(&b));
    let (ready_tx, ready_rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        ready_tx.send(()).unwrap();
        let mut ctl = WaitControl {
            cancel: Some(&t),
            ..WaitControl::default()
        };
        let start = Instant::now();
        let r = l.acquire_as(Owner::current_thread(), Wait::Forever, &mut ctl);
        (r, start.elapsed())
    });
    ready_rx.recv().unwrap();
    token.cancel();
    let (result, _) = waiter.join().unwrap();
    assert!(matches!(result, Err(Error::Cancelled { .. })), "{result:?}");
    assert!(!b.is_locked());
    // A cancelled token stays cancelled.
    let mut ctl = WaitControl {
        cancel: Some(&token),
        ..WaitControl::default()
    };
    let again = b.acquire_as(Owner::current_thread(), Wait::Forever, &mut ctl);
    assert!(matches!(again, Err(Error::Cancelled { .. })));
}

#[test]
fn periodic_interrupt_checks_can_stop_a_wait() {
    let dir = TempDir::new("interrupt");
    let path = dir.join("i.lock");
    let (a, b) = (exclusive(&path), contender(&path));
    let _held = a.try_lock().unwrap();
    let mut calls = 0;
    let mut check = || {
        calls += 1;
        calls == 3
    };
    let mut ctl = WaitControl {
        interrupt_every: Some(Duration::from_millis(5)),
        on_interrupt: Some(&mut check),
        ..WaitControl::default()
    };
    let r = b.acquire_as(Owner::current_thread(), Wait::Forever, &mut ctl);
    assert!(matches!(r, Err(Error::Interrupted { .. })), "{r:?}");
    assert_eq!(calls, 3);
}

#[test]
fn deleting_the_file_while_a_waiter_waits_never_gives_two_holders() {
    let dir = TempDir::new("unlink");
    let path = dir.join("u.lock");
    let first = exclusive(&path);
    let held = first.try_lock().unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let (p, bar) = (path.clone(), Arc::clone(&barrier));
    let waiter = thread::spawn(move || {
        let lock = exclusive(&p);
        bar.wait();
        lock.acquire(Wait::after(Duration::from_secs(20))).unwrap();
        bar.wait(); // we hold it now
        bar.wait(); // the main thread has checked exclusion
        lock.release().unwrap();
    });
    barrier.wait();
    // The holder deletes the file while holding it, then releases: the waiter's inode is orphaned.
    fs::remove_file(&path).unwrap();
    drop(held);
    barrier.wait();
    // A newcomer creates a fresh file at the path: it must still be excluded by the waiter, which
    // noticed the unlink and moved to the file the path names now.
    let newcomer = exclusive(&path);
    assert!(matches!(newcomer.try_lock(), Err(Error::WouldBlock { .. })));
    barrier.wait();
    waiter.join().unwrap();
    let _g = newcomer.try_lock().unwrap();
}

#[test]
fn std_file_lock_and_ferrolock_exclude_each_other() {
    let dir = TempDir::new("std");
    let path = dir.join("std.lock");
    let file = fs::File::create(&path).unwrap();
    file.lock().unwrap();
    let ours = exclusive(&path);
    assert!(matches!(ours.try_lock(), Err(Error::WouldBlock { .. })));
    file.unlock().unwrap();
    let _held = ours.try_lock().unwrap();
    assert!(file.try_lock().is_err());
}

#[test]
fn same_thread_waiting_on_a_second_object_is_a_deadlock_error() {
    let dir = TempDir::new("deadlock");
    let path = dir.join("d.lock");
    let (a, b) = (exclusive(&path), exclusive(&path));
    let _held = a.try_lock().unwrap();
    assert!(matches!(b.acquire(Wait::Forever), Err(Error::WouldDeadlock { .. })));
    assert!(matches!(b.try_lock(), Err(Error::WouldBlock { .. })));
    let quiet = contender(&path);
    assert!(matches!(
        quiet.acquire(Wait::after(Duration::from_millis(10))),
        Err(Error::Timeout { .. })
    ));
}

#[test]
fn with_py_filelocks_rule_only_a_wait_without_end_is_refused_as_a_deadlock() {
    let dir = TempDir::new("deadlock-deadline");
    let path = dir.join("d.lock");
    let rule = LockOptions {
        deadlock_on_deadline: false,
        ..LockOptions::default()
    };
    let a = exclusive(&path);
    let b = FileLock::new(&path, &rule).unwrap();
    let _held = a.try_lock().unwrap();
    assert!(matches!(b.acquire(Wait::Forever), Err(Error::WouldDeadlock { .. })));
    let started = Instant::now();
    let err = b.acquire(Wait::after(Duration::from_millis(100))).unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "the deadline was not waited for"
    );
    // The default refuses any wait at once.
    assert!(matches!(
        exclusive(&path).acquire(Wait::after(Duration::from_secs(30))),
        Err(Error::WouldDeadlock { .. })
    ));
}

#[test]
fn a_deadline_wait_that_looks_like_a_deadlock_gets_the_lock_if_another_thread_drops_the_holder() {
    let dir = TempDir::new("deadlock-drop");
    let path = dir.join("d.lock");
    let rule = LockOptions {
        deadlock_on_deadline: false,
        ..LockOptions::default()
    };
    let a = Arc::new(exclusive(&path));
    a.acquire(Wait::Try).unwrap();
    let dropper = {
        let (a, path) = (Arc::clone(&a), path.clone());
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !crate::common::has_blocked_waiter(&path) {
                assert!(Instant::now() < deadline, "the waiter never slept in the kernel");
                thread::sleep(Duration::from_millis(1));
            }
            drop(a); // the last reference: dropping releases what this process holds through it
        })
    };
    drop(a);
    let b = FileLock::new(&path, &rule).unwrap();
    assert_eq!(
        b.acquire(Wait::after(Duration::from_secs(30))).unwrap(),
        Acquired::Fresh
    );
    dropper.join().unwrap();
}

#[test]
fn the_winner_can_truncate_and_set_the_exact_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("claim-file");
    let path = dir.join("t.lock");
    fs::write(&path, "stale content of a previous holder\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let exact = LockOptions {
        file_mode: 0o606,
        exact_mode: true,
        truncate: true,
        holder_record: false,
        ..LockOptions::default()
    };
    let lock = FileLock::new(&path, &exact).unwrap();
    let contender = contender(&path);
    let _held = lock.try_lock().unwrap();
    let meta = fs::metadata(&path).unwrap();
    assert_eq!((meta.len(), meta.permissions().mode() & 0o777), (0, 0o606));
    // A contender that loses changes nothing of the holder's.
    fs::write(&path, "holder's own content").unwrap();
    assert!(matches!(contender.try_lock(), Err(Error::WouldBlock { .. })));
    assert_eq!(fs::read_to_string(&path).unwrap(), "holder's own content");
}

#[test]
fn unique_owners_are_never_threads_and_never_repeat() {
    let owners: Vec<Owner> = (0..100).map(|_| Owner::unique()).collect();
    assert!(owners.iter().all(|o| !o.is_thread()));
    let mut ids: Vec<u64> = owners.iter().map(|o| o.as_raw()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 100);
}

#[test]
fn holder_record_names_the_exclusive_holder_while_held() {
    let dir = TempDir::new("holder");
    let path = dir.join("h.lock");
    let lock = FileLock::new(
        &path,
        &LockOptions {
            purpose: Some("nightly build".into()),
            ..LockOptions::default()
        },
    )
    .unwrap();
    assert_eq!(probe(&path).unwrap(), LockState::Missing);
    let held = lock.try_lock().unwrap();
    let LockState::Held(Some(h)) = probe(&path).unwrap() else {
        panic!("expected a live record")
    };
    assert_eq!(h.pid, std::process::id());
    assert_eq!(h.purpose.as_deref(), Some("nightly build"));
    let err = exclusive(&path).try_lock().unwrap_err();
    assert!(err.to_string().contains("nightly build"), "{err}");
    drop(held);
    assert_eq!(probe(&path).unwrap(), LockState::Free);
    assert_eq!(lock.holder(), None);
}

#[test]
fn remove_if_unheld_never_removes_a_held_file() {
    let dir = TempDir::new("remove");
    let path = dir.join("r.lock");
    let lock = exclusive(&path);
    let held = lock.try_lock().unwrap();
    assert_eq!(remove_if_unheld(&path).unwrap(), Removal::Held);
    assert!(path.exists());
    drop(held);
    assert_eq!(remove_if_unheld(&path).unwrap(), Removal::Removed);
    assert!(!path.exists());
    assert_eq!(remove_if_unheld(&path).unwrap(), Removal::Missing);
    // The lock object simply recreates the file next time.
    let _g = lock.try_lock().unwrap();
    assert!(path.exists());
}

#[test]
fn creates_missing_parent_directories() {
    let dir = TempDir::new("parents");
    let path = dir.join("a/b/c/x.lock");
    let lock = exclusive(&path);
    let _g = lock.try_lock().unwrap();
    assert!(path.is_file());
}

#[test]
fn refuses_symlinks_and_leaves_the_target_untouched() {
    let dir = TempDir::new("symlink");
    let victim = dir.join("victim.txt");
    fs::write(&victim, b"precious").unwrap();
    let link = dir.join("link.lock");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let err = exclusive(&link).try_lock().unwrap_err();
    assert!(matches!(err, Error::Symlink { .. }), "{err}");
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    // A dangling link is refused too (O_CREAT would otherwise create its target).
    let dangling = dir.join("dangling.lock");
    std::os::unix::fs::symlink(dir.join("nowhere"), &dangling).unwrap();
    assert!(matches!(exclusive(&dangling).try_lock(), Err(Error::Symlink { .. })));
    assert!(!dir.join("nowhere").exists());
}

#[test]
fn refuses_directories_and_fifos() {
    let dir = TempDir::new("special");
    let sub = dir.join("a-directory");
    fs::create_dir(&sub).unwrap();
    assert!(matches!(
        exclusive(&sub).try_lock(),
        Err(Error::NotRegularFile { kind: "directory", .. })
    ));
    let fifo = dir.join("a-fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert!(matches!(
        exclusive(&fifo).try_lock(),
        Err(Error::NotRegularFile { kind: "FIFO", .. })
    ));
}

#[test]
fn never_truncates_an_existing_file_it_cannot_lock() {
    let dir = TempDir::new("truncate");
    let path = dir.join("t.lock");
    fs::write(&path, b"someone else's content").unwrap();
    let file = fs::File::open(&path).unwrap();
    file.lock().unwrap();
    assert!(exclusive(&path).try_lock().is_err());
    assert_eq!(fs::read(&path).unwrap(), b"someone else's content");
}

#[test]
fn rejects_nul_and_empty_paths() {
    assert!(matches!(
        FileLock::new("a\0b", &LockOptions::default()),
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        FileLock::new("", &LockOptions::default()),
        Err(Error::InvalidName { .. })
    ));
}
