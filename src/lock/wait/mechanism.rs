//! Which mechanism wakes a sleeping waiter: chosen by `FERROLOCK_WAKE` or [`set_wake_mechanism`].

use std::sync::atomic::{AtomicU8, Ordering};

/// How a waiter that sleeps in the kernel is woken for a deadline, a cancellation or a Ctrl-C check.
///
/// Either way the lock itself wakes it: a waiter is woken by the kernel the moment the lock is
/// granted, never by a poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakeMechanism {
    /// A real-time signal, aimed at the waiting thread by a POSIX timer, interrupts its `flock`. Waits
    /// switch to [`Thread`](Self::Thread) by themselves whenever the signal cannot be relied on (the
    /// application took or ignores it, no real-time signal is free, no timer can be created). The
    /// default.
    Signal,
    /// A helper thread blocks in `flock` for the waiter, which sleeps on an eventfd: no signal at all.
    /// One more thread wake-up per hand-off than [`Signal`](Self::Signal).
    Thread,
}

/// The environment variable read (once, at the first wait that needs waking) when
/// [`set_wake_mechanism`] was not called: `signal` (the default) or `thread`.
pub(crate) const WAKE_ENV: &str = "FERROLOCK_WAKE";

const UNSET: u8 = 0;
const SIGNAL: u8 = 1;
const THREAD: u8 = 2;

static CHOSEN: AtomicU8 = AtomicU8::new(UNSET);

/// Chooses the wake mechanism for every wait that starts from now on, overriding `FERROLOCK_WAKE`.
pub fn set_wake_mechanism(mechanism: WakeMechanism) {
    CHOSEN.store(encode(mechanism), Ordering::Relaxed);
}

/// The wake mechanism waits use (the preference: with [`WakeMechanism::Signal`], a wait whose signal
/// is unusable still falls back to threads).
#[must_use]
pub fn wake_mechanism() -> WakeMechanism {
    match CHOSEN.load(Ordering::Relaxed) {
        SIGNAL => WakeMechanism::Signal,
        THREAD => WakeMechanism::Thread,
        _ => {
            let from_env = from_env();
            // A concurrent set_wake_mechanism wins over the environment.
            let _ = CHOSEN.compare_exchange(UNSET, encode(from_env), Ordering::Relaxed, Ordering::Relaxed);
            wake_mechanism()
        }
    }
}

fn encode(mechanism: WakeMechanism) -> u8 {
    match mechanism {
        WakeMechanism::Signal => SIGNAL,
        WakeMechanism::Thread => THREAD,
    }
}

fn from_env() -> WakeMechanism {
    match std::env::var_os(WAKE_ENV) {
        None => WakeMechanism::Signal,
        Some(value) => match value.to_str() {
            Some("signal" | "") => WakeMechanism::Signal,
            Some("thread") => WakeMechanism::Thread,
            _ => {
                // A typo must not go unnoticed, nor break every wait: say so and keep the default.
                log::warn!(
                    target: "ferrolock::wait",
                    "{WAKE_ENV}='{}' is not 'signal' or 'thread'; using 'signal'",
                    value.to_string_lossy().escape_debug()
                );
                WakeMechanism::Signal
            }
        },
    }
}
