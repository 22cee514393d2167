//! Released lock descriptors, kept open for their lock object's next acquisition, a bounded number per
//! process.
//!
//! Re-opening a lock file costs a path lookup, an `open` and an `fstat` per acquisition; keeping the
//! released descriptor saves all three, which is most of an uncontended cycle. But a descriptor kept for
//! every lock object ever released lets an application that keeps many objects alive run out of
//! descriptors (`RLIMIT_NOFILE`) for its own files. So the process keeps at most [`bound`] of them, for
//! the objects released most recently: re-acquiring a recently used lock stays cheap, and a forgotten
//! object costs nothing once it has been pushed out.

use std::collections::VecDeque;
use std::sync::OnceLock;

use super::protocol::LockFd;
use crate::sys::{self, ForkLocal};

/// The most idle descriptors a process keeps, whatever its limit.
const MAX_IDLE_DESCRIPTORS: usize = 64;
/// Below [`MAX_IDLE_DESCRIPTORS`], the share of the process's descriptor limit idle descriptors may
/// take: 1/16.
const SHARE_OF_LIMIT: u64 = 16;
/// Never fewer than this, or alternating between two locks would reopen every time.
const MIN_IDLE_DESCRIPTORS: usize = 4;

/// How many idle descriptors the process keeps at most: 64, or 1/16 of the soft `RLIMIT_NOFILE` if that
/// is smaller (but at least 4). The limit is read once, at the first release.
#[must_use]
pub fn bound() -> usize {
    static BOUND: OnceLock<usize> = OnceLock::new();
    *BOUND.get_or_init(|| {
        let share = sys::open_files_soft_limit().map_or(u64::MAX, |limit| limit / SHARE_OF_LIMIT);
        usize::try_from(share)
            .unwrap_or(usize::MAX)
            .clamp(MIN_IDLE_DESCRIPTORS, MAX_IDLE_DESCRIPTORS)
    })
}

/// Idle descriptors with the id of the lock object that released them, least recently released first.
/// A forked child closes its copies (they are unlocked; closing them touches nothing of the parent's).
static IDLE: ForkLocal<VecDeque<(usize, LockFd)>> = ForkLocal::new(VecDeque::new(), VecDeque::new);

/// An idle descriptor `object` released, if one is still kept.
pub(crate) fn take(object: usize) -> Option<LockFd> {
    let mut idle = IDLE.lock();
    // A lock cycling on its own released the newest entry: check it before searching.
    if idle.back().is_some_and(|(o, _)| *o == object) {
        return idle.pop_back().map(|(_, fd)| fd);
    }
    let i = idle.iter().rposition(|(o, _)| *o == object)?;
    idle.remove(i).map(|(_, fd)| fd)
}

/// Keeps `fd` (unlocked) for `object`'s next acquisition, closing the least recently released idle
/// descriptor if the bound is reached.
pub(crate) fn put(object: usize, fd: LockFd) {
    let evicted = {
        let mut idle = IDLE.lock();
        let evicted = if idle.len() >= bound() { idle.pop_front() } else { None };
        idle.push_back((object, fd));
        evicted
    };
    drop(evicted); // closed outside the lock
}

/// Closes every idle descriptor of `object` (it is being dropped).
pub(crate) fn forget(object: usize) {
    let gone: VecDeque<(usize, LockFd)> = {
        let mut idle = IDLE.lock();
        if !idle.iter().any(|(o, _)| *o == object) {
            return;
        }
        let (gone, kept) = std::mem::take(&mut *idle).into_iter().partition(|(o, _)| *o == object);
        *idle = kept;
        gone
    };
    drop(gone);
}
