//! Task claims from Rust (`LocalQueue` with ferrolock's own format): outcomes, the lock order, the
//! tidy-up, waiting for a task to appear, and exactly-once claims between threads (each thread is its
//! own lock owner, so they contend exactly like processes).

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::TempDir;
use ferrolock::tasks::{ClaimOutcome, Lookup, NativeFormat, QueueLayout, QueueOptions, ReleaseOutcome, TaskFormat};
use ferrolock::{Error, FileLock, LockOptions, Wait, WaitControl};

type Queue = ferrolock::tasks::LocalQueue;

fn queue(dir: &TempDir) -> Queue {
    Queue::new(QueueLayout::beside(dir.join("tasks.json")), QueueOptions::default()).unwrap()
}

fn add(q: &Queue, ids: &[&str]) {
    q.modify(
        &mut NativeFormat,
        Wait::Forever,
        &mut WaitControl::default(),
        |_, doc| {
            let mut doc = doc.unwrap_or_default();
            doc.add(ids.iter().copied());
            Ok((Some(doc), ()))
        },
    )
    .unwrap();
}

fn claim(q: &Queue, id: &str, who: &str, wait: Wait) -> Result<ClaimOutcome<ferrolock::tasks::ClaimRecord>, Error> {
    q.claim(&mut NativeFormat, id, who, wait, &mut WaitControl::default())
}

fn owner(q: &Queue, id: &str) -> Option<String> {
    let doc = q.read(&mut NativeFormat).unwrap().unwrap();
    match NativeFormat.lookup(&doc, id).unwrap() {
        Lookup::Claimed(o) => Some(o.by),
        Lookup::Free => None,
        Lookup::Missing => panic!("no task {id}"),
    }
}

/// Holds `path`'s lock on another thread (another owner, as another process would) until dropped.
struct Held(Option<mpsc::Sender<()>>, Option<thread::JoinHandle<()>>);

fn held(path: &Path) -> Held {
    let (path, (taken_tx, taken_rx), (stop_tx, stop_rx)) = (path.to_path_buf(), mpsc::channel(), mpsc::channel());
    let holder = thread::spawn(move || {
        let lock = FileLock::new(&path, &LockOptions::default()).unwrap();
        lock.acquire(Wait::Try).unwrap();
        taken_tx.send(()).unwrap();
        let _ = stop_rx.recv_timeout(Duration::from_secs(60));
        drop(lock);
    });
    taken_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the holder took the lock");
    Held(Some(stop_tx), Some(holder))
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.0.take());
        if let Some(holder) = self.1.take() {
            holder.join().unwrap();
        }
    }
}

/// Creates `path` as a lock file nobody holds.
fn leave_lock_file(path: &Path) {
    let lock = FileLock::new(path, &LockOptions::default()).unwrap();
    lock.acquire(Wait::Try).unwrap();
    lock.release().unwrap();
}

#[test]
fn claims_report_what_they_found() {
    let dir = TempDir::new("tasks-outcomes");
    let q = queue(&dir);
    assert!(matches!(claim(&q, "a", "x", Wait::Try).unwrap(), ClaimOutcome::NoQueue));
    add(&q, &["a", "b"]);
    assert!(claim(&q, "a", "x", Wait::Try).unwrap().is_claimed());
    assert!(matches!(claim(&q, "a", "y", Wait::Try).unwrap(), ClaimOutcome::Taken(o) if o.by == "x"));
    assert!(matches!(
        claim(&q, "zz", "y", Wait::Try).unwrap(),
        ClaimOutcome::Missing
    ));
    assert!(matches!(
        claim(&q, "../escape", "y", Wait::Try),
        Err(Error::InvalidName { .. })
    ));
    let ctl = &mut WaitControl::default();
    let mut release = |who: &str, force: bool| q.release(&mut NativeFormat, "a", who, force, Wait::Try, ctl);
    assert!(matches!(release("y", false).unwrap(), ReleaseOutcome::ClaimedByOther(o) if o.by == "x"));
    assert_eq!(owner(&q, "a").as_deref(), Some("x"));
    assert!(matches!(release("x", false).unwrap(), ReleaseOutcome::Released));
    assert_eq!(owner(&q, "a"), None);
    let backup = fs::read(dir.join("tasks.json.bak")).unwrap();
    assert!(
        String::from_utf8(backup).unwrap().contains("\"by\": \"x\""),
        "the previous version is kept"
    );
}

