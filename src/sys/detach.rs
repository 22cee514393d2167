//! Lock descriptors a forked child lets go of the moment it is born.
//!
//! A flock lock belongs to an open file description, and `fork()` gives the child a copy of every
//! descriptor: the description, and the lock on it, lives while any process has it open. A child that
//! never touches ferrolock (a worker pool, a daemonized helper, a `subprocess` child before its `exec`)
//! would therefore keep its parent's locks after the parent died, and "crash = release" would wait for
//! the last child to exit. Forgetting inherited state lazily ([`ForkLocal`](super::ForkLocal)) cannot
//! help a child that never calls ferrolock again.
//!
//! So every descriptor through which ferrolock holds (or may later hold) a lock registers here, and a
//! `pthread_atfork` child handler points each registered descriptor number at a placeholder that is no
//! lock file (`dup3` over it): the child no longer refers to the locked description, which then belongs to
//! the parent alone. The descriptor numbers stay valid and owned by the same Rust values in the child,
//! so whatever later closes them (the lazy forgetting above) closes the placeholder copy, never a
//! descriptor the child opened since. Idle descriptors count: the parent may lock one again after the
//! fork, and the child's copy would then hold that later lock.
//!
//! The handler runs in the child between `fork` and whatever comes next, where only async-signal-safe
//! work is allowed: it reads atomics in chunks that are never freed, and calls `dup3`. Registering
//! allocates a chunk only when every slot is taken, outside the handler.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};

use nix::libc;

/// Slots per chunk (one chunk covers a process with up to this many lock descriptors open).
const SLOTS: usize = 64;
/// A slot no descriptor occupies.
const EMPTY: RawFd = -1;

struct Chunk {
    slots: [AtomicI32; SLOTS],
    /// The chunk allocated before this one (chunks form a list from the newest).
    next: *mut Chunk,
}

/// The newest chunk. Chunks are leaked on purpose: the child handler may walk them at any moment.
static CHUNKS: AtomicPtr<Chunk> = AtomicPtr::new(std::ptr::null_mut());
/// The placeholder's descriptor, readable from the child handler (`EMPTY` until opened).
static PLACEHOLDER: AtomicI32 = AtomicI32::new(EMPTY);

/// Keeps one descriptor registered until dropped. Declare it before the field that owns the descriptor,
/// so that it is dropped (unregistered) before the descriptor is closed: a number closed while still
/// registered could be reused by an unrelated file that a child would then lose.
#[derive(Debug)]
pub(crate) struct DetachOnFork {
    slot: Option<&'static AtomicI32>,
}

impl DetachOnFork {
    /// Registers `fd`: a child forked from now on refers to a placeholder under that number instead.
    /// If no placeholder can be opened (no `/dev/null`, no pipes), the descriptor stays inherited as
    /// before and a warning is logged once.
    pub(crate) fn new(fd: BorrowedFd<'_>) -> Self {
        super::process::register_fork_handler();
        if placeholder().is_none() {
            return Self { slot: None };
        }
        Self {
            slot: Some(claim_slot(fd.as_raw_fd())),
        }
    }
}

impl Drop for DetachOnFork {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            slot.store(EMPTY, Ordering::Release);
        }
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

/// The placeholder descriptor (`/dev/null`, or the read end of a pipe where there is none), opened
/// once, close-on-exec.
fn placeholder() -> Option<RawFd> {
    static OPENED: OnceLock<Option<RawFd>> = OnceLock::new();
    *OPENED.get_or_init(|| {
        let fd = open_placeholder();
        match fd {
            Some(fd) => PLACEHOLDER.store(fd, Ordering::Release),
            None => log::warn!(
                target: "ferrolock::sys",
                "no placeholder descriptor (/dev/null or a pipe): forked children keep inherited lock descriptors"
            ),
        }
        fd
    })
}

fn open_placeholder() -> Option<RawFd> {
    // SAFETY: open(2) with a static NUL-terminated path; the descriptor is kept for the process's life.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd >= 0 {
        return Some(fd);
    }
    let mut ends = [EMPTY; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    // SAFETY: closing the write end we just created; only the read end is kept.
    unsafe { libc::close(ends[1]) };
    Some(ends[0])
}

/// Runs in a forked child (from the `pthread_atfork` child handler): points every registered
/// descriptor at the placeholder. Async-signal-safe: atomic loads and `dup3` only.
pub(super) fn detach_all_in_child() {
    let placeholder = PLACEHOLDER.load(Ordering::Acquire);
    if placeholder == EMPTY {
        return;
    }
    let mut chunk = CHUNKS.load(Ordering::Acquire);
    while !chunk.is_null() {
        // SAFETY: published chunks are never freed (see `claim_slot`).
        let c: &Chunk = unsafe { &*chunk };
        for slot in &c.slots {
            let fd = slot.load(Ordering::Acquire);
            if fd != EMPTY {
                // SAFETY: dup3 replaces descriptor number `fd` (registered, so open and ours) with a copy of
                // the placeholder, atomically; it touches no memory of ours. A failure leaves the
                // descriptor inherited, as it was before this handler existed.
                unsafe { libc::dup3(placeholder, fd, libc::O_CLOEXEC) };
            }
        }
        chunk = c.next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_registration_names_its_descriptor_until_dropped_even_beyond_one_chunk() {
        let files: Vec<std::fs::File> = (0..SLOTS + 10)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let guards: Vec<DetachOnFork> = files.iter().map(|f| DetachOnFork::new(f.as_fd())).collect();
        let slots: Vec<&AtomicI32> = guards.iter().map(|g| g.slot.expect("registered")).collect();
        for (slot, file) in slots.iter().zip(&files) {
            assert_eq!(slot.load(Ordering::Acquire), file.as_raw_fd());
        }
        drop(guards);
        // Other tests may reuse the slots meanwhile, but never for these numbers: the files are still open.
        for (slot, file) in slots.iter().zip(&files) {
            assert_ne!(slot.load(Ordering::Acquire), file.as_raw_fd());
        }
    }
}
