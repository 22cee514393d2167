//! Special files where a state file belongs (found by the torture suite's bad-environment matrix).

use std::sync::mpsc;
use std::time::Duration;

use crate::common::TempDir;
use ferrolock::{Error, StateFile, StateFileOptions};

/// Before the fix, reading a state file that was a FIFO opened it for blocking I/O and never returned
/// (and an edit did so while holding the lock, so every writer hung behind it).
#[test]
fn a_fifo_at_a_state_path_is_refused_at_once() {
    let dir = TempDir::new("bad-files-fifo");
    let path = dir.join("state.txt");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = path.clone();
    std::thread::spawn(move || {
        let state = StateFile::new(reader, &StateFileOptions::default()).unwrap();
        let _ = tx.send((state.read().map(|_| ()), state.edit(ferrolock::Wait::Try).map(|_| ())));
    });
    let (read, edit) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the read hung on a FIFO");
    assert!(matches!(read, Err(Error::NotRegularFile { .. })), "{read:?}");
    assert!(matches!(edit, Err(Error::NotRegularFile { .. })), "{edit:?}");
    let state = StateFile::new(&path, &StateFileOptions::default()).unwrap();
    assert!(!state.lock().is_locked(), "the failed edit released its lock");
}