#[test]
fn a_claim_waits_for_the_task_lock_then_the_state_lock_and_names_the_busy_one() {
    let dir = TempDir::new("tasks-order");
    let q = queue(&dir);
    add(&q, &["a"]);
    let task_lock = held(&q.task_lock_path("a").unwrap());
    let err = claim(&q, "a", "x", Wait::after(Duration::from_millis(100))).unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { path, .. } if *path == q.task_lock_path("a").unwrap()),
        "{err}"
    );
    drop(task_lock);
    let state_lock = held(&q.layout().state_lock);
    let err = claim(&q, "a", "x", Wait::Try).unwrap_err();
    assert!(err.path() == Some(q.layout().state_lock.as_path()), "{err}");
    assert!(!q.task_lock_path("a").unwrap().exists() || owner(&q, "a").is_none());
    drop(state_lock);
    assert!(claim(&q, "a", "x", Wait::Try).unwrap().is_claimed());
}

#[test]
fn a_batch_never_waits_for_a_task_lock_and_skips_busy_tasks() {
    let dir = TempDir::new("tasks-batch");
    let q = queue(&dir);
    add(&q, &["a", "b", "c"]);
    assert!(claim(&q, "c", "other", Wait::Try).unwrap().is_claimed());
    let busy = held(&q.task_lock_path("b").unwrap());
    let outcomes = q
        .claim_many(
            &mut NativeFormat,
            &["a", "b", "c", "zz", "a"],
            "bot",
            Wait::Try,
            &mut WaitControl::default(),
        )
        .unwrap();
    let kinds: Vec<&str> = outcomes
        .iter()
        .map(|o| match o {
            ClaimOutcome::Claimed => "claimed",
            ClaimOutcome::Busy => "busy",
            ClaimOutcome::Taken(_) => "taken",
            ClaimOutcome::Missing => "missing",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["claimed", "busy", "taken", "missing", "taken"]);
    drop(busy);
    assert_eq!(owner(&q, "b"), None);
    assert_eq!(owner(&q, "a").as_deref(), Some("bot"));
}

#[test]
fn lock_files_of_tasks_that_cannot_be_claimed_are_removed_unless_held() {
    let dir = TempDir::new("tasks-tidy");
    let q = queue(&dir);
    add(&q, &["a", "b", "c", "d"]);
    for id in ["a", "b", "c"] {
        assert!(claim(&q, id, "x", Wait::Try).unwrap().is_claimed());
    }
    let lock_path = |id: &str| q.task_lock_path(id).unwrap();
    for id in ["a", "c", "d"] {
        leave_lock_file(&lock_path(id));
    }
    let b_held = held(&lock_path("b"));
    // The next operation (a release of c) removes a's lock file (claimed, unheld), keeps b's (held),
    // c's (the task it is about) and d's (its task can still be claimed).
    let ctl = &mut WaitControl::default();
    assert!(matches!(
        q.release(&mut NativeFormat, "c", "x", false, Wait::Try, ctl).unwrap(),
        ReleaseOutcome::Released
    ));
    assert!(!lock_path("a").exists(), "a is claimed and nobody holds its lock");
    assert!(lock_path("b").exists(), "someone holds b's lock");
    assert!(lock_path("c").exists(), "the lock file of the task just touched stays");
    assert!(lock_path("d").exists(), "d can still be claimed");
    drop(b_held);
}

#[test]
fn the_tidy_up_does_not_follow_a_symlinked_lock_directory() {
    let dir = TempDir::new("tasks-symlink");
    let victim = TempDir::new("tasks-victim");
    fs::write(victim.join("task_a.lock"), b"").unwrap();
    let q = queue(&dir);
    add(&q, &["a"]);
    symlink(victim.path(), &q.layout().task_locks).unwrap();
    q.modify(&mut NativeFormat, Wait::Try, &mut WaitControl::default(), |_, doc| {
        let mut doc = doc.unwrap();
        doc.remove(&["a"]); // task a is gone: its lock file would be removed, if it were ours
        Ok((Some(doc), ()))
    })
    .unwrap();
    add(&q, &["b"]);
    assert!(
        victim.join("task_a.lock").exists(),
        "nothing is removed through the link"
    );
}

#[test]
fn a_corrupt_state_file_is_reported_and_left_alone() {
    let dir = TempDir::new("tasks-corrupt");
    let q = queue(&dir);
    fs::write(&q.layout().state, b"{\"tasks\": [{\"id\": 7}]}").unwrap();
    let err = claim(&q, "a", "x", Wait::Try).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { path, .. } if *path == q.layout().state),
        "{err}"
    );
    assert_eq!(fs::read(&q.layout().state).unwrap(), b"{\"tasks\": [{\"id\": 7}]}");
}

