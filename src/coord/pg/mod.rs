//! The PostgreSQL backend: session advisory locks with server-side waiting.
//!
//! * **Keys.** Every lock is `pg_advisory_lock(namespace, id)`, the two-`int4` form, where `id` is
//!   the name's row in `locks` (names map to ids exactly, through a unique column, never by hashing).
//!   PostgreSQL keeps the one-`bigint` form apart from the two-key form, so an application's own
//!   `pg_advisory_lock(bigint)` locks can never clash; applications that use the two-key form must
//!   avoid the namespace (recorded in `meta`, `0x464C6B31` unless the `namespace=` URL parameter chose
//!   another when the schema was created).
//! * **Sessions.** Advisory locks are re-entrant per session and cannot move between sessions, so a
//!   grant owns one session (see [`session`]) from a pool (see [`pool`]) until it is released.
//! * **Waiting** happens in the server, bounded by the exact `lock_timeout`. A cancel or Ctrl-C
//!   cancels the query on the server; a grant that raced the cancel is undone.
//! * **Leases.** See [`config`] and [`session`].

mod config;
mod grant;
mod pool;
mod raw;
mod schema;
mod session;

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use postgres::Client;
use postgres::error::SqlState;
use postgres::types::Type;

use super::backend::{Backend, Grant, LockRequest, LockStatus, StatusHolder};
use super::cancel::Cancel;
use crate::error::{Error, Result};
use crate::lock::{Holder, LockMode, Wait, WaitControl};
use config::PgSettings;
use grant::PgGrant;
use pool::Pool;
pub use raw::RawAdvisory;
use session::Session;


/// How often a waiting thread wakes to run the caller's interrupt check (Ctrl-C in Python): the
/// signal cannot interrupt a wait for the server's answer, so this bounds how late it is noticed.
const INTERRUPT_CHECK: Duration = Duration::from_millis(50);

/// The PostgreSQL backend.
#[derive(Debug)]
pub struct PgBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    settings: PgSettings,
    pool: Pool,
    namespace: i32,
    ids: Mutex<HashMap<String, i32>>,
    sql: Sql,
}

/// The statements, with the schema name filled in once.
#[derive(Debug)]
struct Sql {
    acquire: String,
    release: String,
    draw: String,
    fenced_put: String,
    holder: String,
    status: String,
    fenced_get: String,
    done_get: String,
    id_get: String,
    id_put: String,
}

impl Sql {
    fn new(s: &str) -> Self {
        let since = "to_char(h.since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
        let locks = "l.locktype = 'advisory' AND l.objsubid = 2 AND l.classid = ($1::integer)::oid \
                     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";
        Self {
            acquire: format!("SELECT {s}.acquire($1, $2, $3, $4, $5, $6, $7)"),
            release: format!("SELECT {s}.release($1, $2, $3)"),
            draw: format!("SELECT {s}.draw_token($1)"),
            fenced_put: format!("SELECT {s}.fenced_put($1, $2, $3, $4)"),
            holder: format!(
                "SELECT h.client_pid, h.host, {since}, h.purpose FROM pg_locks l \
                 JOIN {s}.holders h ON h.backend_pid = l.pid AND h.lock_id = $2 \
                 WHERE {locks} AND l.objid = ($2::integer)::oid AND l.granted ORDER BY h.since LIMIT 1"
            ),
            status: format!(
                "SELECT n.name, l.mode, l.granted, h.client_pid, h.host, {since}, h.purpose FROM pg_locks l \
                 JOIN {s}.locks n ON l.objid = n.id::oid \
                 LEFT JOIN {s}.holders h ON h.backend_pid = l.pid AND h.lock_id = n.id \
                 WHERE {locks} ORDER BY n.name, h.since"
            ),
            fenced_get: format!(
                "SELECT f.token, f.value FROM {s}.fenced f JOIN {s}.locks n ON n.id = f.lock_id WHERE n.name = $1"
            ),
            done_get: format!("SELECT d.marker FROM {s}.done d JOIN {s}.locks n ON n.id = d.lock_id WHERE n.name = $1"),
            id_get: format!("SELECT id FROM {s}.locks WHERE name = $1"),
            id_put: format!("INSERT INTO {s}.locks (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id"),
        }
    }
}

