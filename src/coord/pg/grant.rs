//! A lock granted by PostgreSQL: the session that holds it, kept alive by its heartbeat.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use postgres::Client;
use postgres::types::Type;

use super::Inner;
use super::session::Session;
use crate::coord::backend::{Fence, Grant};
use crate::error::{Error, Result};

/// Checks with the server that `session` (and so whatever it holds) is still alive: one round trip
/// that must come back before the server may have ended the session for idleness (at least a second
/// is allowed; a later answer still counts if it comes before that point, which the health sees).
/// Marks the session lost if not.
pub(crate) fn session_still_held(session: &Session) -> bool {
    if session.health.is_lost() {
        return false;
    }
    if Instant::now() >= session.health.valid_until() {
        session.health.lose("no answer from the server within the lease".into());
        return false;
    }
    let limit = session
        .health
        .valid_until()
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1));
    let answer = session.run(limit + Duration::from_secs(1), |client, health| {
        health.probe(client);
    });
    if answer.is_none() {
        session.health.lose("no answer from the server within the lease".into());
    }
    !session.health.is_lost()
}

pub(crate) struct PgGrant {
    inner: Arc<Inner>,
    session: Option<Session>,
    name: String,
    id: i32,
    shared: bool,
    token: Mutex<Option<u64>>,
}

impl std::fmt::Debug for PgGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgGrant")
            .field("name", &self.name)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl PgGrant {
    pub(crate) fn new(inner: Arc<Inner>, session: Session, name: String, id: i32, shared: bool) -> Self {
        Self {
            inner,
            session: Some(session),
            name,
            id,
            shared,
            token: Mutex::new(None),
        }
    }

    fn session(&self) -> &Session {
        self.session.as_ref().expect("a grant has its session until released")
    }

    fn lost(&self) -> Error {
        Error::LockLost {
            name: self.name.clone(),
            reason: self.session().health.reason(),
        }
    }

    /// Runs `f` in the holder's own session: it runs only while the session, and so the lock, lives.
    /// A failure that closed the connection marks the grant lost.
    fn in_holder_session<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut Client, &Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let session = self.session();
        if session.health.is_lost() {
            return Err(self.lost());
        }
        let inner = Arc::clone(&self.inner);
        let answer = session.run(
            self.inner.settings.lease + Duration::from_secs(5),
            move |client, health| {
                let sent = Instant::now();
                let result = f(client, &inner);
                match &result {
                    Err(Error::Coordinator { message, .. }) if client.is_closed() => {
                        health.lose(format!("{what} failed: {message}"));
                    }
                    Err(Error::Coordinator { .. }) => {}
                    _ => health.ok(sent),
                }
                result
            },
        );
        match answer {
            Some(Err(Error::Coordinator { .. })) if session.health.is_lost() => Err(self.lost()),
            Some(result) => result,
            None => {
                session.health.lose(format!("no answer to {what}"));
                Err(self.lost())
            }
        }
    }

    fn do_release(&mut self) -> Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        session.health.set_holding(false, None);
        if session.health.is_lost() {
            self.inner.pool.discard(session);
            return Ok(());
        }
        let (ns, id, shared) = (self.inner.namespace, self.id, self.shared);
        let inner = Arc::clone(&self.inner);
        let released = session.run(self.inner.settings.lease * 2, move |client, _| {
            client
                .query_typed(
                    &inner.sql.release,
                    &[(&ns, Type::INT4), (&id, Type::INT4), (&shared, Type::BOOL)],
                )
                .map(|rows| rows.first().is_some_and(|r| r.get::<_, bool>(0)))
        });
        self.inner.pool.return_after_unlock(session, released, "release")
    }
}

impl Grant for PgGrant {
    fn token(&self) -> Result<u64> {
        let mut token = self.token.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = *token {
            return Ok(t);
        }
        let session = self.session();
        if session.health.is_lost() {
            return Err(self.lost());
        }
        let inner = Arc::clone(&self.inner);
        let id = self.id;
        // Drawn in the holder's own session: it succeeds only while the session, and so the lock, lives.
        let drawn = session.run(
            self.inner.settings.lease + Duration::from_secs(5),
            move |client, health| {
                let sent = Instant::now();
                let drawn = client
                    .query_typed(&inner.sql.draw, &[(&id, Type::INT4)])
                    .map(|rows| rows.first().map(|r| r.get::<_, i64>(0)));
                match &drawn {
                    Ok(_) => health.ok(sent),
                    Err(e) => health.lose(format!("drawing a fencing token failed: {}", super::db_message(e))),
                }
                drawn
            },
        );
        match drawn {
            Some(Ok(Some(t))) => {
                *token = Some(t as u64);
                Ok(t as u64)
            }
            Some(Ok(None)) => Err(Error::Coordinator {
                op: "draw a fencing token",
                message: format!("the row of {:?} is gone (was the schema reset?)", self.name),
            }),
            Some(Err(_)) => Err(self.lost()),
            None => {
                session.health.lose("no answer while drawing a fencing token".into());
                Err(self.lost())
            }
        }
    }

    fn ensure_held(&self) -> Result<()> {
        if session_still_held(self.session()) {
            Ok(())
        } else {
            Err(self.lost())
        }
    }

    fn fenced_write(&self, value: &[u8], marker: bool) -> Result<()> {
        let token = self.token()?;
        let (id, name, value) = (self.id, self.name.clone(), value.to_vec());
        self.in_holder_session("a fenced write", move |client, inner| {
            inner.fenced_put(client, id, name, token, &value, marker)
        })
    }

    fn state_write(&self, state: &str, value: Option<&[u8]>, fence: Option<&Fence>) -> Result<bool> {
        let (state, value, fence) = (state.to_owned(), value.map(<[u8]>::to_vec), fence.cloned());
        self.in_holder_session("a state write", move |client, inner| {
            inner.state_put(client, &state, value.as_deref(), fence.as_ref())
        })
    }

    fn is_lost(&self) -> bool {
        self.session.as_ref().is_none_or(|s| s.health.is_lost())
    }

    fn release(mut self: Box<Self>) -> Result<()> {
        self.do_release()
    }
}

impl Drop for PgGrant {
    fn drop(&mut self) {
        if let Err(e) = self.do_release() {
            log::warn!(target: "ferrolock::coord", "release of {:?} failed: {e}", self.name);
        }
    }
}
