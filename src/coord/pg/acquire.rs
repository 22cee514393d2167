//! One acquisition on the PostgreSQL backend: the wait happens in the server, on the session's
//! thread; the calling thread waits for the answer while it watches for a cancel, a Ctrl-C (its
//! interrupt check) and hands the session back to the pool or to the grant.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::types::Type;

use super::grant::PgGrant;
use super::session::Session;
use super::{INTERRUPT_CHECK, Inner, db_error, hostname};
use crate::coord::backend::{Grant, LockRequest};
use crate::coord::cancel::Cancel;
use crate::error::{Error, Result};
use crate::lock::{Holder, LockMode, Wait, WaitControl};

enum Event {
    Done(Result<bool>, Option<i32>, Option<Holder>),
    Cancel,
}

pub(crate) fn acquire(
    inner_ref: &Arc<Inner>,
    req: &LockRequest<'_>,
    wait: Wait,
    ctl: &mut WaitControl<'_>,
    cancel: Option<&Cancel>,
) -> Result<Box<dyn Grant>> {
    let started = Instant::now();
    let session = inner_ref.pool.checkout(&inner_ref.settings, wait.deadline())?;
    let wait_ms: i64 = match wait {
        Wait::Try => -1,
        Wait::Forever => 0,
        // Never 0 (that would mean forever); lock_timeout is an int of milliseconds.
        Wait::Until(d) => (d.saturating_duration_since(Instant::now()).as_micros().div_ceil(1000) as i64)
            .clamp(1, i64::from(i32::MAX)),
    };
    let (tx, rx) = mpsc::channel::<Event>();
    let _hook = if let Some(c) = cancel {
        let tx = tx.clone();
        let Some(hook) = c.on_cancel(move || {
            let _ = tx.send(Event::Cancel);
        }) else {
            inner_ref.pool.checkin(session);
            return Err(Error::Cancelled { path: req.name.into() });
        };
        Some(hook)
    } else {
        None
    };
    send_request(inner_ref, &session, req, wait_ms, tx);
    let interval = ctl.interrupt_every.map(|d| d.min(INTERRUPT_CHECK));
    let stop = loop {
        let event = match interval {
            Some(every) => match rx.recv_timeout(every) {
                Ok(ev) => Some(ev),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break Some(StopWhy::Gone),
            },
            None => match rx.recv() {
                Ok(ev) => Some(ev),
                Err(_) => break Some(StopWhy::Gone),
            },
        };
        match event {
            Some(Event::Done(result, id, holder)) => {
                return finish(inner_ref, session, req, result, id, holder, started);
            }
            Some(Event::Cancel) => break Some(StopWhy::Cancelled),
            None => {
                if let Some(check) = ctl.on_interrupt.as_mut()
                    && check()
                {
                    break Some(StopWhy::Interrupted);
                }
            }
        }
    };
    abandon(inner_ref, session, &rx);
    Err(match stop {
        Some(StopWhy::Cancelled) => Error::Cancelled { path: req.name.into() },
        Some(StopWhy::Interrupted) => Error::Interrupted { path: req.name.into() },
        _ => Error::Coordinator {
            op: "acquire",
            message: "the session's thread ended".into(),
        },
    })
}

