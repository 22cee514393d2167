//! Scope claims on PostgreSQL (see [`super::claims_sql`] for the rows and why they cannot overlap).
//!
//! A claim owns one pooled session, as a lock grant does: the session holds the claim's advisory key,
//! its heartbeat keeps the lease, and its end (crash, lease expiry, server restart) ends the claim.
//! A blocked claimer waits in the server, in a shared lock on the conflicting claim's key, and tries
//! again when that claim ends: never a poll. The wait runs on the session's thread while the caller
//! watches for a cancel or Ctrl-C; an abandoned wait cancels the query and closes the session, which
//! frees a claim that raced the cancel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use postgres::Client;
use postgres::error::SqlState;
use postgres::types::Type;

use super::claims_sql::ClaimSql;
use super::grant::session_still_held;
use super::session::{Health, Session};
use super::{INTERRUPT_CHECK, Inner, PgBackend, db_error, holder_from_row, hostname};
use crate::coord::backend::LostCallback;
use crate::coord::cancel::Cancel;
use crate::coord::claims::{ClaimBackend, ClaimGrant, ClaimInfo, ClaimPath, ClaimRequest, describe};
use crate::error::{Error, Result};
use crate::lock::{LockMode, Wait, WaitControl};

/// How often an abandoned wait repeats its cancel request until the session's thread answers (a
/// cancel that arrives between two statements cancels nothing).
const CANCEL_REPEAT: Duration = Duration::from_millis(100);

impl Inner {
    /// Claim keys live in their own advisory namespace, next to the locks' one.
    fn claims_ns(&self) -> i32 {
        self.namespace.wrapping_add(1)
    }
}

/// The project, then each component preceded by `\x01`.
fn key(project: &str, path: &ClaimPath) -> String {
    let mut k = project.to_owned();
    for c in path.components() {
        k.push('\u{1}');
        k.push_str(c);
    }
    k
}

/// What a job on the session's thread does.
struct Plan {
    sql: ClaimSql,
    ns: i32,
    project: String,
    keys: Vec<String>,
    paths: Vec<String>,
    shared: bool,
    /// Claim (`true`) or only wait until nothing conflicts.
    claim: bool,
    purpose: Option<String>,
    on_lost: Option<LostCallback>,
    wait: Wait,
    abandoned: Arc<AtomicBool>,
}

enum Outcome {
    Claimed(i32),
    Free,
    Blocked { other: Option<ClaimInfo> },
}

fn infos(project: &str, rows: &[postgres::Row]) -> Vec<ClaimInfo> {
    let mut out: Vec<(i32, ClaimInfo)> = Vec::new();
    for row in rows {
        let id: i32 = row.get(0);
        if out.last().is_none_or(|(last, _)| *last != id) {
            let mode = if row.get::<_, bool>(2) {
                LockMode::Shared
            } else {
                LockMode::Exclusive
            };
            out.push((
                id,
                ClaimInfo {
                    project: project.to_owned(),
                    paths: Vec::new(),
                    mode,
                    holder: holder_from_row(3)(row),
                },
            ));
        }
        out.last_mut().expect("pushed above").1.paths.push(row.get(1));
    }
    out.into_iter().map(|(_, info)| info).collect()
}

fn info_by_id(client: &mut Client, plan: &Plan, id: i32) -> Option<ClaimInfo> {
    let rows = client.query_typed(&plan.sql.by_id, &[(&id, Type::INT4)]).ok()?;
    infos(&plan.project, &rows).into_iter().next()
}

/// Claims (or waits for a free scope), waiting in the server for each conflicting claim to end.
fn work(client: &mut Client, health: &Health, plan: &Plan) -> Result<Outcome> {
    let deadline = plan.wait.deadline();
    loop {
        if plan.abandoned.load(Ordering::SeqCst) {
            return Err(Error::Cancelled {
                path: plan.project.clone().into(),
            });
        }
        let sent = Instant::now();
        let other: i32 = if plan.claim {
            let pid = std::process::id() as i32;
            let host = hostname();
            let params: [(&(dyn postgres::types::ToSql + Sync), Type); 8] = [
                (&plan.ns, Type::INT4),
                (&plan.project, Type::TEXT),
                (&plan.keys, Type::TEXT_ARRAY),
                (&plan.paths, Type::TEXT_ARRAY),
                (&plan.shared, Type::BOOL),
                (&host, Type::TEXT),
                (&pid, Type::INT4),
                (&plan.purpose, Type::TEXT),
            ];
            let r: i32 = client
                .query_typed(&plan.sql.claim, &params)
                .map_err(|e| db_error("claim", &e))?
                .first()
                .map_or(0, |r| r.get(0));
            if r > 0 {
                health.ok(sent);
                health.set_holding(true, plan.on_lost.clone());
                return Ok(Outcome::Claimed(r));
            }
            if r == 0 {
                continue; // a concurrent claim won a race: look again
            }
            -r
        } else {
            let r: i32 = client
                .query_typed(
                    &plan.sql.first_live,
                    &[
                        (&plan.ns, Type::INT4),
                        (&plan.keys, Type::TEXT_ARRAY),
                        (&plan.shared, Type::BOOL),
                    ],
                )
                .map_err(|e| db_error("find a conflicting claim", &e))?
                .first()
                .map_or(0, |r| r.get(0));
            if r == 0 {
                return Ok(Outcome::Free);
            }
            r
        };
        let wait_ms: i64 = match (plan.wait, deadline) {
            (Wait::Try, _) => {
                return Ok(Outcome::Blocked {
                    other: info_by_id(client, plan, other),
                });
            }
            (_, None) => 0,
            (_, Some(d)) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(Outcome::Blocked {
                        other: info_by_id(client, plan, other),
                    });
                }
                (left.as_micros().div_ceil(1000) as i64).clamp(1, i64::from(i32::MAX))
            }
        };
        let waited = client.query_typed(
            &plan.sql.wait,
            &[(&plan.ns, Type::INT4), (&other, Type::INT4), (&wait_ms, Type::INT8)],
        );
        match waited {
            Ok(_) => {}
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                return Ok(Outcome::Blocked {
                    other: info_by_id(client, plan, other),
                });
            }
            Err(e) => return Err(db_error("wait for a claim", &e)),
        }
    }
}