/// Waits (bounded) until thread `tid` of this process sleeps in `poll`.
fn wait_until_polling(tid: i32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let polls = [nix::libc::SYS_ppoll.to_string(), poll_syscall()];
    loop {
        let syscall = fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).unwrap_or_default();
        if polls.iter().any(|n| syscall.split(' ').next() == Some(n.as_str())) {
            return;
        }
        assert!(Instant::now() < deadline, "the waiter never slept in poll: {syscall}");
        thread::yield_now();
    }
}

#[cfg(target_arch = "x86_64")]
fn poll_syscall() -> String {
    nix::libc::SYS_poll.to_string()
}

#[cfg(not(target_arch = "x86_64"))]
fn poll_syscall() -> String {
    nix::libc::SYS_ppoll.to_string()
}

#[test]
fn claim_next_sleeps_until_a_task_appears_and_times_out_exactly() {
    let dir = TempDir::new("tasks-next");
    let q = Arc::new(queue(&dir));
    add(&q, &[]);
    let started = Instant::now();
    let ctl = &mut WaitControl::default();
    assert_eq!(
        q.claim_next(&mut NativeFormat, "w", Wait::Forever, false, ctl).unwrap(),
        None,
        "no wait"
    );
    let none = q.claim_next(
        &mut NativeFormat,
        "w",
        Wait::after(Duration::from_millis(150)),
        true,
        ctl,
    );
    assert_eq!(none.unwrap(), None);
    assert!(started.elapsed() >= Duration::from_millis(150), "never early");

    let (tx, rx) = mpsc::channel();
    let waiter = {
        let q = Arc::clone(&q);
        thread::spawn(move || {
            tx.send(nix::unistd::gettid().as_raw()).unwrap();
            let started = Instant::now();
            let wait = Wait::after(Duration::from_secs(30));
            let got = q.claim_next(&mut NativeFormat, "w", wait, true, &mut WaitControl::default());
            (got.unwrap(), started.elapsed())
        })
    };
    wait_until_polling(rx.recv_timeout(Duration::from_secs(20)).unwrap());
    add(&q, &["new"]);
    let (got, took) = waiter.join().unwrap();
    assert_eq!(got.as_deref(), Some("new"));
    assert!(
        took < Duration::from_secs(10),
        "woken by the change, not the deadline: {took:?}"
    );
    assert_eq!(owner(&q, "new").as_deref(), Some("w"));
}

#[test]
fn threads_draining_a_queue_claim_every_task_exactly_once() {
    let dir = TempDir::new("tasks-drain");
    let q = Arc::new(queue(&dir));
    let ids: Vec<String> = (0..60).map(|i| format!("t{i}")).collect();
    add(&q, &ids.iter().map(String::as_str).collect::<Vec<_>>());
    let barrier = Arc::new(Barrier::new(6));
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let (q, barrier) = (Arc::clone(&q), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                let mut mine = Vec::new();
                let wait = Wait::after(Duration::from_secs(30));
                while let Some(id) = q
                    .claim_next(
                        &mut NativeFormat,
                        &format!("w{w}"),
                        wait,
                        false,
                        &mut WaitControl::default(),
                    )
                    .unwrap()
                {
                    mine.push(id);
                }
                (w, mine)
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for worker in workers {
        let (w, mine) = worker.join().unwrap();
        for id in mine {
            assert_eq!(
                owner(&q, &id),
                Some(format!("w{w}")),
                "{id} is recorded as the claimant's"
            );
            assert!(seen.insert(id), "a task was claimed twice");
        }
    }
    assert_eq!(seen.len(), ids.len(), "every task was claimed");
}