/// Sends the acquisition to the session's thread: look up (or create) the name's id, wait in the
/// server, and on failure read who holds the lock; the answer arrives on `tx`.
fn send_request(inner: &Arc<Inner>, session: &Session, req: &LockRequest<'_>, wait_ms: i64, tx: mpsc::Sender<Event>) {
    let inner = Arc::clone(inner);
    let (name, shared) = (req.name.to_owned(), req.mode == LockMode::Shared);
    let purpose = req.purpose.map(|p| p.replace('\0', "\u{fffd}"));
    let on_lost = req.on_lost.clone();
    let host = hostname().to_owned();
    let pid = std::process::id() as i32;
    let _ = session.call(move |client, health| {
        let sent = Instant::now();
        let mut id = None;
        let result = (|| {
            let lock_id = inner.lock_id(client, &name, true)?.unwrap_or_default();
            id = Some(lock_id);
            let params: [(&(dyn postgres::types::ToSql + Sync), Type); 7] = [
                (&inner.namespace, Type::INT4),
                (&lock_id, Type::INT4),
                (&shared, Type::BOOL),
                (&wait_ms, Type::INT8),
                (&host, Type::TEXT),
                (&pid, Type::INT4),
                (&purpose, Type::TEXT),
            ];
            let granted: bool = client
                .query_typed(&inner.sql.acquire, &params)
                .map_err(|e| {
                    if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
                        Error::Timeout {
                            path: name.clone().into(),
                            waited: Duration::ZERO,
                            holder: None,
                            // No kernel lock to ask: the holder row (read below) names the holder.
                            held_by: None,
                        }
                    } else {
                        db_error("acquire", &e)
                    }
                })?
                .first()
                .is_some_and(|r| r.get(0));
            if granted {
                health.ok(sent);
                health.set_holding(true, on_lost);
            }
            Ok(granted)
        })();
        let holder = match (&result, id) {
            (Ok(false) | Err(Error::Timeout { .. }), Some(id)) => inner.holder(client, id),
            _ => None,
        };
        let _ = tx.send(Event::Done(result, id, holder));
    });
}

#[derive(Debug)]
enum StopWhy {
    Cancelled,
    Interrupted,
    Gone,
}

/// Turns the answer to an acquisition into a grant or an error, returning the session to the pool
/// whenever it does not become the grant's.
fn finish(
    inner: &Arc<Inner>,
    session: Session,
    req: &LockRequest<'_>,
    result: Result<bool>,
    id: Option<i32>,
    holder: Option<Holder>,
    started: Instant,
) -> Result<Box<dyn Grant>> {
    match (result, id) {
        (Ok(true), Some(id)) => Ok(Box::new(PgGrant::new(
            Arc::clone(inner),
            session,
            req.name.to_owned(),
            id,
            req.mode == LockMode::Shared,
        ))),
        (Ok(_), _) => {
            inner.pool.checkin(session);
            Err(Error::WouldBlock {
                path: req.name.into(),
                holder: holder.map(Box::new),
                held_by: None,
            })
        }
        (Err(Error::Timeout { path, .. }), _) => {
            inner.pool.checkin(session);
            Err(Error::Timeout {
                path,
                waited: started.elapsed(),
                holder: holder.map(Box::new),
                held_by: None,
            })
        }
        (Err(e), _) => {
            // The lock may have been granted before the statement failed: close the session,
            // which frees whatever it held.
            inner.pool.discard(session);
            Err(e)
        }
    }
}

/// Ends a wait that was cancelled or interrupted: cancels the query on the server, waits for its
/// answer, and gives back a grant that raced the cancel. The session is reused only if it
/// provably holds nothing afterwards; otherwise it is closed, which frees everything it held.
fn abandon(inner: &Arc<Inner>, session: Session, rx: &mpsc::Receiver<Event>) {
    session.cancel_query(&inner.settings);
    let limit = inner.settings.lease * 2;
    let answered = loop {
        match rx.recv_timeout(limit) {
            Ok(Event::Done(..)) => break true,
            Ok(Event::Cancel) => {}
            Err(_) => break false,
        }
    };
    session.health.set_holding(false, None);
    if !answered {
        inner.pool.discard(session);
        return;
    }
    let cleaned = session.run(limit, |client, _| {
        client
            .simple_query("SELECT pg_advisory_unlock_all()")
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    match cleaned {
        Some(Ok(())) => inner.pool.checkin(session),
        // A late cancel can hit the cleanup itself: then closing is the way to free the lock.
        _ => inner.pool.discard(session),
    }
}
