//! Task queues on PostgreSQL: rows per task (see [`super::tasks_sql`]), claims tied to a keeper
//! session per queue handle, waiters asleep on `LISTEN` and woken by the `NOTIFY` of `add` and
//! `release`.
//!
//! * **Keeper.** The first claim of a handle opens a session from the pool that holds the advisory
//!   lock `(namespace, -key)` (a fresh key from a sequence) and heartbeats like a lock holder's. Each
//!   claim row records the key; the claim counts while that lock is held. A killed process's keeper
//!   ends with its connection; a paused one's is ended by the server after the lease
//!   (`idle_session_timeout`), so its claims are free at once and its later `release` says `lost`.
//! * **Statements** run on any pooled session (one round trip each), naming the keeper's key.
//! * **Waiting.** `claim_next` tries once; if nothing is free and it may wait, a pooled session
//!   `LISTEN`s on the queue's channel, tries again (so an add between the two is not missed), and
//!   sleeps on the socket until a notification or the deadline; it wakes on its own only to send a
//!   heartbeat (every third of a lease, so the server does not end the idle session). A cancel or
//!   Ctrl-C (seen by the calling thread) wakes it through a channel of its own (`NOTIFY` from another
//!   session). A claim that races a cancel is undone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::Type;
use postgres::{Client, Row};

use super::session::{Health, Session};
use super::tasks_sql::TaskSql;
use super::{INTERRUPT_CHECK, Inner, db_error, db_message, hostname};
use crate::coord::cancel::Cancel;
use crate::coord::queue::QueueBackend;
use crate::error::{Error, Result};
use crate::lock::{Wait, WaitControl};
use crate::tasks::{ClaimOutcome, ClaimRecord, Entry, ReleaseOutcome};

/// Numbers each waiter's own channel within the process.
static NEXT_WAITER: AtomicU64 = AtomicU64::new(1);

struct Keeper {
    session: Session,
    key: i32,
}

/// A queue of the PostgreSQL backend.
pub(crate) struct PgQueue {
    inner: Arc<Inner>,
    name: String,
    sql: Arc<TaskSql>,
    keeper: Mutex<Option<Keeper>>,
    /// Tasks this handle claimed, with the keeper key they were claimed under.
    held: Mutex<HashMap<String, i32>>,
}

