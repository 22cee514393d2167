//! The pool of sessions: one per lock held or waited for, reused after release, at most `pool_max`.

use std::sync::{Condvar, MutexGuard, PoisonError};
use std::time::Instant;

use super::config::PgSettings;
use super::session::Session;
use crate::error::{Error, Result};
use crate::sys::ForkLocal;

#[derive(Debug)]
pub(crate) struct Pool {
    /// Sessions inherited through fork belong to the parent (their sockets and heartbeat threads; the
    /// threads do not even exist in the child): a child neither uses nor closes them, so they are
    /// leaked, not dropped, and the child starts with none open.
    state: ForkLocal<State>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    idle: Vec<Session>,
    open: usize,
}

impl Pool {
    pub(crate) fn new() -> Self {
        Self {
            state: ForkLocal::forgetting(State::default(), State::default),
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

    /// Takes `session` back after the statement that gave up what it held (`answer`: whether the
    /// server says it held it, or `None` if no answer came). Kept for reuse only when that is known to
    /// have worked; otherwise closed, which frees whatever the session still holds. A connection that
    /// was already closed freed everything too, so only another error is reported.
    pub(crate) fn return_after_unlock(
        &self,
        session: Session,
        answer: Option<Result<bool, postgres::Error>>,
        op: &'static str,
    ) -> Result<()> {
        match answer {
            Some(Ok(true)) => {
                self.checkin(session);
                Ok(())
            }
            Some(Ok(false)) | None => {
                self.discard(session);
                Ok(())
            }
            Some(Err(e)) => {
                self.discard(session);
                if e.is_closed() {
                    Ok(())
                } else {
                    Err(super::db_error(op, &e))
                }
            }
        }
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

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}
