//! Which inodes this process holds, and through which lock object, for deadlock detection.
//!
//! Two lock objects on one file exclude each other (each has its own open file description). If the
//! thread that holds the file through object A then waits on object B, it waits for itself forever
//! (tox-dev/filelock#315). The registry lets B notice and fail at once instead.

use crate::sys::ForkLocal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    dev: u64,
    ino: u64,
    owner: u64,
    object: usize,
}

/// A forked child holds none of its parent's locks.
static HELD: ForkLocal<Vec<Entry>> = ForkLocal::new(Vec::new(), Vec::new);

fn with_registry<T>(f: impl FnOnce(&mut Vec<Entry>) -> T) -> T {
    f(&mut HELD.lock())
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