/// A PostgreSQL error as the core's error.
pub(crate) fn db_error(op: &'static str, e: &postgres::Error) -> Error {
    let message = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    };
    let message = if e.code() == Some(&SqlState::TOO_MANY_CONNECTIONS) {
        format!("{message}: the server has no free connection slot (max_connections); lower pool_max")
    } else {
        message
    };
    Error::Coordinator { op, message }
}

impl PgBackend {
    /// Connects with `url` (`postgresql://...`), creating or migrating the schema on first use.
    ///
    /// # Errors
    /// [`Error::Coordinator`] for a bad URL, an unreachable server, a pooler that breaks session
    /// settings, or a schema that cannot be created.
    pub fn connect(url: &str) -> Result<Self> {
        let settings = PgSettings::parse(url)?;
        let pool = Pool::new();
        let session = pool.checkout(&settings, None)?;
        let (schema, ns, redacted) = (settings.schema.clone(), settings.namespace, settings.url.clone());
        let limit = settings.config.get_connect_timeout().copied().unwrap_or(Duration::from_secs(10)) * 3;
        let namespace = session
            .run(limit, move |client, _| schema::ensure(client, &schema, ns, &redacted))
            .unwrap_or_else(|| {
                Err(Error::Coordinator {
                    op: "coordinator schema",
                    message: "no answer from the server".into(),
                })
            });
        match namespace {
            Ok(namespace) => {
                pool.checkin(session);
                let sql = Sql::new(&settings.schema);
                Ok(Self {
                    inner: Arc::new(Inner {
                        settings,
                        pool,
                        namespace,
                        ids: Mutex::new(HashMap::new()),
                        sql,
                    }),
                })
            }
            Err(e) => {
                pool.discard(session);
                Err(e)
            }
        }
    }

    /// The SQL that creates the coordinator's schema (for an administrator to apply by hand).
    #[must_use]
    pub fn schema_sql(schema: &str) -> String {
        schema::create_sql(schema, config::DEFAULT_NAMESPACE)
    }

    /// Runs `f` on a pooled session and returns the session.
    fn with_session<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Client, &Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let session = self.inner.pool.checkout(&self.inner.settings, None)?;
        let inner = Arc::clone(&self.inner);
        let limit = self.inner.settings.lease * 4;
        match session.run(limit, move |client, _| f(client, &inner)) {
            Some(result) => {
                self.inner.pool.checkin(session);
                result
            }
            None => {
                self.inner.pool.discard(session);
                Err(Error::Coordinator {
                    op,
                    message: "no answer from the server".into(),
                })
            }
        }
    }
}

impl Inner {
    /// The id of `name`, creating its row if `create` (the only durable write of a first lock).
    fn lock_id(&self, client: &mut Client, name: &str, create: bool) -> Result<Option<i32>> {
        if let Some(id) = self.ids.lock().unwrap_or_else(PoisonError::into_inner).get(name) {
            return Ok(Some(*id));
        }
        let mut id = self.query_id(client, &self.sql.id_get, name)?;
        if id.is_none() && create {
            id = self.query_id(client, &self.sql.id_put, name)?;
            if id.is_none() {
                id = self.query_id(client, &self.sql.id_get, name)?; // a concurrent first use won
            }
        }
        if let Some(id) = id {
            self.ids.lock().unwrap_or_else(PoisonError::into_inner).insert(name.to_owned(), id);
        }
        Ok(id)
    }

    fn query_id(&self, client: &mut Client, sql: &str, name: &str) -> Result<Option<i32>> {
        client
            .query_typed(sql, &[(&name, Type::TEXT)])
            .map(|rows| rows.first().map(|r| r.get(0)))
            .map_err(|e| db_error("look up a lock name", &e))
    }

    fn holder(&self, client: &mut Client, id: i32) -> Option<Holder> {
        let rows = client
            .query_typed(&self.sql.holder, &[(&self.namespace, Type::INT4), (&id, Type::INT4)])
            .ok()?;
        rows.first().map(holder_from_row(0))
    }
}

