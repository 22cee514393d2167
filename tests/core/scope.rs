//! Scope claims in the pure core: records, kernel-held liveness, legacy records, cleanup, waits.
//!
//! A claim held by "another process" is simulated the way the kernel sees one: a record file locked
//! exclusively through its own open file description (flock locks belong to those, not to processes).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ferrolock::scope::{ClaimRequest, Judge, JudgeAborted, Query, ScopeDir, SystemJudge};
use ferrolock::{Error, Wait, WaitControl};

struct Fixture {
    root: PathBuf,
    dir: ScopeDir,
}

impl Fixture {
    fn new(tag: &str) -> Self {
        let root = std::env::temp_dir().join(format!("ferrolock-core-scope-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join(".running")).expect("mkdir");
        let dir = ScopeDir::new(root.join(".running")).expect("dir");
        Self { root, dir }
    }

    fn record(&self, name: &str) -> PathBuf {
        self.root.join(".running").join(format!("{name}.lock"))
    }

    fn acquire(&self, name: &str, scope: &[&str]) -> bool {
        let scope = strings(scope);
        let request = ClaimRequest {
            loop_name: name,
            scope: &scope,
            ..ClaimRequest::default()
        };
        self.dir
            .acquire(name, &request, &mut SystemJudge::new(), &mut WaitControl::default())
            .expect("acquire")
    }

    fn conflict(&self, scope: &[&str]) -> Option<String> {
        let scope = strings(scope);
        let query = Query {
            scope: &scope,
            ..Query::default()
        };
        self.dir
            .find_conflict(&query, &mut SystemJudge::new())
            .expect("scan")
            .map(|e| e.name)
    }

    /// A record written the way a legacy process writes it (no marker, no lock).
    fn legacy_record(&self, name: &str, pid: i64, scope: &str) {
        let text = format!(r#"{{"loop_name": "{name}", "scope": ["{scope}"], "pid": {pid}, "started_at": "t"}}"#);
        fs::write(self.record(name), text).expect("write");
    }

    /// A ferrolock claim held by someone else: a marked record locked through its own handle.
    fn foreign_claim(&self, name: &str, pid: i64, scope: &str) -> File {
        let text = format!(
            r#"{{"loop_name": "{name}", "scope": ["{scope}"], "pid": {pid}, "started_at": "t", "ferrolock": 1}}"#
        );
        fs::write(self.record(name), text).expect("write");
        let f = File::open(self.record(name)).expect("open");
        f.lock().expect("lock");
        f
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn me() -> i64 {
    i64::from(std::process::id())
}

fn is_locked_by_someone(path: &Path) -> bool {
    matches!(
        File::open(path).expect("open").try_lock_shared(),
        Err(fs::TryLockError::WouldBlock)
    )
}

#[test]
fn a_claim_is_a_legacy_record_held_by_a_kernel_lock() {
    let fx = Fixture::new("held");
    assert!(fx.acquire("fix", &["/repo/src"]));
    let text = fs::read_to_string(fx.record("fix")).expect("read");
    assert!(
        text.starts_with(r#"{"loop_name": "fix", "scope": ["/repo/src"], "pid": "#),
        "{text}"
    );
    assert!(text.ends_with(r#", "ferrolock": 1}"#), "{text}");
    assert!(is_locked_by_someone(&fx.record("fix")));
    assert!(fx.dir.holds("fix").expect("holds"));
    // No temporary file is left beside it, and the sentinel stays empty.
    let names: Vec<_> = fs::read_dir(fx.root.join(".running"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(fs::read(fx.root.join(".running/.acquire.lock")).expect("sentinel"), b"");
    assert!(fx.dir.release("fix").expect("release"));
    assert!(!fx.record("fix").exists());
    assert!(!fx.dir.release("fix").expect("release twice"));
}

#[test]
fn overlap_and_singleton_rules() {
    let fx = Fixture::new("rules");
    assert!(fx.acquire("a", &["/r/src"]));
    assert_eq!(fx.conflict(&["/r/src/api"]), Some("a".into()));
    assert_eq!(fx.conflict(&["/r"]), Some("a".into()));
    assert_eq!(fx.conflict(&["/r/srcx"]), None);
    assert!(!fx.acquire("b", &["/r/src/api"]));
    let (q1, q2) = (strings(&["/q1"]), strings(&["/q2"]));
    let single = |scope| ClaimRequest {
        loop_name: "auto",
        scope,
        singleton: true,
        ..ClaimRequest::default()
    };
    let (judge, ctl) = (&mut SystemJudge::new(), &mut WaitControl::default());
    assert!(fx.dir.acquire("auto-1", &single(&q1), judge, ctl).expect("a1"));
    assert!(!fx.dir.acquire("auto-2", &single(&q2), judge, ctl).expect("a2"));
    let plain = ClaimRequest {
        loop_name: "auto",
        scope: &q2,
        ..ClaimRequest::default()
    };
    assert!(fx.dir.acquire("auto-3", &plain, judge, ctl).expect("a3"));
}

#[test]
fn a_claim_ends_when_its_holder_does_even_if_its_pid_lives_on() {
    let fx = Fixture::new("crash");
    let holder = fx.foreign_claim("other", me(), "/r");
    assert_eq!(fx.conflict(&["/r/x"]), Some("other".into()));
    drop(holder); // the holder crashed; our own (live) pid is still in the record
    assert_eq!(fx.conflict(&["/r/x"]), None);
    assert!(!fx.record("other").exists(), "the dead claim's record is cleaned up");
    assert!(fx.acquire("mine", &["/r"]));
}

#[test]
fn legacy_records_are_judged_by_pid() {
    let fx = Fixture::new("legacy");
    fx.legacy_record("alive", me(), "/r/a");
    fx.legacy_record("dead", 99_999_999, "/r/b");
    assert_eq!(fx.conflict(&["/r/a"]), Some("alive".into()));
    assert_eq!(fx.conflict(&["/r/b"]), None);
    assert!(fx.record("alive").exists());
    assert!(!fx.record("dead").exists());
    let live = fx.dir.list(&mut SystemJudge::new()).expect("list");
    assert_eq!(live.len(), 1);
    assert!(!live[0].held);
}

struct Refusing;

impl Judge for Refusing {
    fn pid_alive(&mut self, _: i64) -> Result<bool, JudgeAborted> {
        Err(JudgeAborted)
    }
    fn is_ancestor(&mut self, _: i64) -> Result<bool, JudgeAborted> {
        Ok(false)
    }
    fn normalize(&mut self, path: &str) -> Result<String, JudgeAborted> {
        Ok(format!("/base/{path}"))
    }
}

#[test]
fn a_judge_can_abort_and_normalises_only_unclean_entries() {
    let fx = Fixture::new("judge");
    fx.legacy_record("l", me(), "/r");
    let scope = strings(&["/r"]);
    let query = Query {
        scope: &scope,
        ..Query::default()
    };
    assert!(matches!(
        fx.dir.find_conflict(&query, &mut Refusing),
        Err(Error::Interrupted { .. })
    ));
    fs::remove_file(fx.record("l")).expect("rm");
    let _held = fx.foreign_claim("rel", me(), "src");
    let base = strings(&["/base/src/x"]);
    let query = Query {
        scope: &base,
        ..Query::default()
    };
    assert_eq!(
        fx.dir
            .find_conflict(&query, &mut Refusing)
            .expect("scan")
            .map(|e| e.name),
        Some("rel".into())
    );
}

#[test]
fn a_live_claim_keeps_its_name_and_only_its_holder_releases_it() {
    let fx = Fixture::new("name");
    let _held = fx.foreign_claim("job", me(), "/r/src");
    assert!(!fx.acquire("job", &["/r/lib"]));
    assert!(!fx.dir.release("job").expect("release"));
    assert!(fx.record("job").exists());
    assert!(fs::read_to_string(fx.record("job")).expect("read").contains("/r/src"));
}

#[test]
fn nested_names_are_claimed_and_seen() {
    let fx = Fixture::new("nested");
    assert!(fx.acquire("group/loop", &["/r/src"]));
    assert!(fx.root.join(".running/group/loop.lock").exists());
    assert_eq!(fx.conflict(&["/r/src"]), Some("group/loop".into()));
    let names: Vec<_> = fx
        .dir
        .list(&mut SystemJudge::new())
        .expect("list")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["group/loop"]);
    assert!(fx.dir.release("group/loop").expect("release"));
}

#[test]
fn hostile_names_and_planted_files_are_refused() {
    let fx = Fixture::new("hostile");
    let scope = strings(&["/r"]);
    let request = ClaimRequest {
        loop_name: "x",
        scope: &scope,
        ..ClaimRequest::default()
    };
    for bad in ["", "../x", "/abs", "a//b", "a/../b", "a\0b"] {
        let r = fx
            .dir
            .acquire(bad, &request, &mut SystemJudge::new(), &mut WaitControl::default());
        assert!(matches!(r, Err(Error::InvalidName { .. })), "{bad:?}: {r:?}");
    }
    let victim = fx.root.join("victim");
    fs::write(&victim, "precious").expect("victim");
    std::os::unix::fs::symlink(&victim, fx.record("trap")).expect("symlink");
    let r = fx
        .dir
        .acquire("trap", &request, &mut SystemJudge::new(), &mut WaitControl::default());
    assert!(matches!(r, Err(Error::Symlink { .. })), "{r:?}");
    assert_eq!(fs::read_to_string(&victim).expect("victim"), "precious");
    assert_eq!(fx.conflict(&["/r"]), None, "the symlink is not read as a record");
}

#[test]
fn garbage_records_are_skipped_not_deleted() {
    let fx = Fixture::new("garbage");
    for (name, text) in [
        ("empty", ""),
        ("list", "[1]"),
        (
            "pid",
            r#"{"loop_name": "a", "scope": ["/r"], "pid": "x", "started_at": "t"}"#,
        ),
    ] {
        fs::write(fx.record(name), text).expect("write");
    }
    assert_eq!(fx.conflict(&["/r"]), None);
    assert!(fx.dir.list(&mut SystemJudge::new()).expect("list").is_empty());
    assert!(fx.record("empty").exists() && fx.record("list").exists() && fx.record("pid").exists());
    assert!(
        fx.acquire("pid", &["/r"]),
        "an unparseable record does not block its name"
    );
}

/// The system judge, plus a message each time a scan finds a live conflicting claim (it asks about
/// ancestry then): the moment a waiter is about to sleep.
struct Signalling {
    inner: SystemJudge,
    tx: mpsc::Sender<()>,
}

impl Judge for Signalling {
    fn pid_alive(&mut self, pid: i64) -> Result<bool, JudgeAborted> {
        self.inner.pid_alive(pid)
    }
    fn is_ancestor(&mut self, pid: i64) -> Result<bool, JudgeAborted> {
        let _ = self.tx.send(());
        self.inner.is_ancestor(pid)
    }
    fn normalize(&mut self, path: &str) -> Result<String, JudgeAborted> {
        self.inner.normalize(path)
    }
}

fn wait(fx: &Fixture, scope: &[&str], wait: Wait) -> bool {
    wait_signalling(fx, scope, wait, mpsc::channel().0)
}

fn wait_signalling(fx: &Fixture, scope: &[&str], wait: Wait, tx: mpsc::Sender<()>) -> bool {
    let scope = strings(scope);
    let query = Query {
        scope: &scope,
        ..Query::default()
    };
    let mut judge = Signalling {
        inner: SystemJudge::new(),
        tx,
    };
    fx.dir
        .wait_for_scope(&query, wait, &mut judge, &mut WaitControl::default())
        .expect("wait")
}

/// Runs `end` on another thread as soon as the waiter has seen the conflict, and checks that the wait
/// returns true.
fn wait_until_ended(fx: &Fixture, scope: &[&str], end: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let ender = thread::spawn(move || {
        rx.recv_timeout(Duration::from_secs(20))
            .expect("the waiter saw the conflict");
        end();
    });
    assert!(wait_signalling(fx, scope, Wait::after(Duration::from_secs(20)), tx));
    ender.join().expect("join");
}

#[test]
fn waits_end_when_the_holder_lets_go_and_time_out_exactly() {
    let fx = Fixture::new("wait");
    assert!(wait(&fx, &["/r"], Wait::Try));
    let holder = fx.foreign_claim("h", me(), "/r");
    assert!(!wait(&fx, &["/r"], Wait::Try));
    let started = Instant::now();
    assert!(!wait(&fx, &["/r/x"], Wait::after(Duration::from_millis(150))));
    assert!(started.elapsed() >= Duration::from_millis(150), "never early");
    wait_until_ended(&fx, &["/r/x"], move || drop(holder));
}

fn sleeper() -> Child {
    Command::new("sleep").arg("30").spawn().expect("spawn sleep")
}

#[test]
fn waits_on_legacy_records_end_on_exit_or_removal() {
    let fx = Fixture::new("legacy-wait");
    let mut child = sleeper();
    fx.legacy_record("l", i64::from(child.id()), "/r");
    wait_until_ended(&fx, &["/r"], move || {
        child.kill().expect("kill");
        child.wait().expect("reap");
    });
    assert!(!fx.record("l").exists(), "the dead record is cleaned up");

    let mut child = sleeper();
    fx.legacy_record("l", i64::from(child.id()), "/r");
    let record = fx.record("l");
    wait_until_ended(&fx, &["/r"], move || fs::remove_file(record).expect("legacy release"));
    child.kill().expect("kill");
    child.wait().expect("reap");
}
