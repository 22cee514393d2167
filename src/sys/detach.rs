//! Lock descriptors a forked child lets go of the moment it is born.
//!
//! A flock lock belongs to an open file description, and `fork()` gives the child a copy of every
//! descriptor: the description, and the lock on it, lives while any process has it open. A child that
//! never touches ferrolock (a worker pool, a daemonized helper, a `subprocess` child before its `exec`)
//! would therefore keep its parent's locks after the parent died, and "crash = release" would wait for
//! the last child to exit. Forgetting inherited state lazily ([`ForkLocal`](super::ForkLocal)) cannot
//! help a child that never calls ferrolock again.
//!
//! So every descriptor through which ferrolock holds (or may later hold) a lock is a [`LockFile`], which
//! registers its number here, and a `pthread_atfork` child handler closes each registered descriptor
//! and marks its slot: the child no longer refers to the locked description, which then belongs to the
//! parent alone. Closing never unlocks (that would release the parent's lock). A `LockFile` whose slot is
//! marked does not close its number again when the child later drops it: by then the number may belong
//! to a file the child opened itself. Idle descriptors count: the parent may lock one again after the
//! fork, and the child's copy would then hold that later lock.
//!
//! The handler runs in the child between `fork` and whatever comes next, where only async-signal-safe
//! work is allowed: it reads and writes atomics in chunks that are never freed, and calls `close`.
//! Registering allocates a chunk only when every slot is taken, outside the handler.

use std::fs::File;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};

use nix::libc;

/// Slots per chunk (one chunk covers a process with up to this many lock descriptors open).
const SLOTS: usize = 64;
/// A slot no descriptor occupies.
const EMPTY: RawFd = -1;
/// A slot whose descriptor the fork handler closed (in this forked child).
const CLOSED_IN_CHILD: RawFd = -2;

struct Chunk {
    slots: [AtomicI32; SLOTS],
    /// The chunk allocated before this one (chunks form a list from the newest).
    next: *mut Chunk,
}

/// The newest chunk. Chunks are leaked on purpose: the child handler may walk them at any moment.
static CHUNKS: AtomicPtr<Chunk> = AtomicPtr::new(std::ptr::null_mut());

/// An open file through which ferrolock holds, or may later hold, a flock lock: closed in every forked
/// child at once (see the module docs). Dereferences to the [`File`].
#[derive(Debug)]
pub(crate) struct LockFile {
    file: ManuallyDrop<File>,
    slot: &'static AtomicI32,
}

impl LockFile {
    pub(crate) fn new(file: File) -> Self {
        super::process::register_fork_handler();
        let slot = claim_slot(file.as_raw_fd());
        Self {
            file: ManuallyDrop::new(file),
            slot,
        }
    }
}

impl Deref for LockFile {
    type Target = File;

    fn deref(&self) -> &File {
        &self.file
    }
}

impl AsFd for LockFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for LockFile {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Unregister before closing: a number closed while still registered could be reused by an
        // unrelated file, which a child forked in between would then close.
        if self.slot.swap(EMPTY, Ordering::AcqRel) == CLOSED_IN_CHILD {
            return; // closed by the fork handler; the number may be someone else's by now
        }
        // SAFETY: dropped exactly once, here; `file` is never used again.
        unsafe { ManuallyDrop::drop(&mut self.file) };
    }
}

fn claim_slot(fd: RawFd) -> &'static AtomicI32 {
    let mut chunk = CHUNKS.load(Ordering::Acquire);
    while !chunk.is_null() {
        // SAFETY: chunks are leaked (never freed) once published, so the pointer stays valid.
        let c: &'static Chunk = unsafe { &*chunk };
        for slot in &c.slots {
            if slot.load(Ordering::Relaxed) == EMPTY
                && slot
                    .compare_exchange(EMPTY, fd, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                return slot;
            }
        }
        chunk = c.next;
    }
    let fresh: &'static mut Chunk = Box::leak(Box::new(Chunk {
        slots: std::array::from_fn(|_| AtomicI32::new(EMPTY)),
        next: std::ptr::null_mut(),
    }));
    fresh.slots[0].store(fd, Ordering::Relaxed);
    let mut head = CHUNKS.load(Ordering::Acquire);
    loop {
        fresh.next = head;
        match CHUNKS.compare_exchange(head, std::ptr::from_mut(fresh), Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return &fresh.slots[0],
            Err(now) => head = now,
        }
    }
}

/// Runs in a forked child (from the `pthread_atfork` child handler): closes every registered descriptor
/// and marks its slot. Async-signal-safe: atomic loads and stores, and `close`.
pub(super) fn close_all_in_child() {
    let mut chunk = CHUNKS.load(Ordering::Acquire);
    while !chunk.is_null() {
        // SAFETY: published chunks are never freed (see `claim_slot`).
        let c: &Chunk = unsafe { &*chunk };
        for slot in &c.slots {
            let fd = slot.load(Ordering::Acquire);
            if fd >= 0 {
                // SAFETY: `fd` is registered, so it is open and owned by a `LockFile`, which will not close
                // it again (the slot is marked). close(2) drops the child's reference to the open file
                // description without unlocking it.
                unsafe { libc::close(fd) };
                slot.store(CLOSED_IN_CHILD, Ordering::Release);
            }
        }
        chunk = c.next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_lock_file_holds_a_slot_of_its_own_naming_its_descriptor_even_beyond_one_chunk() {
        let files: Vec<LockFile> = (0..SLOTS + 10)
            .map(|_| LockFile::new(File::open("/dev/null").unwrap()))
            .collect();
        for file in &files {
            assert_eq!(file.slot.load(Ordering::Acquire), file.as_raw_fd());
        }
        let mut slots: Vec<*const AtomicI32> = files.iter().map(|f| std::ptr::from_ref(f.slot)).collect();
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots.len(), files.len());
    }
}
