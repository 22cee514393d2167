//! Task queues from a coordinator over the `file://` backend: claims tied to their handle, no task
//! claimed twice by threads that race, bad queue files refused. (PostgreSQL and cross-process deaths are
//! tested from Python, against a real server and real processes.)

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread;

use ferrolock::coord::Coordinator;
use ferrolock::tasks::{ClaimOutcome, ReleaseOutcome};
use ferrolock::{Error, Wait, WaitControl};

use crate::common::TempDir;

fn coord(dir: &TempDir) -> Coordinator {
    Coordinator::connect(&format!("file://{}", dir.join("coord").display())).unwrap()
}

fn ctl() -> WaitControl<'static> {
    WaitControl::default()
}

#[test]
fn a_dropped_handles_claims_return_and_its_successor_takes_them() {
    let dir = TempDir::new("coord-tasks-drop");
    let c = coord(&dir);
    let first = c.tasks("q").unwrap();
    first.add(&["a", "b"], Wait::Forever, &mut ctl()).unwrap();
    assert!(first.claim("a", "one", Wait::Forever, &mut ctl()).unwrap().is_claimed());
    let second = c.tasks("q").unwrap();
    assert!(matches!(
        second.claim("a", "two", Wait::Forever, &mut ctl()).unwrap(),
        ClaimOutcome::Taken(owner) if owner.by == "one"
    ));
    drop(first);
    assert!(second.tasks().unwrap().iter().all(|e| e.owner.is_none()));
    assert_eq!(
        second
            .claim_next("two", Wait::Try, false, &mut ctl(), None)
            .unwrap()
            .as_deref(),
        Some("a"),
        "the dead claim is free again, first in queue order"
    );
}

#[test]
fn threads_with_their_own_handles_never_claim_a_task_twice() {
    let dir = TempDir::new("coord-tasks-race");
    let c = coord(&dir);
    let ids: Vec<String> = (0..60).map(|i| format!("t{i:03}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    c.tasks("q").unwrap().add(&refs, Wait::Forever, &mut ctl()).unwrap();
    let claimed = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (c, claimed) = (c.clone(), Arc::clone(&claimed));
            thread::spawn(move || {
                let q = c.tasks("q").unwrap();
                while let Some(id) = q
                    .claim_next(&format!("w{w}"), Wait::Forever, false, &mut ctl(), None)
                    .unwrap()
                {
                    claimed.lock().unwrap().push(id);
                }
                q // keep the claims alive until every worker is done
            })
        })
        .collect();
    let handles: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let claimed = claimed.lock().unwrap().clone();
    let unique: HashSet<&String> = claimed.iter().collect();
    assert_eq!(claimed.len(), ids.len());
    assert_eq!(unique.len(), ids.len(), "no task claimed twice");
    drop(handles);
}

#[test]
fn release_of_a_claim_ended_elsewhere_is_lost_and_changes_nothing() {
    let dir = TempDir::new("coord-tasks-lost");
    let c = coord(&dir);
    let (mine, admin) = (c.tasks("q").unwrap(), c.tasks("q").unwrap());
    mine.add(&["a"], Wait::Forever, &mut ctl()).unwrap();
    assert!(mine.claim("a", "me", Wait::Forever, &mut ctl()).unwrap().is_claimed());
    assert_eq!(
        admin.release("a", "admin", true, Wait::Forever, &mut ctl()).unwrap(),
        ReleaseOutcome::Released
    );
    assert!(
        admin
            .claim("a", "admin", Wait::Forever, &mut ctl())
            .unwrap()
            .is_claimed()
    );
    assert_eq!(
        mine.release("a", "me", false, Wait::Forever, &mut ctl()).unwrap(),
        ReleaseOutcome::Lost
    );
    assert_eq!(
        admin.tasks().unwrap()[0].owner.as_ref().map(|o| o.by.as_str()),
        Some("admin")
    );
}

#[test]
fn a_corrupt_queue_file_is_refused_and_kept() {
    let dir = TempDir::new("coord-tasks-corrupt");
    let c = coord(&dir);
    let q = c.tasks("q").unwrap();
    q.add(&["a"], Wait::Forever, &mut ctl()).unwrap();
    let file = dir.join("coord/.tasks/q.tasks/queue.json");
    std::fs::write(&file, b"{\"tasks\": [").unwrap();
    assert!(matches!(
        q.claim("a", "x", Wait::Forever, &mut ctl()),
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(
        q.add(&["b"], Wait::Forever, &mut ctl()),
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(std::fs::read(&file).unwrap(), b"{\"tasks\": [");
}

#[test]
fn a_claim_naming_a_path_as_its_session_is_never_followed() {
    let dir = TempDir::new("coord-tasks-hostile");
    let c = coord(&dir);
    let q = c.tasks("q").unwrap();
    q.add(&["a"], Wait::Forever, &mut ctl()).unwrap();
    let file = dir.join("coord/.tasks/q.tasks/queue.json");
    // A claim record whose session points outside the claims directory: it is taken at its word
    // (a claim), never probed or removed as a path.
    let victim = dir.join("victim.lock");
    std::fs::write(&victim, b"keep").unwrap();
    let doc = r#"{"tasks": [{"id": "a", "claim": {"by": "x", "host": "h", "pid": 1, "since": "t",
        "session": "../../../victim"}}], "version": 1}"#;
    std::fs::write(&file, doc).unwrap();
    assert!(matches!(
        q.claim("a", "y", Wait::Forever, &mut ctl()).unwrap(),
        ClaimOutcome::Taken(_)
    ));
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    assert_eq!(
        q.release("a", "y", true, Wait::Forever, &mut ctl()).unwrap(),
        ReleaseOutcome::Released
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
}

#[test]
fn queue_names_and_task_ids_are_checked() {
    let dir = TempDir::new("coord-tasks-names");
    let c = coord(&dir);
    assert!(matches!(c.tasks(""), Err(Error::InvalidName { .. })));
    let q = c.tasks("jobs/nightly").unwrap();
    for bad in ["", ".", "..", "a/b", "a\0b", "a\tb"] {
        assert!(
            matches!(
                q.add(&["ok", bad], Wait::Forever, &mut ctl()),
                Err(Error::InvalidName { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(q.tasks().unwrap().is_empty(), "a refused add adds nothing");
}