impl std::fmt::Debug for PgQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgQueue")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PgQueue {
    pub(crate) fn new(inner: Arc<Inner>, name: &str) -> Self {
        let sql = Arc::new(TaskSql::new(&inner.settings.schema));
        Self {
            inner,
            name: name.to_owned(),
            sql,
            keeper: Mutex::new(None),
            held: Mutex::new(HashMap::new()),
        }
    }

    fn held(&self) -> MutexGuard<'_, HashMap<String, i32>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on a pooled session; once more on a fresh one if the pooled one turns out closed (a
    /// server restart ends every idle session of the pool).
    fn run<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl Fn(&mut Client, &TaskSql) -> std::result::Result<T, postgres::Error> + Send + Sync + 'static,
    ) -> Result<T> {
        let f = Arc::new(f);
        let mut retried = false;
        loop {
            let session = self.inner.pool.checkout(&self.inner.settings, None)?;
            let (sql, job) = (Arc::clone(&self.sql), Arc::clone(&f));
            let Some(result) = session.run(self.inner.settings.lease * 4, move |client, _| job(client, &sql)) else {
                self.inner.pool.discard(session);
                return Err(Error::Coordinator {
                    op,
                    message: "no answer from the server".into(),
                });
            };
            match result {
                Ok(v) => {
                    self.inner.pool.checkin(session);
                    return Ok(v);
                }
                Err(e) => {
                    self.inner.pool.discard(session);
                    if !retried && connection_gone(&e) {
                        retried = true;
                        continue;
                    }
                    return Err(db_error(op, &e));
                }
            }
        }
    }

    /// The key of this handle's live keeper, opening one if there is none (a keeper that was lost
    /// took this handle's claims with it).
    fn keeper_key(&self) -> Result<i32> {
        let mut keeper = self.keeper.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(k) = keeper.as_ref() {
            if !k.session.health.is_lost() {
                return Ok(k.key);
            }
            if let Some(old) = keeper.take() {
                self.inner.pool.discard(old.session);
            }
        }
        let session = self.inner.pool.checkout(&self.inner.settings, None)?;
        let (sql, ns) = (Arc::clone(&self.sql), self.inner.namespace);
        let opened = session.run(self.inner.settings.lease * 4, move |client, health| {
            let sent = Instant::now();
            let key = client
                .query_typed(&sql.new_keeper, &[(&ns, Type::INT4)])
                .map(|rows| rows.first().map_or(0, |r| r.get::<_, i32>(0)))?;
            health.ok(sent);
            health.set_holding(true, None);
            Ok::<_, postgres::Error>(key)
        });
        match opened {
            Some(Ok(key)) if key != 0 => {
                *keeper = Some(Keeper { session, key });
                Ok(key)
            }
            Some(Err(e)) => {
                self.inner.pool.discard(session);
                Err(db_error("open a task queue session", &e))
            }
            _ => {
                self.inner.pool.discard(session);
                Err(Error::Coordinator {
                    op: "open a task queue session",
                    message: "no answer from the server".into(),
                })
            }
        }
    }

    /// Waits on the queue's channel for a task to claim (see the module docs).
    fn wait_next(
        &self,
        key: i32,
        by: &str,
        wait: Wait,
        ctl: &mut WaitControl<'_>,
        cancel: Option<&Cancel>,
    ) -> Result<Option<String>> {
        let deadline = wait.deadline();
        let session = self.inner.pool.checkout(&self.inner.settings, deadline)?;
        let stop = Arc::new(AtomicBool::new(false));
        let wake = format!(
            "ftq_wake_{}_{}",
            std::process::id(),
            NEXT_WAITER.fetch_add(1, Ordering::Relaxed)
        );
        let job = WaitJob {
            wake: wake.clone(),
            sql: Arc::clone(&self.sql),
            name: self.name.clone(),
            ns: self.inner.namespace,
            key,
            by: by.to_owned(),
            deadline,
            heartbeat: self.inner.settings.heartbeat(),
            stop: Arc::clone(&stop),
        };
        let rx = session.call(move |client, health| job.run(client, health));
        let stopped = loop {
            let tick = match (cancel.is_some(), ctl.interrupt_every) {
                (false, None) => None,
                (_, every) => Some(every.unwrap_or(INTERRUPT_CHECK).min(INTERRUPT_CHECK)),
            };
            let answer = match tick {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(t) => rx.recv_timeout(t),
            };
            match answer {
                Ok(result) => return self.finish_wait(session, result),
                Err(RecvTimeoutError::Disconnected) => {
                    self.inner.pool.discard(session);
                    return Err(Error::Coordinator {
                        op: "wait for a task",
                        message: "the session's thread ended".into(),
                    });
                }
                Err(RecvTimeoutError::Timeout) => {
                    if cancel.is_some_and(Cancel::is_cancelled) {
                        break Error::Cancelled {
                            path: self.name.clone().into(),
                        };
                    }
                    if let Some(check) = ctl.on_interrupt.as_mut()
                        && check()
                    {
                        break Error::Interrupted {
                            path: self.name.clone().into(),
                        };
                    }
                }
            }
        };
        stop.store(true, Ordering::SeqCst);
        self.wake(&wake);
        // The thread notices within one check; a task it claimed meanwhile goes back to the queue.
        match rx.recv_timeout(self.inner.settings.lease * 2) {
            Ok(Ok(Some(id))) => {
                let (sql, name) = (Arc::clone(&self.sql), self.name.clone());
                let undone = session.run(self.inner.settings.lease * 2, move |client, _| {
                    client.query_typed(&sql.undo, &[(&name, Type::TEXT), (&id, Type::TEXT), (&key, Type::INT4)])
                });
                match undone {
                    Some(Ok(_)) => self.inner.pool.checkin(session),
                    _ => self.inner.pool.discard(session),
                }
            }
            Ok(Ok(None)) => self.inner.pool.checkin(session),
            _ => self.inner.pool.discard(session),
        }
        Err(stopped)
    }

    /// Wakes a waiter whose `stop` is set, through its own channel, from another session (at most a
    /// second's wait for one: without it the waiter still stops at its next heartbeat).
    fn wake(&self, channel: &str) {
        let deadline = Instant::now() + std::time::Duration::from_secs(1);
        let Ok(session) = self.inner.pool.checkout(&self.inner.settings, Some(deadline)) else {
            return;
        };
        let sql = format!("NOTIFY \"{channel}\"");
        match session.run(self.inner.settings.lease, move |client, _| client.batch_execute(&sql)) {
            Some(Ok(())) => self.inner.pool.checkin(session),
            _ => self.inner.pool.discard(session),
        }
    }

    fn finish_wait(&self, session: Session, result: Result<Option<String>>) -> Result<Option<String>> {
        match result {
            Ok(found) => {
                self.inner.pool.checkin(session);
                Ok(found)
            }
            Err(e) => {
                self.inner.pool.discard(session);
                Err(e)
            }
        }
    }
}