/// This machine's name, for holder rows (looked up once).
fn hostname() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        nix::unistd::gethostname().map_or_else(|_| "unknown".to_owned(), |h| h.to_string_lossy().into_owned())
    })
}

/// A holder record from columns `at..at+4` (client pid, host, since, purpose).
fn holder_from_row(at: usize) -> impl Fn(&postgres::Row) -> Holder {
    move |row| Holder {
        pid: row.get::<_, i32>(at) as u32,
        host: row.get(at + 1),
        since: row.get(at + 2),
        purpose: row.get(at + 3),
        version: crate::lock::HOLDER_RECORD_VERSION,
    }
}

enum Event {
    Done(Result<bool>, Option<i32>, Option<Holder>),
    Cancel,
}

impl Backend for PgBackend {
    fn kind(&self) -> &'static str {
        "postgresql"
    }

    fn url(&self) -> String {
        self.inner.settings.url.clone()
    }

    fn acquire(
        &self,
        req: &LockRequest<'_>,
        wait: Wait,
        ctl: &mut WaitControl<'_>,
        cancel: Option<&Cancel>,
    ) -> Result<Box<dyn Grant>> {
        let started = Instant::now();
        let session = self.inner.pool.checkout(&self.inner.settings, wait.deadline())?;
        let wait_ms: i64 = match wait {
            Wait::Try => -1,
            Wait::Forever => 0,
            // Never 0 (that would mean forever); lock_timeout is an int of milliseconds.
            Wait::Until(d) => (d.saturating_duration_since(Instant::now()).as_micros().div_ceil(1000) as i64)
                .clamp(1, i64::from(i32::MAX)),
        };
        let (tx, rx) = mpsc::channel::<Event>();
        let _hook = match cancel {
            Some(c) => {
                let tx = tx.clone();
                match c.on_cancel(move || {
                    let _ = tx.send(Event::Cancel);
                }) {
                    Some(h) => Some(h),
                    None => {
                        self.inner.pool.checkin(session);
                        return Err(Error::Cancelled { path: req.name.into() });
                    }
                }
            }
            None => None,
        };
        let inner = Arc::clone(&self.inner);
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
                    return self.finish(session, req, result, id, holder, started);
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
        self.abandon(session, &rx);
        Err(match stop {
            Some(StopWhy::Cancelled) => Error::Cancelled { path: req.name.into() },
            Some(StopWhy::Interrupted) => Error::Interrupted { path: req.name.into() },
            _ => Error::Coordinator {
                op: "acquire",
                message: "the session's thread ended".into(),
            },
        })
    }

    fn fenced_write(&self, name: &str, token: u64, value: &[u8]) -> Result<()> {
        self.put(name, token, value.to_vec(), false)
    }

    fn fenced_read(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>> {
        let name = name.to_owned();
        self.with_session("fenced read", move |client, inner| {
            let rows = client
                .query_typed(&inner.sql.fenced_get, &[(&name, Type::TEXT)])
                .map_err(|e| db_error("fenced read", &e))?;
            Ok(rows.first().map(|r| (r.get::<_, i64>(0) as u64, r.get(1))))
        })
    }

    fn done_marker(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let name = name.to_owned();
        self.with_session("run-once marker", move |client, inner| {
            let rows = client
                .query_typed(&inner.sql.done_get, &[(&name, Type::TEXT)])
                .map_err(|e| db_error("run-once marker", &e))?;
            Ok(rows.first().map(|r| r.get(0)))
        })
    }

    fn mark_done(&self, name: &str, token: u64, text: &[u8]) -> Result<()> {
        self.put(name, token, text.to_vec(), true)
    }

    fn status(&self) -> Result<Vec<LockStatus>> {
        self.with_session("status", |client, inner| {
            let rows = client
                .query_typed(&inner.sql.status, &[(&inner.namespace, Type::INT4)])
                .map_err(|e| db_error("status", &e))?;
            let mut out: Vec<LockStatus> = Vec::new();
            for row in &rows {
                let name: String = row.get(0);
                if out.last().is_none_or(|s| s.name != name) {
                    out.push(LockStatus {
                        name,
                        holders: Vec::new(),
                        waiting: 0,
                    });
                }
                let entry = out.last_mut().expect("pushed above");
                if row.get::<_, bool>(2) {
                    let mode = if row.get::<_, String>(1) == "ShareLock" {
                        LockMode::Shared
                    } else {
                        LockMode::Exclusive
                    };
                    let holder = row.get::<_, Option<i32>>(3).map(|_| holder_from_row(3)(row));
                    entry.holders.push(StatusHolder { mode, holder });
                } else {
                    entry.waiting += 1;
                }
            }
            Ok(out)
        })
    }
}