enum Event {
    Done(Result<Outcome>),
    Cancel,
}

/// Runs `plan` on a pooled session while the calling thread watches `ctl` and `cancel`.
fn run(
    inner: &Arc<Inner>,
    plan: Plan,
    what: &str,
    ctl: &mut WaitControl<'_>,
    cancel: Option<&Cancel>,
) -> Result<(Session, Outcome)> {
    let session = inner.pool.checkout(&inner.settings, plan.wait.deadline())?;
    let abandoned = Arc::clone(&plan.abandoned);
    let (tx, rx) = mpsc::channel::<Event>();
    let _hook = match cancel {
        Some(c) => {
            let tx = tx.clone();
            let Some(hook) = c.on_cancel(move || {
                let _ = tx.send(Event::Cancel);
            }) else {
                inner.pool.checkin(session);
                return Err(Error::Cancelled { path: what.into() });
            };
            Some(hook)
        }
        None => None,
    };
    let _ = session.call(move |client, health| {
        let _ = tx.send(Event::Done(work(client, health, &plan)));
    });
    let interval = ctl.interrupt_every.map(|d| d.min(INTERRUPT_CHECK));
    let stop = loop {
        let event = match interval {
            Some(every) => match rx.recv_timeout(every) {
                Ok(ev) => Some(ev),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break None,
            },
            None => match rx.recv() {
                Ok(ev) => Some(ev),
                Err(_) => break None,
            },
        };
        match event {
            Some(Event::Done(Ok(outcome))) => return Ok((session, outcome)),
            Some(Event::Done(Err(e))) => {
                // The session may hold a claim key the statement took before failing: closing it
                // frees whatever it holds.
                inner.pool.discard(session);
                return Err(e);
            }
            Some(Event::Cancel) => break Some(Error::Cancelled { path: what.into() }),
            None => {
                if let Some(check) = ctl.on_interrupt.as_mut()
                    && check()
                {
                    break Some(Error::Interrupted { path: what.into() });
                }
            }
        }
    };
    abandoned.store(true, Ordering::SeqCst);
    let until = Instant::now() + inner.settings.lease * 2;
    while Instant::now() < until {
        session.cancel_query(&inner.settings);
        match rx.recv_timeout(CANCEL_REPEAT) {
            Ok(Event::Done(_)) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Ok(Event::Cancel) | Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    // Whatever the answer was, closing the session frees a claim that raced the cancel.
    session.health.set_holding(false, None);
    inner.pool.discard(session);
    Err(stop.unwrap_or_else(|| Error::Coordinator {
        op: "claim",
        message: "the session's thread ended".into(),
    }))
}

impl PgBackend {
    fn plan(&self, project: &str, paths: &[ClaimPath], mode: LockMode, claim: bool, wait: Wait) -> Plan {
        Plan {
            sql: ClaimSql::new(&self.inner.settings.schema),
            ns: self.inner.claims_ns(),
            project: project.to_owned(),
            keys: paths.iter().map(|p| key(project, p)).collect(),
            paths: paths.iter().map(ClaimPath::display).collect(),
            shared: mode == LockMode::Shared,
            claim,
            purpose: None,
            on_lost: None,
            wait,
            abandoned: Arc::new(AtomicBool::new(false)),
        }
    }
}

fn blocked_error(what: String, wait: Wait, other: Option<ClaimInfo>, waited: Duration) -> Error {
    let holder = other.map(|o| Box::new(o.holder));
    if wait == Wait::Try {
        Error::WouldBlock {
            path: what.into(),
            holder,
            held_by: None,
        }
    } else {
        Error::Timeout {
            path: what.into(),
            waited,
            holder,
            held_by: None,
        }
    }
}

impl ClaimBackend for PgBackend {
    fn claim(
        &self,
        req: &ClaimRequest<'_>,
        wait: Wait,
        ctl: &mut WaitControl<'_>,
        cancel: Option<&Cancel>,
    ) -> Result<Box<dyn ClaimGrant>> {
        let started = Instant::now();
        let what = req.describe();
        let mut plan = self.plan(req.project, req.paths, req.mode, true, wait);
        plan.purpose = req.purpose.map(|p| p.replace('\0', "\u{fffd}"));
        plan.on_lost.clone_from(&req.on_lost);
        let (session, outcome) = run(&self.inner, plan, &what, ctl, cancel)?;
        match outcome {
            Outcome::Claimed(id) => Ok(Box::new(PgClaim {
                inner: Arc::clone(&self.inner),
                session: Some(session),
                id,
                what,
            })),
            Outcome::Blocked { other, .. } => {
                self.inner.pool.checkin(session);
                Err(blocked_error(what, wait, other, started.elapsed()))
            }
            Outcome::Free => {
                self.inner.pool.checkin(session);
                Err(Error::Coordinator {
                    op: "claim",
                    message: "the server neither granted nor refused the claim".into(),
                })
            }
        }
    }

    fn find_conflict(&self, project: &str, paths: &[ClaimPath], mode: LockMode) -> Result<Option<ClaimInfo>> {
        let plan = self.plan(project, paths, mode, false, Wait::Try);
        self.with_session("find a conflicting claim", move |client, _| {
            let id: i32 = client
                .query_typed(
                    &plan.sql.first_live,
                    &[
                        (&plan.ns, Type::INT4),
                        (&plan.keys, Type::TEXT_ARRAY),
                        (&plan.shared, Type::BOOL),
                    ],
                )
                .map_err(|e| db_error("find a conflicting claim", &e))?
                .first()
                .map_or(0, |r| r.get(0));
            Ok(if id == 0 { None } else { info_by_id(client, &plan, id) })
        })
    }

    fn wait_for_scope(
        &self,
        project: &str,
        paths: &[ClaimPath],
        mode: LockMode,
        wait: Wait,
        ctl: &mut WaitControl<'_>,
        cancel: Option<&Cancel>,
    ) -> Result<bool> {
        let plan = self.plan(project, paths, mode, false, wait);
        let (session, outcome) = run(&self.inner, plan, &describe(project, paths), ctl, cancel)?;
        self.inner.pool.checkin(session);
        Ok(matches!(outcome, Outcome::Free))
    }

    fn live_claims(&self, project: &str) -> Result<Vec<ClaimInfo>> {
        let (sql, ns, project) = (
            ClaimSql::new(&self.inner.settings.schema),
            self.inner.claims_ns(),
            project.to_owned(),
        );
        self.with_session("list claims", move |client, _| {
            let rows = client
                .query_typed(&sql.live, &[(&ns, Type::INT4), (&project, Type::TEXT)])
                .map_err(|e| db_error("list claims", &e))?;
            Ok(infos(&project, &rows))
        })
    }
}

/// A held claim: the session that holds its key, kept alive by its heartbeat.
struct PgClaim {
    inner: Arc<Inner>,
    session: Option<Session>,
    id: i32,
    what: String,
}

impl std::fmt::Debug for PgClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgClaim")
            .field("id", &self.id)
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl PgClaim {
    fn lost(&self, session: &Session) -> Error {
        Error::LockLost {
            name: self.what.clone(),
            reason: session.health.reason(),
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
        let (sql, ns, id) = (
            ClaimSql::new(&self.inner.settings.schema),
            self.inner.claims_ns(),
            self.id,
        );
        let released = session.run(self.inner.settings.lease * 2, move |client, _| {
            client
                .query_typed(&sql.release, &[(&ns, Type::INT4), (&id, Type::INT4)])
                .map(|rows| rows.first().is_some_and(|r| r.get::<_, bool>(0)))
        });
        self.inner
            .pool
            .return_after_unlock(session, released, "release a claim")
    }
}

impl ClaimGrant for PgClaim {
    fn ensure_held(&self) -> Result<()> {
        let session = self.session.as_ref().expect("a claim has its session until released");
        if session_still_held(session) {
            Ok(())
        } else {
            Err(self.lost(session))
        }
    }

    fn is_lost(&self) -> bool {
        self.session.as_ref().is_none_or(|s| s.health.is_lost())
    }

    fn release(mut self: Box<Self>) -> Result<()> {
        self.do_release()
    }
}

impl Drop for PgClaim {
    fn drop(&mut self) {
        if let Err(e) = self.do_release() {
            log::warn!(target: "ferrolock::coord", "release of claim {} failed: {e}", self.what);
        }
    }
}