/// The waiting half of `claim_next`, run on the waiting session's thread.
struct WaitJob {
    sql: Arc<TaskSql>,
    name: String,
    ns: i32,
    key: i32,
    by: String,
    deadline: Option<Instant>,
    heartbeat: std::time::Duration,
    stop: Arc<AtomicBool>,
    /// This waiter's own channel: a notification there after `stop` is set ends the wait.
    wake: String,
}

impl WaitJob {
    fn run(&self, client: &mut Client, health: &Health) -> Result<Option<String>> {
        let fail = |e: &postgres::Error| db_error("wait for a task", e);
        // Notifications left from an earlier use of this session would only cost a look; drop them.
        drain(client);
        let channel: String = client
            .query_typed(&self.sql.channel, &[(&self.name, Type::TEXT)])
            .map_err(|e| fail(&e))?
            .first()
            .map(|r| r.get(0))
            .unwrap_or_default();
        client
            .batch_execute(&format!("LISTEN \"{channel}\"; LISTEN \"{}\"", self.wake))
            .map_err(|e| fail(&e))?;
        let result = self.look_and_sleep(client, health);
        if let Err(e) = client.batch_execute("UNLISTEN *") {
            log::debug!(target: "ferrolock::coord", "UNLISTEN failed: {}", db_message(&e));
        }
        drain(client);
        result
    }

    fn look_and_sleep(&self, client: &mut Client, health: &Health) -> Result<Option<String>> {
        let mut last_round_trip = Instant::now();
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(None);
            }
            let sent = Instant::now();
            if let Some(id) = claim_next(client, &self.sql, &self.name, self.ns, self.key, &self.by)? {
                return Ok(Some(id));
            }
            health.ok(sent);
            last_round_trip = last_round_trip.max(sent);
            // Sleep on the socket until a notification arrives.
            loop {
                if self.stop.load(Ordering::SeqCst) {
                    return Ok(None);
                }
                let now = Instant::now();
                let left = self.deadline.map(|d| d.saturating_duration_since(now));
                if left.is_some_and(|l| l.is_zero()) {
                    return Ok(None);
                }
                let slice = left.map_or(self.heartbeat, |l| l.min(self.heartbeat));
                let heard = client.notifications().timeout_iter(slice).next().map(|n| n.is_some());
                match heard {
                    Ok(true) => break,
                    Ok(false) => {
                        if last_round_trip.elapsed() >= self.heartbeat {
                            // The server ends a session idle for a lease: a waiter must not look idle.
                            let sent = Instant::now();
                            client
                                .is_valid(self.heartbeat)
                                .map_err(|e| db_error("wait for a task", &e))?;
                            health.ok(sent);
                            last_round_trip = sent;
                        }
                    }
                    Err(e) => return Err(db_error("wait for a task", &e)),
                }
            }
            drain(client);
        }
    }
}

/// Whether `e` says the session is gone rather than that the statement failed.
fn connection_gone(e: &postgres::Error) -> bool {
    e.is_closed() || e.as_db_error().is_none() || e.code() == Some(&postgres::error::SqlState::ADMIN_SHUTDOWN)
}

