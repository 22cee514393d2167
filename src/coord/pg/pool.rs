//! The pool of sessions: one per lock held or waited for, reused after release, at most `pool_max`.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use super::config::PgSettings;
use super::session::Session;
use crate::error::{Error, Result};
use crate::sys;

#[derive(Debug)]
pub(crate) struct Pool {
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Debug)]
struct State {
    generation: u64,
    idle: Vec<Session>,
    open: usize,
}

impl Pool {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                generation: sys::fork_generation(),
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    /// An idle session, or a new one while fewer than `pool_max` are open, else waits for one (until
    /// `deadline`). Idle sessions older than half a lease are closed rather than reused: the server
    /// ends an idle session after one lease, and a session that has not been heard from is not trusted.
    pub(crate) fn checkout(&self, settings: &PgSettings, deadline: Option<Instant>) -> Result<Session> {
        let mut st = self.state();
        loop {
            while let Some(session) = st.idle.pop() {
                if session.idle_since.elapsed() < settings.lease / 2 && !session.health.is_lost() {
                    return Ok(session);
                }
                st.open -= 1;
            }
            if st.open < settings.pool_max {
                st.open += 1;
                drop(st);
                return Session::connect(settings).inspect_err(|_| self.discard_count());
            }
            let timed_out = match deadline {
                None => {
                    st = self.freed.wait(st).unwrap_or_else(PoisonError::into_inner);
                    false
                }
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    let (guard, res) = self
                        .freed
                        .wait_timeout(st, left)
                        .unwrap_or_else(PoisonError::into_inner);
                    st = guard;
                    res.timed_out() && st.idle.is_empty() && st.open >= settings.pool_max
                }
            };
            if timed_out {
                return Err(Error::Coordinator {
                    op: "coordinator pool",
                    message: format!(
                        "all {} sessions of this process are in use (one per lock held or waited for; raise pool_max)",
                        settings.pool_max
                    ),
                });
            }
        }
    }

    /// Returns a healthy session that holds nothing.
    pub(crate) fn checkin(&self, mut session: Session) {
        if session.health.is_lost() {
            self.discard(session);
            return;
        }
        session.idle_since = Instant::now();
        let mut st = self.state();
        st.idle.push(session);
        drop(st);
        self.freed.notify_one();
    }

    /// Closes a session (the server then frees anything it held).
    pub(crate) fn discard(&self, session: Session) {
        drop(session);
        self.discard_count();
    }

    fn discard_count(&self) {
        let mut st = self.state();
        st.open = st.open.saturating_sub(1);
        drop(st);
        self.freed.notify_one();
    }

    /// The state, after forgetting sessions inherited through fork: their sockets and threads belong
    /// to the parent (the threads do not even exist here), so the child neither uses nor closes them.
    fn state(&self) -> MutexGuard<'_, State> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let generation = sys::fork_generation();
        if st.generation != generation {
            for session in st.idle.drain(..) {
                std::mem::forget(session);
            }
            st.open = 0;
            st.generation = generation;
        }
        st
    }
}
