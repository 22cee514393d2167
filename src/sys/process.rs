//! Process and thread identity: fork detection and owner ids.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use nix::libc;

static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();
static ATFORK_REGISTERED: AtomicBool = AtomicBool::new(false);

extern "C" fn bump_fork_generation() {
    // Runs in the child right after fork(2); an atomic add is async-signal-safe.
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// A number that changes in every forked child (and never in the parent).
///
/// Lock objects remember the generation they opened their descriptors in. A mismatch means the object
/// was inherited through `fork()`: its descriptors share open file descriptions with the parent, so the
/// child must close them without unlocking (an unlock would release the parent's lock) and never reuse
/// them (a flock on a shared description "succeeds" while the parent holds it).
pub(crate) fn fork_generation() -> u64 {
    ATFORK.call_once(|| {
        // SAFETY: registers a plain `extern "C"` function with no captured state; pthread_atfork only
        // stores the pointer. The handler is async-signal-safe (one atomic add).
        let rc = unsafe { libc::pthread_atfork(None, None, Some(bump_fork_generation)) };
        // pthread_atfork fails only with ENOMEM; fork detection then falls back to getpid() below.
        if rc == 0 {
            ATFORK_REGISTERED.store(true, Ordering::Release);
        } else {
            log::warn!(target: "ferrolock::sys", "pthread_atfork failed ({rc}); fork detection uses getpid");
        }
    });
    let generation = FORK_GENERATION.load(Ordering::Relaxed);
    if ATFORK_REGISTERED.load(Ordering::Acquire) {
        generation
    } else {
        generation ^ (u64::from(std::process::id()) << 32)
    }
}

/// An owner id for the calling thread: `pthread_self()`, the same value as Python's
/// `threading.get_ident()`, so Python and Rust callers on one thread share re-entrancy.
pub(crate) fn current_thread_owner() -> u64 {
    // SAFETY: pthread_self has no preconditions and cannot fail.
    let me = unsafe { libc::pthread_self() };
    me as u64
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