fn drain(client: &mut Client) {
    let mut notes = client.notifications();
    let mut pending = notes.iter();
    while let Ok(Some(_)) = pending.next() {}
}

fn claim_next(client: &mut Client, sql: &TaskSql, name: &str, ns: i32, key: i32, by: &str) -> Result<Option<String>> {
    let (host, pid) = (hostname().to_owned(), std::process::id() as i32);
    let by = by.replace('\0', "\u{fffd}");
    let rows = client
        .query_typed(
            &sql.claim_next,
            &[
                (&name, Type::TEXT),
                (&ns, Type::INT4),
                (&key, Type::INT4),
                (&by, Type::TEXT),
                (&host, Type::TEXT),
                (&pid, Type::INT4),
            ],
        )
        .map_err(|e| db_error("claim the next task", &e))?;
    Ok(rows.first().and_then(|r| r.get::<_, Option<String>>(0)))
}

/// `(outcome, claim)` from a row `outcome, by, host, pid, since`.
fn outcome_row(row: &Row) -> (String, Option<ClaimRecord>) {
    let claim = row.get::<_, Option<String>>(1).map(|by| ClaimRecord {
        by,
        host: row.get::<_, Option<String>>(2).unwrap_or_default(),
        pid: row.get::<_, Option<i32>>(3).map_or(0, |p| u64::from(p.unsigned_abs())),
        since: row.get::<_, Option<String>>(4).unwrap_or_default(),
    });
    (row.get(0), claim)
}

fn unexpected(op: &'static str, outcome: &str) -> Error {
    Error::Coordinator {
        op,
        message: format!("unexpected answer {outcome:?} from the server (is the schema from another version?)"),
    }
}

