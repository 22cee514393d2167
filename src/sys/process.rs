//! Process and thread identity: fork detection, state a forked child must not inherit, owner ids.

use std::cell::UnsafeCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once, PoisonError, TryLockError};

use nix::libc;

static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();
static ATFORK_REGISTERED: AtomicBool = AtomicBool::new(false);

extern "C" fn in_forked_child() {
    // Runs in the child right after fork(2), where only async-signal-safe work is allowed: an atomic
    // add, and closing the registered lock descriptors (see `detach`).
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
    super::detach::close_all_in_child();
}

/// Registers the child handler (once per process) that moves the fork generation on and detaches a
/// child from the lock descriptors it inherits.
pub(super) fn register_fork_handler() {
    ATFORK.call_once(|| {
        // SAFETY: registers a plain `extern "C"` function with no captured state; pthread_atfork only
        // stores the pointer. The handler is async-signal-safe (atomics and close).
        let rc = unsafe { libc::pthread_atfork(None, None, Some(in_forked_child)) };
        // pthread_atfork fails only with ENOMEM; fork detection then falls back to getpid() below, and
        // children keep inherited descriptors until they first use ferrolock.
        if rc == 0 {
            ATFORK_REGISTERED.store(true, Ordering::Release);
        } else {
            log::warn!(target: "ferrolock::sys", "pthread_atfork failed ({rc}); fork detection uses getpid");
        }
    });
}

/// A number that changes in every forked child (and never in the parent).
///
/// [`ForkLocal`] values compare it with the generation they were made in: a mismatch means they were
/// inherited through `fork()`.
pub(crate) fn fork_generation() -> u64 {
    register_fork_handler();
    let generation = FORK_GENERATION.load(Ordering::Relaxed);
    if ATFORK_REGISTERED.load(Ordering::Acquire) {
        generation
    } else {
        generation ^ (u64::from(std::process::id()) << 32)
    }
}

/// `generation` before the value's first use: whatever process uses it first owns it.
const UNTIED: u64 = u64::MAX;
/// `generation` while one thread replaces an inherited value.
const RESETTING: u64 = u64::MAX - 1;

/// A mutex-protected value that belongs to the process that made it. In a forked child the first use
/// replaces it with a fresh value, so the child forgets what it inherited: lock holds, idle
/// descriptors, claims, pending waits.
///
/// Dropping the inherited value closes its descriptors without unlocking anything, which is exactly
/// what a child must do: its copies share open file descriptions with the parent, and an unlock would
/// release the parent's locks. If another thread of the parent held the mutex at the moment of the fork
/// (that thread does not exist in the child), the value may be half-updated: it is then leaked rather
/// than dropped, and the child still gets a working, unlocked mutex instead of a deadlock.
pub(crate) struct ForkLocal<T> {
    generation: AtomicU64,
    value: UnsafeCell<Mutex<T>>,
    fresh: fn() -> T,
    /// Leak the inherited value instead of dropping it (see [`ForkLocal::forgetting`]).
    forget_inherited: bool,
}

// SAFETY: the value is only reached through the inner Mutex (as for `Mutex<T>: Sync`), except while one
// thread replaces it in a forked child, which `generation == RESETTING` keeps every other thread away from.
unsafe impl<T: Send> Sync for ForkLocal<T> {}

impl<T> ForkLocal<T> {
    /// `initial` is the value for the process that uses it first; `fresh` makes a forked child's.
    pub(crate) const fn new(initial: T, fresh: fn() -> T) -> Self {
        Self {
            generation: AtomicU64::new(UNTIED),
            value: UnsafeCell::new(Mutex::new(initial)),
            fresh,
            forget_inherited: false,
        }
    }

    /// As [`ForkLocal::new`], but a forked child leaks the inherited value instead of dropping it: for
    /// values whose drop acts on the parent's behalf (a coordinator grant's release, a database
    /// session's goodbye on a socket the parent still uses).
    pub(crate) const fn forgetting(initial: T, fresh: fn() -> T) -> Self {
        Self {
            generation: AtomicU64::new(UNTIED),
            value: UnsafeCell::new(Mutex::new(initial)),
            fresh,
            forget_inherited: true,
        }
    }

    /// Locks the value, first replacing it if it was inherited through fork. A poisoned mutex is used
    /// anyway: every holder leaves the value consistent before anything that can panic.
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        let now = fork_generation();
        loop {
            let seen = self.generation.load(Ordering::Acquire);
            if seen == now {
                break;
            }
            if seen == RESETTING {
                std::thread::yield_now();
                continue;
            }
            if self
                .generation
                .compare_exchange(seen, RESETTING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                if seen != UNTIED {
                    self.replace_inherited();
                }
                self.generation.store(now, Ordering::Release);
                break;
            }
        }
        // SAFETY: `generation == now` (observed with Acquire after the resetter's Release), so no thread
        // is replacing the mutex; shared references to it are what `Mutex` is made for.
        let mutex = unsafe { &*self.value.get() };
        mutex.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs once per fork in the child, by the one thread that moved `generation` to `RESETTING`.
    fn replace_inherited(&self) {
        let cell = self.value.get();
        // SAFETY: while `generation == RESETTING` no other thread dereferences `cell` (see `lock`), and
        // no guard from before the fork exists in the child: the only thread the child started with is
        // the one that called fork(), and nothing in this crate forks while holding one of these locks.
        // The old mutex is moved out bitwise and a new one written in its place; the old one is then
        // dropped or leaked, never used again.
        let old = unsafe {
            let old = std::ptr::read(cell);
            std::ptr::write(cell, Mutex::new((self.fresh)()));
            old
        };
        let consistent = !matches!(old.try_lock(), Err(TryLockError::WouldBlock));
        if consistent && !self.forget_inherited {
            drop(old);
        } else {
            // Locked by a parent thread caught mid-update by the fork: its contents may be torn.
            std::mem::forget(old);
        }
    }
}

