//! Job locks, stale-lock cleanup and run-once setup, tested from Rust without Python. Threads stand in
//! for processes: each `JobLock`/`FileLock` object has its own open file description, so two of them
//! contend in the kernel exactly as two processes do.

use std::fs::{self, File};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::common::TempDir;
use ferrolock::{
    Error, FileLock, JobLock, JobLocks, LockOptions, RunOnce, RunOnceError, RunOnceOutcome, Wait, WaitControl, run_once,
};

fn ctl() -> WaitControl<'static> {
    WaitControl::default()
}

fn make_old(path: &Path) {
    let old = SystemTime::now() - Duration::from_secs(7200);
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(old)
        .unwrap();
}

#[test]
fn a_job_lock_belongs_to_the_object_and_any_thread_may_release_it() {
    let dir = TempDir::new("object");
    let lock = Arc::new(JobLock::new(dir.join("j/.lock"), None).unwrap());
    assert!(lock.acquire(Wait::Forever, &mut ctl()).unwrap());
    // Re-acquiring through the same object does not count: one release frees it.
    assert!(lock.acquire(Wait::Forever, &mut ctl()).unwrap());
    assert!(lock.held_by_current_thread());
    let other = Arc::clone(&lock);
    thread::spawn(move || {
        assert!(!other.held_by_current_thread());
        assert!(other.release().unwrap());
    })
    .join()
    .unwrap();
    assert!(!lock.is_held());
    let second = JobLock::new(dir.join("j/.lock"), None).unwrap();
    assert!(second.acquire(Wait::Try, &mut ctl()).unwrap());
}

