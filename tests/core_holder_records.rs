//! Holder records that outlive their writer: found by the torture suite's crash points (a holder killed
//! before or while writing its record leaves the previous record, or half of its own over it).

use std::fs::{self, File};
use std::path::PathBuf;

use ferrolock::{LockState, probe};
use nix::fcntl::{Flock, FlockArg};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrolock-holder-{name}-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    dir.join("a.lock")
}

fn record(pid: u32, host: &str) -> String {
    format!(
        "{{\"pid\":{pid},\"host\":\"{host}\",\"since\":\"2026-11-22T04:30:00Z\",\"purpose\":\"p\",\"version\":1}}\n"
    )
}

fn this_host() -> String {
    nix::unistd::gethostname().unwrap().to_string_lossy().into_owned()
}

/// A pid that certainly names no process: a child that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Holds `path` the way a legacy tool does (flock, no record) and returns what a probe sees.
fn probe_while_held_without_record(path: &PathBuf, content: &str) -> LockState {
    fs::write(path, content).unwrap();
    let file = File::open(path).unwrap();
    let held = Flock::lock(file, FlockArg::LockExclusiveNonblock).unwrap();
    let state = probe(path).unwrap();
    drop(held);
    fs::remove_dir_all(path.parent().unwrap()).unwrap();
    state
}

/// Before the fix, a leftover record of a process that no longer exists was reported as the holder
/// of a lock someone else held: `ferrolock status` and timeout messages named a dead process.
#[test]
fn a_dead_local_process_is_never_reported_as_the_holder() {
    let path = scratch("dead");
    let state = probe_while_held_without_record(&path, &record(dead_pid(), &this_host()));
    assert_eq!(state, LockState::Held(None));
}

#[test]
fn a_live_local_process_and_other_hosts_records_are_reported() {
    let path = scratch("live");
    match probe_while_held_without_record(&path, &record(std::process::id(), &this_host())) {
        LockState::Held(Some(h)) => assert_eq!(h.pid, std::process::id()),
        other => panic!("expected our own record, got {other:?}"),
    }
    // Another host's process cannot be checked from here: its record stands.
    let path = scratch("remote");
    match probe_while_held_without_record(&path, &record(dead_pid(), "some-other-host")) {
        LockState::Held(Some(h)) => assert_eq!(h.host, "some-other-host"),
        other => panic!("expected the remote record, got {other:?}"),
    }
}
