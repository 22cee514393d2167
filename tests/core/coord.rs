//! The coordinator over the `file://` backend: the backend-independent layer and the file backend's
//! fencing, without a server. (The PostgreSQL backend is tested from Python against a real server.)

use std::os::unix::fs::symlink;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ferrolock::coord::{Cancel, Coordinator, LockSpec, run_once};
use ferrolock::job::RunOnceOutcome;
use ferrolock::{Error, LockMode, Owner, Wait, WaitControl};

use crate::common::TempDir;

fn coord(dir: &TempDir) -> Coordinator {
    Coordinator::connect(&format!("file://{}", dir.join("locks").display())).unwrap()
}

#[test]
fn tokens_increase_and_a_stale_token_cannot_write() {
    let dir = TempDir::new("coord-fence");
    let c = coord(&dir);
    let lock = c.lock(LockSpec::new("jobs/a").unwrap());
    lock.acquire(Wait::Forever).unwrap();
    let old = lock.token().unwrap();
    lock.fenced_write(b"one").unwrap();
    lock.release().unwrap();
    lock.acquire(Wait::Forever).unwrap();
    let new = lock.token().unwrap();
    assert!(new > old);
    // The old grant's token, presented after a newer one was drawn (a paused holder's write):
    let refused = c.backend().fenced_write("jobs/a", old, b"stale");
    assert!(matches!(refused, Err(Error::StaleToken { token, current, .. }) if token == old && current == new));
    assert_eq!(c.fenced_read("jobs/a").unwrap(), Some((old, b"one".to_vec())));
    lock.fenced_write(b"two").unwrap();
    assert_eq!(c.fenced_read("jobs/a").unwrap(), Some((new, b"two".to_vec())));
    lock.release().unwrap();
    // Tokens survive the coordinator object: they live on disk.
    let again = coord(&dir).lock(LockSpec::new("jobs/a").unwrap());
    again.acquire(Wait::Forever).unwrap();
    assert!(again.token().unwrap() > new);
}

#[test]
fn a_corrupt_counter_is_reported_not_reset() {
    let dir = TempDir::new("coord-corrupt");
    let c = coord(&dir);
    std::fs::write(dir.join("locks/x.token"), "garbage\n").unwrap();
    let lock = c.lock(LockSpec::new("x").unwrap());
    lock.acquire(Wait::Forever).unwrap();
    assert!(matches!(lock.token(), Err(Error::Corrupt { .. })));
    assert_eq!(std::fs::read_to_string(dir.join("locks/x.token")).unwrap(), "garbage\n");
}

#[test]
fn a_planted_symlink_counter_is_refused() {
    let dir = TempDir::new("coord-symlink");
    let c = coord(&dir);
    let victim = dir.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    symlink(&victim, dir.join("locks/x.token")).unwrap();
    let lock = c.lock(LockSpec::new("x").unwrap());
    lock.acquire(Wait::Forever).unwrap();
    assert!(matches!(lock.token(), Err(Error::Symlink { .. })));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

#[test]
fn two_objects_exclude_and_a_wait_on_oneself_is_refused() {
    let dir = TempDir::new("coord-objects");
    let c = coord(&dir);
    let a = c.lock(LockSpec::new("n").unwrap());
    let b = c.lock(LockSpec::new("n").unwrap());
    a.acquire(Wait::Forever).unwrap();
    assert!(matches!(b.acquire(Wait::Forever), Err(Error::WouldDeadlock { .. })));
    let other = Owner::from_raw(7);
    let busy = b.acquire_as(other, Wait::Try, &mut WaitControl::default(), None);
    assert!(matches!(busy, Err(Error::WouldBlock { ref path, .. }) if path.as_os_str() == "n"));
    a.release().unwrap();
    b.acquire_as(other, Wait::Try, &mut WaitControl::default(), None)
        .unwrap();
    assert_eq!(b.lock_count(other), 1);
}

#[test]
fn shared_holders_coexist() {
    let dir = TempDir::new("coord-shared");
    let c = coord(&dir);
    let mut spec = LockSpec::new("s").unwrap();
    spec.mode = LockMode::Shared;
    let a = c.lock(spec.clone());
    let b = c.lock(spec);
    a.acquire(Wait::Forever).unwrap();
    b.acquire(Wait::Forever).unwrap(); // same thread, both shared: no deadlock, no wait
    let x = c.lock(LockSpec::new("s").unwrap());
    let busy = x.acquire_as(Owner::from_raw(9), Wait::Try, &mut WaitControl::default(), None);
    assert!(busy.is_err());
}

#[test]
fn cancel_ends_a_wait_with_nothing_held() {
    let dir = TempDir::new("coord-cancel");
    let c = coord(&dir);
    let holder = c.lock(LockSpec::new("c").unwrap());
    holder.acquire(Wait::Forever).unwrap();
    let waiter = Arc::new(c.lock(LockSpec::new("c").unwrap()));
    let cancel = Arc::new(Cancel::new());
    let (w, k) = (Arc::clone(&waiter), Arc::clone(&cancel));
    let started = Instant::now();
    let t = thread::spawn(move || {
        w.acquire_as(
            Owner::from_raw(11),
            Wait::Forever,
            &mut WaitControl::default(),
            Some(&k),
        )
    });
    thread::sleep(Duration::from_millis(100));
    cancel.cancel();
    let result = t.join().unwrap();
    assert!(matches!(result, Err(Error::Cancelled { .. })), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!waiter.is_locked());
}

#[test]
fn run_once_runs_once_and_retries_after_a_failure() {
    let dir = TempDir::new("coord-once");
    let c = coord(&dir);
    let mut ctl = WaitControl::default();
    let failed = run_once(&c, "setup/v1", Wait::Forever, &mut ctl, None, || {
        Err::<Vec<u8>, _>("broke")
    });
    assert!(failed.is_err());
    let ran = run_once(&c, "setup/v1", Wait::Forever, &mut ctl, None, || {
        Ok::<_, String>(b"ok".to_vec())
    });
    assert_eq!(ran.unwrap(), RunOnceOutcome::Ran);
    let again = run_once(
        &c,
        "setup/v1",
        Wait::Forever,
        &mut ctl,
        None,
        || -> Result<Vec<u8>, String> { panic!("must not run twice") },
    );
    assert_eq!(again.unwrap(), RunOnceOutcome::AlreadyDone);
}

#[test]
fn names_map_to_distinct_flat_files() {
    let dir = TempDir::new("coord-names");
    let c = coord(&dir);
    for name in ["a/b", "a%2Fb", ".x", "a b"] {
        let lock = c.lock(LockSpec::new(name).unwrap());
        lock.acquire(Wait::Try).unwrap();
        lock.token().unwrap();
    }
    let status: Vec<String> = c.status().unwrap().into_iter().map(|s| s.name).collect();
    assert!(status.is_empty(), "released locks are not listed: {status:?}");
    let mut files: Vec<String> = std::fs::read_dir(dir.join("locks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| std::path::Path::new(n).extension().is_some_and(|e| e == "lock"))
        .collect();
    files.sort();
    assert_eq!(files, ["%2Ex.lock", "a%20b.lock", "a%252Fb.lock", "a%2Fb.lock"]);
}