#[test]
fn a_busy_try_is_false_and_a_second_object_in_the_same_thread_fails_at_once() {
    let dir = TempDir::new("deadlock");
    let path = dir.join(".lock");
    let (a, b) = (JobLock::new(&path, None).unwrap(), JobLock::new(&path, None).unwrap());
    assert!(a.acquire(Wait::Forever, &mut ctl()).unwrap());
    assert!(!b.acquire(Wait::Try, &mut ctl()).unwrap());
    let started = Instant::now();
    let err = b.acquire(Wait::after(Duration::from_secs(10)), &mut ctl()).unwrap_err();
    assert!(matches!(err, Error::WouldDeadlock { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn another_thread_waits_in_the_kernel_and_gets_the_lock_on_release() {
    let dir = TempDir::new("handoff");
    let path = dir.join(".lock");
    let a = JobLock::new(&path, None).unwrap();
    assert!(a.acquire(Wait::Forever, &mut ctl()).unwrap());
    let (tx, rx) = mpsc::channel();
    let waiter = {
        let path = path.clone();
        thread::spawn(move || {
            let b = JobLock::new(&path, None).unwrap();
            tx.send("waiting").unwrap();
            let got = b.acquire(Wait::after(Duration::from_secs(30)), &mut ctl()).unwrap();
            tx.send(if got { "acquired" } else { "not acquired" }).unwrap();
            assert!(b.is_locked());
        })
    };
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "waiting");
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err(), "got a held lock");
    assert!(a.release().unwrap());
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "acquired");
    waiter.join().unwrap();
}

#[test]
fn is_locked_asks_the_kernel_and_acquire_replaces_a_hold_on_a_deleted_file() {
    let dir = TempDir::new("verify");
    let path = dir.join(".lock");
    let lock = JobLock::new(&path, Some("job j".into())).unwrap();
    assert!(lock.acquire(Wait::Forever, &mut ctl()).unwrap());
    assert!(lock.is_locked());
    assert_eq!(lock.holder_record().unwrap().purpose.as_deref(), Some("job j"));
    // A legacy cleaner deletes the held file: the hold protects nothing any more.
    fs::remove_file(&path).unwrap();
    assert!(lock.is_held());
    assert!(!lock.is_locked());
    assert!(lock.acquire(Wait::Try, &mut ctl()).unwrap());
    assert!(path.exists());
    assert!(lock.is_locked());
    let other = JobLock::new(&path, None).unwrap();
    let t = thread::spawn(move || other.acquire(Wait::Try, &mut ctl()).unwrap());
    assert!(!t.join().unwrap(), "the fresh file must be held");
}

#[test]
fn cleanup_keeps_held_locks_however_old_and_removes_old_unheld_ones() {
    let dir = TempDir::new("cleanup");
    let jobs = JobLocks::new(&dir.0);
    let held = jobs.job_lock("held").unwrap();
    assert!(held.acquire(Wait::Forever, &mut ctl()).unwrap());
    for job in ["old", "young"] {
        let lock = jobs.job_lock(job).unwrap();
        assert!(lock.acquire(Wait::Forever, &mut ctl()).unwrap());
        lock.release().unwrap();
    }
    let index = jobs.index_lock().unwrap();
    assert!(index.acquire(Wait::Forever, &mut ctl()).unwrap());
    index.release().unwrap();
    fs::create_dir_all(dir.join(".hidden")).unwrap();
    fs::write(dir.join(".hidden/.lock"), b"").unwrap();
    fs::create_dir_all(dir.join("linked")).unwrap();
    std::os::unix::fs::symlink(dir.join("victim"), dir.join("linked/.lock")).unwrap();
    fs::write(dir.join("victim"), b"keep me").unwrap();
    for path in [
        jobs.job_lock_path("held").unwrap(),
        jobs.job_lock_path("old").unwrap(),
        jobs.index_lock_path(),
        dir.join(".hidden/.lock"),
        dir.join("victim"),
    ] {
        make_old(&path);
    }

    let cleaned = jobs.cleanup_stale(Duration::from_secs(3600)).unwrap();

    assert_eq!(cleaned, vec![std::ffi::OsString::from("old")]);
    assert!(
        jobs.job_lock_path("held").unwrap().exists(),
        "a held lock file was removed"
    );
    assert!(held.is_locked());
    assert!(jobs.job_lock_path("young").unwrap().exists());
    assert!(!jobs.job_lock_path("old").unwrap().exists());
    assert!(!jobs.index_lock_path().exists());
    assert!(dir.join(".hidden/.lock").exists());
    assert_eq!(fs::read(dir.join("victim")).unwrap(), b"keep me");
    assert!(fs::symlink_metadata(dir.join("linked/.lock")).is_ok());
}

#[test]
fn cleanup_of_a_missing_directory_is_empty_and_of_a_file_is_an_error() {
    let dir = TempDir::new("cleanup-missing");
    assert!(
        JobLocks::new(dir.join("nope"))
            .cleanup_stale(Duration::ZERO)
            .unwrap()
            .is_empty()
    );
    fs::write(dir.join("file"), b"").unwrap();
    assert!(matches!(
        JobLocks::new(dir.join("file")).cleanup_stale(Duration::ZERO),
        Err(Error::Io { .. })
    ));
}

fn spec(dir: &TempDir) -> RunOnce {
    RunOnce {
        also_lock: vec![dir.join("work/legacy.lock")],
        ..RunOnce::new(dir.join("work/.ready"), dir.join("setup.lock"))
    }
}

#[test]
fn run_once_runs_the_setup_once_while_the_others_wait_for_it() {
    let dir = TempDir::new("run-once");
    let spec = Arc::new(spec(&dir));
    let runs = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (spec, runs, start) = (Arc::clone(&spec), Arc::clone(&runs), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                run_once(&spec, &mut ctl(), || -> Result<Vec<u8>, ()> {
                    runs.fetch_add(1, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(300));
                    Ok(b"done\n".to_vec())
                })
                .unwrap()
            })
        })
        .collect();
    let outcomes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(outcomes.iter().filter(|o| **o == RunOnceOutcome::Ran).count(), 1);
    assert_eq!(fs::read(&spec.marker).unwrap(), b"done\n");
    // Nobody holds them any more, so both lock files were cleaned up.
    assert!(!spec.lock.exists() && !spec.also_lock[0].exists());
    let again = run_once(&spec, &mut ctl(), || -> Result<Vec<u8>, ()> { panic!("ran twice") });
    assert_eq!(again.unwrap(), RunOnceOutcome::AlreadyDone);
}