impl<T> fmt::Debug for ForkLocal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForkLocal")
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Thread owner ids have this bit set, so any id below it (an address, a counter) that a caller picks
/// for [`Owner::from_raw`](crate::Owner::from_raw) can never be mistaken for a thread.
pub(crate) const THREAD_OWNER_BIT: u64 = 1 << 63;

static NEXT_THREAD_OWNER: AtomicU64 = AtomicU64::new(0);

/// An owner id for the calling thread, unique for the life of the process.
///
/// Not `pthread_self()`: glibc hands a finished thread's value to the next thread it creates, which
/// would then inherit a hold the finished thread never released (and could release it).
pub(crate) fn current_thread_owner() -> u64 {
    thread_local! {
        static OWNER: u64 = THREAD_OWNER_BIT | NEXT_THREAD_OWNER.fetch_add(1, Ordering::Relaxed);
    }
    OWNER.with(|owner| *owner)
}

/// True on the process's main thread, the only thread where `CPython` runs signal handlers (and so the
/// only thread where a wait must wake up to let Ctrl-C through). Cached per thread and fork generation
/// (after a fork, the forking thread is the child's main thread).
#[cfg_attr(not(feature = "python"), allow(dead_code))]
pub(crate) fn is_main_thread() -> bool {
    thread_local! {
        static CACHED: std::cell::Cell<Option<(u64, bool)>> = const { std::cell::Cell::new(None) };
    }
    let generation = fork_generation();
    CACHED.with(|cached| match cached.get() {
        Some((g, main)) if g == generation => main,
        _ => {
            let main = nix::unistd::gettid() == nix::unistd::getpid();
            cached.set(Some((generation, main)));
            main
        }
    })
}

/// The soft `RLIMIT_NOFILE` (how many descriptors the process may have open), if it is finite.
pub(crate) fn open_files_soft_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the struct we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) };
    (rc == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Whether a process with this pid exists: `kill(pid, 0)` sends nothing and fails with `ESRCH` only
/// when there is no such process (`EPERM` means it exists but belongs to someone else). A pid outside
/// the kernel's range, or one that would address a process group (0 or negative), does not exist.
pub(crate) fn process_exists(pid: i64) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    raw > 0
        && !matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None),
            Err(nix::errno::Errno::ESRCH)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_owners_are_never_reused() {
        let mut seen = vec![current_thread_owner()];
        for _ in 0..20 {
            // Joined threads of one stack size get the same pthread_self(); their owners must differ.
            seen.push(std::thread::spawn(current_thread_owner).join().unwrap());
        }
        assert!(seen.iter().all(|o| o & THREAD_OWNER_BIT != 0));
        let count = seen.len();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), count);
        assert_eq!(current_thread_owner(), current_thread_owner());
    }

    #[test]
    fn a_fork_local_keeps_its_value_in_the_process_that_made_it() {
        static VALUE: ForkLocal<Vec<u32>> = ForkLocal::new(Vec::new(), Vec::new);
        VALUE.lock().push(1);
        let other = std::thread::spawn(|| VALUE.lock().push(2));
        other.join().unwrap();
        assert_eq!(*VALUE.lock(), [1, 2]);
    }

    #[test]
    fn a_forked_child_gets_a_fresh_value_even_if_a_parent_thread_held_the_lock() {
        use std::sync::mpsc;
        use std::time::{Duration, Instant};

        static VALUE: ForkLocal<Vec<u32>> = ForkLocal::new(Vec::new(), Vec::new);
        VALUE.lock().push(7);
        let (held_tx, held_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let guard = VALUE.lock();
            held_tx.send(()).unwrap();
            done_rx.recv().unwrap();
            drop(guard);
        });
        held_rx.recv().unwrap();
        // SAFETY: the child allocates nothing (a fresh empty Vec does not allocate, the locked old value
        // is leaked) and leaves with _exit, so the other test threads' state copied into it is never used.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let fresh = VALUE.lock().is_empty();
            // SAFETY: _exit ends the child without running the parent's destructors or atexit handlers.
            unsafe { libc::_exit(i32::from(!fresh)) };
        }
        assert!(pid > 0, "fork failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut status = 0;
        // SAFETY: waitpid on our own child, writing into a local.
        while unsafe { libc::waitpid(pid, &raw mut status, libc::WNOHANG) } == 0 {
            if Instant::now() > deadline {
                // SAFETY: killing our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("the child deadlocked on a mutex held by a thread that does not exist in it");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child saw the parent's value"
        );
        done_tx.send(()).unwrap();
        holder.join().unwrap();
        assert_eq!(*VALUE.lock(), [7]);
    }
}
