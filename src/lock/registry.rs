//! Which inodes this process holds, and through which lock object, for deadlock detection.
//!
//! Two lock objects on one file exclude each other (each has its own open file description). If the
//! thread that holds the file through object A then waits on object B, it waits for itself forever
//! (tox-dev/filelock#315). The registry lets B notice and fail at once instead.

use std::sync::{Mutex, PoisonError};

use crate::sys::fork_generation;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    dev: u64,
    ino: u64,
    owner: u64,
    object: usize,
}

struct Registry {
    /// The fork generation the entries were made in: a forked child holds none of its parent's locks.
    generation: u64,
    entries: Vec<Entry>,
}

static HELD: Mutex<Registry> = Mutex::new(Registry {
    generation: 0,
    entries: Vec::new(),
});

fn with_registry<T>(f: impl FnOnce(&mut Vec<Entry>) -> T) -> T {
    let generation = fork_generation();
    let mut reg = HELD.lock().unwrap_or_else(PoisonError::into_inner);
    if reg.generation != generation {
        reg.generation = generation;
        reg.entries.clear();
    }
    f(&mut reg.entries)
}

pub(crate) fn insert(dev: u64, ino: u64, owner: u64, object: usize) {
    with_registry(|held| {
        held.push(Entry {
            dev,
            ino,
            owner,
            object,
        });
    });
}

pub(crate) fn remove(dev: u64, ino: u64, owner: u64, object: usize) {
    let entry = Entry {
        dev,
        ino,
        owner,
        object,
    };
    with_registry(|held| {
        if let Some(i) = held.iter().position(|e| *e == entry) {
            held.swap_remove(i);
        }
    });
}

/// True if `owner` holds the inode through a lock object other than `object`.
pub(crate) fn held_elsewhere(dev: u64, ino: u64, owner: u64, object: usize) -> bool {
    with_registry(|held| {
        held.iter()
            .any(|e| e.dev == dev && e.ino == ino && e.owner == owner && e.object != object)
    })
}