#[test]
fn a_failed_setup_leaves_no_marker_and_the_next_caller_retries() {
    let dir = TempDir::new("run-once-fail");
    let spec = spec(&dir);
    let failed = run_once(&spec, &mut ctl(), || {
        fs::write(&spec.marker, b"half").unwrap();
        Err("clone failed")
    });
    assert!(matches!(failed, Err(RunOnceError::Setup("clone failed"))));
    assert!(!spec.marker.exists());
    let ran = run_once(&spec, &mut ctl(), || -> Result<Vec<u8>, ()> { Ok(b"ok".to_vec()) });
    assert_eq!(ran.unwrap(), RunOnceOutcome::Ran);
    assert_eq!(fs::read(&spec.marker).unwrap(), b"ok");
}

type SharedSetup = Arc<Mutex<Option<Box<dyn FnOnce(bool) -> Result<Vec<u8>, ()> + Send>>>>;

#[test]
fn a_setup_that_replaces_its_folder_never_runs_twice_at_once() {
    let dir = TempDir::new("run-once-rmtree");
    let spec = Arc::new(spec(&dir));
    let work = dir.join("work");
    let (running, overlaps, runs) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (deleted_tx, deleted_rx) = mpsc::channel::<()>();
    let setup = {
        let (running, overlaps, runs, work) = (Arc::clone(&running), Arc::clone(&overlaps), Arc::clone(&runs), work);
        move |first: bool| -> Result<Vec<u8>, ()> {
            runs.fetch_add(1, Ordering::SeqCst);
            if running.fetch_add(1, Ordering::SeqCst) > 0 {
                overlaps.fetch_add(1, Ordering::SeqCst);
            }
            // What logist's setup does to an invalid workspace: delete the folder (and the legacy lock
            // file in it), then recreate it.
            fs::remove_dir_all(&work).unwrap();
            if first {
                deleted_tx.send(()).unwrap();
            }
            thread::sleep(Duration::from_millis(300));
            fs::create_dir_all(&work).unwrap();
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(b"ready\n".to_vec())
        }
    };
    let setup: SharedSetup = Arc::new(Mutex::new(Some(Box::new(setup))));
    let call = |spec: Arc<RunOnce>, setup: SharedSetup, first: bool| {
        thread::spawn(move || {
            run_once(&spec, &mut ctl(), || {
                let f = setup.lock().unwrap().take().expect("setup ran twice");
                f(first)
            })
            .unwrap()
        })
    };
    let first = call(Arc::clone(&spec), Arc::clone(&setup), true);
    deleted_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    // Newcomers arrive while the folder (and the legacy lock file) is gone.
    let late: Vec<_> = (0..4)
        .map(|_| call(Arc::clone(&spec), Arc::clone(&setup), false))
        .collect();
    assert_eq!(first.join().unwrap(), RunOnceOutcome::Ran);
    for t in late {
        assert_eq!(t.join().unwrap(), RunOnceOutcome::DoneByOther);
    }
    assert_eq!((runs.load(Ordering::SeqCst), overlaps.load(Ordering::SeqCst)), (1, 0));
    assert!(spec.marker.exists());
}

#[test]
fn run_once_times_out_while_someone_else_holds_the_lock() {
    let dir = TempDir::new("run-once-timeout");
    let mut spec = spec(&dir);
    let holder_path = spec.lock.clone();
    let (held_tx, held_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let holder = thread::spawn(move || {
        let lock = FileLock::new(holder_path, &LockOptions::default()).unwrap();
        let _held = lock.lock().unwrap();
        held_tx.send(()).unwrap();
        done_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    });
    held_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let started = Instant::now();
    spec.wait = Wait::Until(started + Duration::from_millis(150));
    let result = run_once(&spec, &mut ctl(), || -> Result<Vec<u8>, ()> { panic!("must not run") });
    assert!(matches!(result, Err(RunOnceError::Coordination(Error::Timeout { .. }))));
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert!(!spec.marker.exists());
    done_tx.send(()).unwrap();
    holder.join().unwrap();
}

#[test]
fn a_dangling_symlink_marker_is_refused() {
    let dir = TempDir::new("run-once-symlink");
    let spec = spec(&dir);
    fs::create_dir_all(dir.join("work")).unwrap();
    std::os::unix::fs::symlink(dir.join("elsewhere"), &spec.marker).unwrap();
    let result = run_once(&spec, &mut ctl(), || -> Result<Vec<u8>, ()> { Ok(b"x".to_vec()) });
    assert!(matches!(result, Err(RunOnceError::Coordination(Error::Symlink { .. }))));
    assert!(!dir.join("elsewhere").exists());
}
