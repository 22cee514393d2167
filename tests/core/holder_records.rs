//! Holder records that outlive their writer: found by the torture suite's crash points (a holder killed
//! before or while writing its record leaves the previous record, or half of its own over it).

use std::fs::{self, File};

use crate::common::TempDir;
use ferrolock::{LockState, probe};
use nix::fcntl::{Flock, FlockArg};

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

/// Holds a lock file containing `content` the way a legacy tool does (flock, no record) and returns
/// what a probe sees.
fn probe_while_held_without_record(tag: &str, content: &str) -> LockState {
    let dir = TempDir::new(tag);
    let path = dir.join("a.lock");
    fs::write(&path, content).unwrap();
    let held = Flock::lock(File::open(&path).unwrap(), FlockArg::LockExclusiveNonblock).unwrap();
    let state = probe(&path).unwrap();
    drop(held);
    state
}

/// Before the fix, a leftover record of a process that no longer exists was reported as the holder
/// of a lock someone else held: `ferrolock status` and timeout messages named a dead process.
#[test]
fn a_dead_local_process_is_never_reported_as_the_holder() {
    let state = probe_while_held_without_record("holder-dead", &record(dead_pid(), &this_host()));
    assert_eq!(state, LockState::Held(None));
}

/// A record is presented only when the kernel names its pid as the holder: here this process holds
/// the file, so a record naming this process stands, and one naming another live process (its parent)
/// or another host's process (which nothing here can check) is text anybody could have written.
#[test]
fn a_record_is_reported_only_when_its_writer_holds_the_lock() {
    match probe_while_held_without_record("holder-live", &record(std::process::id(), &this_host())) {
        LockState::Held(Some(h)) => assert_eq!(h.pid, std::process::id()),
        other => panic!("expected our own record, got {other:?}"),
    }
    let parent = nix::unistd::getppid().as_raw().unsigned_abs();
    let forged = probe_while_held_without_record("holder-forged", &record(parent, &this_host()));
    assert_eq!(
        forged,
        LockState::Held(None),
        "a live process that does not hold the lock"
    );
    let remote = probe_while_held_without_record("holder-remote", &record(dead_pid(), "some-other-host"));
    assert_eq!(
        remote,
        LockState::Held(None),
        "another host's record cannot be confirmed"
    );
}