#[derive(Debug)]
enum StopWhy {
    Cancelled,
    Interrupted,
    Gone,
}

impl PgBackend {
    /// Turns the answer to an acquisition into a grant or an error, returning the session to the pool
    /// whenever it does not become the grant's.
    fn finish(
        &self,
        session: Session,
        req: &LockRequest<'_>,
        result: Result<bool>,
        id: Option<i32>,
        holder: Option<Holder>,
        started: Instant,
    ) -> Result<Box<dyn Grant>> {
        match (result, id) {
            (Ok(true), Some(id)) => Ok(Box::new(PgGrant::new(
                Arc::clone(&self.inner),
                session,
                req.name.to_owned(),
                id,
                req.mode == LockMode::Shared,
            ))),
            (Ok(_), _) => {
                self.inner.pool.checkin(session);
                Err(Error::WouldBlock {
                    path: req.name.into(),
                    holder: holder.map(Box::new),
                })
            }
            (Err(Error::Timeout { path, .. }), _) => {
                self.inner.pool.checkin(session);
                Err(Error::Timeout {
                    path,
                    waited: started.elapsed(),
                    holder: holder.map(Box::new),
                })
            }
            (Err(e), _) => {
                // The lock may have been granted before the statement failed: close the session,
                // which frees whatever it held.
                self.inner.pool.discard(session);
                Err(e)
            }
        }
    }

    /// Ends a wait that was cancelled or interrupted: cancels the query on the server, waits for its
    /// answer, and gives back a grant that raced the cancel. The session is reused only if it
    /// provably holds nothing afterwards; otherwise it is closed, which frees everything it held.
    fn abandon(&self, session: Session, rx: &mpsc::Receiver<Event>) {
        session.cancel_query(&self.inner.settings);
        let limit = self.inner.settings.lease * 2;
        let answered = loop {
            match rx.recv_timeout(limit) {
                Ok(Event::Done(..)) => break true,
                Ok(Event::Cancel) => {}
                Err(_) => break false,
            }
        };
        session.health.set_holding(false, None);
        if !answered {
            self.inner.pool.discard(session);
            return;
        }
        let cleaned = session.run(limit, |client, _| {
            client
                .simple_query("SELECT pg_advisory_unlock_all()")
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        match cleaned {
            Some(Ok(())) => self.inner.pool.checkin(session),
            // A late cancel can hit the cleanup itself: then closing is the way to free the lock.
            _ => self.inner.pool.discard(session),
        }
    }

    fn put(&self, name: &str, token: u64, value: Vec<u8>, marker: bool) -> Result<()> {
        let name = name.to_owned();
        self.with_session("fenced write", move |client, inner| {
            let Some(id) = inner.lock_id(client, &name, false)? else {
                return Err(Error::StaleToken {
                    name,
                    token,
                    current: 0,
                });
            };
            let token_i = i64::try_from(token).unwrap_or(i64::MAX);
            let rows = client
                .query_typed(
                    &inner.sql.fenced_put,
                    &[
                        (&id, Type::INT4),
                        (&token_i, Type::INT8),
                        (&value, Type::BYTEA),
                        (&marker, Type::BOOL),
                    ],
                )
                .map_err(|e| db_error("fenced write", &e))?;
            let current = rows.first().and_then(|r| r.get::<_, Option<i64>>(0)).unwrap_or(0) as u64;
            if current == token {
                Ok(())
            } else {
                Err(Error::StaleToken { name, token, current })
            }
        })
    }
}
