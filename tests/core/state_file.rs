//! `StateFile` from Rust: locked read-modify-write, backups, removal, leftovers of crashed writers, and
//! lost-update freedom between threads (each thread is its own lock owner, so they contend exactly like
//! processes). Fault injection is in `state_faults.rs`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::TempDir;
use ferrolock::{Error, Owner, StateFile, StateFileOptions, Wait, WaitControl};

fn with_backup(dir: &TempDir) -> StateFile {
    StateFile::new(
        dir.join("state.json"),
        &StateFileOptions {
            backup_path: Some(dir.join("state.json.bak")),
            ..StateFileOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn edit_reads_under_the_lock_and_commits_with_a_hard_link_backup() {
    let dir = TempDir::new("edit");
    let state = with_backup(&dir);
    assert_eq!(state.lock().path(), dir.join("state.json.lock"));
    assert_eq!(state.read().unwrap(), None);

    let edit = state.edit(Wait::Forever).unwrap();
    assert_eq!(edit.current(), None);
    assert!(state.lock().is_locked());
    edit.commit(b"one").unwrap();
    assert!(!state.lock().is_locked(), "commit releases");
    assert!(
        !dir.join("state.json.bak").exists(),
        "nothing to back up on the first write"
    );

    let first_inode = fs::metadata(dir.join("state.json")).unwrap().ino();
    let edit = state.edit(Wait::Forever).unwrap();
    assert_eq!(edit.current(), Some(&b"one"[..]));
    edit.commit(b"two").unwrap();
    assert_eq!(state.read().unwrap().as_deref(), Some(&b"two"[..]));
    assert_eq!(state.read_backup().unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(fs::metadata(dir.join("state.json.bak")).unwrap().ino(), first_inode);
    assert!(dir.hidden().is_empty(), "{:?}", dir.hidden());
}

#[test]
fn dropping_an_edit_changes_nothing_and_releases() {
    let dir = TempDir::new("drop");
    let state = with_backup(&dir);
    state.write(b"kept", Wait::Forever).unwrap();
    {
        let edit = state.edit(Wait::Forever).unwrap();
        assert_eq!(edit.current(), Some(&b"kept"[..]));
    }
    assert!(!state.lock().is_locked());
    assert_eq!(state.read().unwrap().as_deref(), Some(&b"kept"[..]));
}

#[test]
fn a_held_edit_excludes_other_writers_until_released() {
    let dir = TempDir::new("exclude");
    let path = dir.join("state.json");
    let state = with_backup(&dir);
    let edit = state.edit(Wait::Forever).unwrap();
    let other_path = path.clone();
    let waiter = thread::spawn(move || {
        let other = StateFile::new(other_path, &StateFileOptions::default()).unwrap();
        let err = other.write(b"x", Wait::Try).unwrap_err();
        assert!(matches!(err, Error::WouldBlock { .. }), "{err}");
        let started = Instant::now();
        let err = other.write(b"x", Wait::after(Duration::from_millis(100))).unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(100));
    });
    waiter.join().unwrap();
    edit.commit(b"mine").unwrap();
    assert_eq!(state.read().unwrap().as_deref(), Some(&b"mine"[..]));
}

#[test]
fn threads_incrementing_a_counter_lose_no_update() {
    let dir = TempDir::new("counter");
    let state = Arc::new(with_backup(&dir));
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let state = Arc::clone(&state);
            thread::spawn(move || {
                for _ in 0..40 {
                    let edit = state.edit(Wait::Forever).unwrap();
                    let n: u64 = edit
                        .current()
                        .map_or(0, |b| std::str::from_utf8(b).unwrap().parse().unwrap());
                    edit.commit((n + 1).to_string().as_bytes()).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(state.read().unwrap().as_deref(), Some(&b"240"[..]));
    assert_eq!(state.read_backup().unwrap().as_deref(), Some(&b"239"[..]));
}

#[test]
fn remove_keeps_the_removed_content_as_the_backup() {
    let dir = TempDir::new("remove");
    let state = with_backup(&dir);
    assert!(!state.remove(Wait::Forever).unwrap(), "nothing to remove");
    state.write(b"v1", Wait::Forever).unwrap();
    state.write(b"v2", Wait::Forever).unwrap();
    assert!(state.remove(Wait::Forever).unwrap());
    assert_eq!(state.read().unwrap(), None);
    assert_eq!(state.read_backup().unwrap().as_deref(), Some(&b"v2"[..]));

    let plain = StateFile::new(dir.join("plain"), &StateFileOptions::default()).unwrap();
    plain.write(b"x", Wait::Forever).unwrap();
    let edit = plain.edit(Wait::Forever).unwrap();
    assert!(edit.remove().unwrap());
    assert!(!dir.join("plain").exists());
    assert!(!plain.lock().is_locked());
}

#[test]
fn set_aside_moves_the_file_and_leaves_the_backup_alone() {
    let dir = TempDir::new("aside");
    let state = with_backup(&dir);
    state.write(b"good", Wait::Forever).unwrap();
    state.write(b"garbage", Wait::Forever).unwrap();
    let owner = ferrolock::Owner::current_thread();
    let aside = dir.join("state.json.corrupt");
    let moved = state
        .set_aside_as(owner, &aside, Wait::Forever, &mut ferrolock::WaitControl::default())
        .unwrap();
    assert!(moved);
    assert_eq!(fs::read(&aside).unwrap(), b"garbage");
    assert_eq!(state.read().unwrap(), None);
    state.write(b"fresh", Wait::Forever).unwrap();
    assert_eq!(
        state.read_backup().unwrap().as_deref(),
        Some(&b"good"[..]),
        "the backup was not replaced by the set-aside file"
    );
}

#[test]
fn the_next_writer_removes_leftovers_of_crashed_writers() {
    let dir = TempDir::new("leftovers");
    let state = with_backup(&dir);
    state.write(b"v1", Wait::Forever).unwrap();
    let leftovers = [".state.json.tmp-4242-1f-0", ".state.json.bak.bak-4242-2f-1"];
    for name in leftovers {
        fs::write(dir.join(name), b"half").unwrap();
    }
    // Not ours: another file's temporaries and a directory with a matching name stay.
    fs::write(dir.join(".other.json.tmp-1-1-1"), b"x").unwrap();
    fs::create_dir(dir.join(".state.json.tmp-dir")).unwrap();
    state.write(b"v2", Wait::Forever).unwrap();
    assert_eq!(dir.hidden(), vec![".other.json.tmp-1-1-1", ".state.json.tmp-dir"]);
}

#[test]
fn a_fixed_temp_path_is_used_and_cleaned_up() {
    let dir = TempDir::new("fixed");
    let state = StateFile::new(
        dir.join("STATE.md"),
        &StateFileOptions {
            lock_path: Some(dir.join("STATE.lock")),
            backup_path: Some(dir.join("STATE.backup")),
            temp_path: Some(dir.join("STATE.tmp")),
            ..StateFileOptions::default()
        },
    )
    .unwrap();
    assert_eq!(state.temp_path(), Some(dir.join("STATE.tmp").as_path()));
    fs::write(dir.join("STATE.tmp"), b"stale from a crash").unwrap();
    state.write(b"new", Wait::Forever).unwrap();
    assert!(!dir.join("STATE.tmp").exists());
    assert!(dir.join("STATE.lock").exists());
    assert_eq!(fs::read(dir.join("STATE.md")).unwrap(), b"new");
}

#[test]
fn bad_configurations_are_rejected() {
    let dir = TempDir::new("config");
    let path = dir.join("s");
    for options in [
        StateFileOptions {
            lock_path: Some(path.clone()),
            ..StateFileOptions::default()
        },
        StateFileOptions {
            backup_path: Some(path.clone()),
            ..StateFileOptions::default()
        },
        StateFileOptions {
            temp_path: Some(path.clone()),
            ..StateFileOptions::default()
        },
    ] {
        let err = StateFile::new(&path, &options).unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{err}");
    }
    assert!(StateFile::new(Path::new(""), &StateFileOptions::default()).is_err());
    assert!(StateFile::new(Path::new("/"), &StateFileOptions::default()).is_err());
}

#[test]
fn a_directory_in_place_of_the_file_is_an_error_not_a_loss() {
    let dir = TempDir::new("isdir");
    fs::create_dir(dir.join("state.json")).unwrap();
    let state = with_backup(&dir);
    assert!(state.read().is_err());
    assert!(state.write(b"x", Wait::Forever).is_err());
    assert!(state.remove(Wait::Forever).is_err());
    assert!(dir.join("state.json").is_dir());
    assert!(!state.lock().is_locked(), "errors release the lock");
}

#[test]
fn a_nested_edit_by_the_same_owner_is_refused_from_rust_too() {
    // The outer edit's write would silently undo the inner one's: the rule lives in the core, so a Rust
    // caller gets the refusal a Python caller gets.
    let dir = TempDir::new("nested-edit");
    let state = StateFile::new(dir.join("s.txt"), &StateFileOptions::default()).unwrap();
    let outer = state.edit(Wait::Try).unwrap();
    let err = state.edit(Wait::Try).unwrap_err();
    assert!(matches!(err, Error::NestedEdit { .. }), "{err:?}");
    assert!(err.to_string().contains("already editing"), "{err}");
    // Another owner is not nested: it contends for the lock like any other process.
    let other = Owner::from_raw(0x5eed);
    let contended = state
        .edit_as(other, Wait::Try, &mut WaitControl::default())
        .unwrap_err();
    assert!(contended.is_contention(), "{contended:?}");
    outer.commit(b"outer").unwrap();
    let again = state.edit(Wait::Try).unwrap();
    assert_eq!(again.current(), Some(&b"outer"[..]));
    drop(again);
    assert!(!state.lock().is_locked());
}