impl QueueBackend for PgQueue {
    fn add(&self, ids: &[&str], _wait: Wait, _ctl: &mut WaitControl<'_>) -> Result<usize> {
        let (name, ids) = (
            self.name.clone(),
            ids.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
        );
        let n = self.run("add tasks", move |client, sql| {
            client
                .query_typed(&sql.add, &[(&name, Type::TEXT), (&ids, Type::TEXT_ARRAY)])
                .map(|rows| rows.first().map_or(0, |r| r.get::<_, i32>(0)))
        })?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn remove(&self, ids: &[&str], _wait: Wait, _ctl: &mut WaitControl<'_>) -> Result<usize> {
        let (name, owned) = (
            self.name.clone(),
            ids.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
        );
        let n = self.run("remove tasks", move |client, sql| {
            client
                .query_typed(&sql.remove, &[(&name, Type::TEXT), (&owned, Type::TEXT_ARRAY)])
                .map(|rows| rows.first().map_or(0, |r| r.get::<_, i64>(0)))
        })?;
        let mut held = self.held();
        for id in ids {
            held.remove(*id);
        }
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn claim(&self, id: &str, by: &str, _wait: Wait, _ctl: &mut WaitControl<'_>) -> Result<ClaimOutcome<ClaimRecord>> {
        let key = self.keeper_key()?;
        let (name, task, ns) = (self.name.clone(), id.to_owned(), self.inner.namespace);
        let (by, host, pid) = (
            by.replace('\0', "\u{fffd}"),
            hostname().to_owned(),
            std::process::id() as i32,
        );
        let row = self.run("claim a task", move |client, sql| {
            client
                .query_typed(
                    &sql.claim,
                    &[
                        (&name, Type::TEXT),
                        (&task, Type::TEXT),
                        (&ns, Type::INT4),
                        (&key, Type::INT4),
                        (&by, Type::TEXT),
                        (&host, Type::TEXT),
                        (&pid, Type::INT4),
                    ],
                )
                .map(|rows| rows.first().map(outcome_row))
        })?;
        let Some((outcome, claim)) = row else {
            return Err(unexpected("claim a task", "no row"));
        };
        Ok(match (outcome.as_str(), claim) {
            ("claimed", _) => {
                self.held().insert(id.to_owned(), key);
                ClaimOutcome::Claimed
            }
            ("taken", Some(owner)) => ClaimOutcome::Taken(owner),
            ("missing", _) => ClaimOutcome::Missing,
            ("no_queue", _) => ClaimOutcome::NoQueue,
            (other, _) => return Err(unexpected("claim a task", other)),
        })
    }

    fn claim_next(
        &self,
        by: &str,
        wait: Wait,
        block: bool,
        ctl: &mut WaitControl<'_>,
        cancel: Option<&Cancel>,
    ) -> Result<Option<String>> {
        if cancel.is_some_and(Cancel::is_cancelled) {
            return Err(Error::Cancelled {
                path: self.name.clone().into(),
            });
        }
        let key = self.keeper_key()?;
        let (name, ns, who) = (self.name.clone(), self.inner.namespace, by.to_owned());
        let first = self.run("claim the next task", move |client, sql| {
            Ok(claim_next(client, sql, &name, ns, key, &who))
        })??;
        let found = match first {
            Some(id) => Some(id),
            None if block && !matches!(wait, Wait::Try) => self.wait_next(key, by, wait, ctl, cancel)?,
            None => None,
        };
        if let Some(id) = &found {
            self.held().insert(id.clone(), key);
        }
        Ok(found)
    }

    fn release(
        &self,
        id: &str,
        by: &str,
        force: bool,
        _wait: Wait,
        _ctl: &mut WaitControl<'_>,
    ) -> Result<ReleaseOutcome<ClaimRecord>> {
        let mine = self.held().get(id).copied();
        let (name, task, ns, who) = (self.name.clone(), id.to_owned(), self.inner.namespace, by.to_owned());
        let row = self.run("release a task", move |client, sql| {
            client
                .query_typed(
                    &sql.release,
                    &[
                        (&name, Type::TEXT),
                        (&task, Type::TEXT),
                        (&ns, Type::INT4),
                        (&who, Type::TEXT),
                        (&force, Type::BOOL),
                        (&mine, Type::INT4),
                    ],
                )
                .map(|rows| rows.first().map(outcome_row))
        })?;
        let Some((outcome, claim)) = row else {
            return Err(unexpected("release a task", "no row"));
        };
        let outcome = match (outcome.as_str(), claim) {
            ("released", _) => ReleaseOutcome::Released,
            ("not_claimed", _) => ReleaseOutcome::NotClaimed,
            ("claimed_by_other", Some(owner)) => ReleaseOutcome::ClaimedByOther(owner),
            ("missing", _) => ReleaseOutcome::Missing,
            ("no_queue", _) => ReleaseOutcome::NoQueue,
            ("lost", _) => ReleaseOutcome::Lost,
            (other, _) => return Err(unexpected("release a task", other)),
        };
        if mine.is_some() && !matches!(outcome, ReleaseOutcome::ClaimedByOther(_)) {
            self.held().remove(id);
        }
        Ok(outcome)
    }

    fn tasks(&self) -> Result<Vec<Entry<ClaimRecord>>> {
        let (name, ns) = (self.name.clone(), self.inner.namespace);
        let rows = self.run("list tasks", move |client, sql| {
            client.query_typed(&sql.list, &[(&name, Type::TEXT), (&ns, Type::INT4)])
        })?;
        Ok(rows
            .iter()
            .map(|row| {
                let (id, owner) = outcome_row(row);
                Entry { id, owner }
            })
            .collect())
    }

    fn close(&self) -> Result<()> {
        self.held().clear();
        let keeper = self.keeper.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some(k) = keeper else { return Ok(()) };
        k.session.health.set_holding(false, None);
        // Unlocked before returning, so the claims are free when `close` returns (closing the
        // connection alone would free them only once the server has noticed).
        let (ns, key) = (self.inner.namespace, k.key);
        let unlocked = k.session.run(self.inner.settings.lease * 2, move |client, _| {
            client.query_typed(
                "SELECT pg_advisory_unlock($1, -$2)",
                &[(&ns, Type::INT4), (&key, Type::INT4)],
            )
        });
        // The key is the keeper's own, so an answer of any kind means it is given back.
        let unlocked = unlocked.map(|answer| answer.map(|_| true));
        self.inner
            .pool
            .return_after_unlock(k.session, unlocked, "close a task queue")
    }
}

impl Drop for PgQueue {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
