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
//! * **Claims** (see [`claims_sql`]) use the namespace after the locks' one (`namespace + 1`) for
//!   their keys, so applications that use the two-key form must avoid both.

mod acquire;
mod claims;
mod claims_sql;
mod config;
mod grant;
mod pool;
mod raw;
mod schema;
mod session;
mod sql;
mod state;
mod tasks;
mod tasks_sql;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use postgres::Client;
use postgres::error::SqlState;
use postgres::types::Type;

use super::backend::{Backend, Grant, LockRequest, LockStatus, StatusHolder};
use super::cancel::Cancel;
use crate::error::{Error, Result};
use crate::lock::{Holder, LockMode, Wait, WaitControl};
use config::PgSettings;
use pool::Pool;
pub use raw::RawAdvisory;
use sql::Sql;

/// How often a waiting thread wakes to run the caller's interrupt check (Ctrl-C in Python): the
/// signal cannot interrupt a wait for the server's answer, so this bounds how late it is noticed.
pub(crate) const INTERRUPT_CHECK: Duration = Duration::from_millis(50);

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

/// The server's own message and SQLSTATE (the client's Display says only "db error"), or the
/// client's message for a connection failure.
pub(crate) fn db_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// A PostgreSQL error as the core's error.
pub(crate) fn db_error(op: &'static str, e: &postgres::Error) -> Error {
    let message = db_message(e);
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
        let limit = settings
            .config
            .get_connect_timeout()
            .copied()
            .unwrap_or(Duration::from_secs(10))
            * 3;
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
        let Some(result) = session.run(limit, move |client, _| f(client, &inner)) else {
            self.inner.pool.discard(session);
            return Err(Error::Coordinator {
                op,
                message: "no answer from the server".into(),
            });
        };
        self.inner.pool.checkin(session);
        result
    }
}

impl Inner {
    /// The id of `name`, creating its row if `create` (the only durable write of a first lock).
    fn lock_id(&self, client: &mut Client, name: &str, create: bool) -> Result<Option<i32>> {
        if let Some(id) = self.ids.lock().unwrap_or_else(PoisonError::into_inner).get(name) {
            return Ok(Some(*id));
        }
        let mut id = Self::query_id(client, &self.sql.id_get, name)?;
        if id.is_none() && create {
            id = Self::query_id(client, &self.sql.id_put, name)?;
            if id.is_none() {
                id = Self::query_id(client, &self.sql.id_get, name)?; // a concurrent first use won
            }
        }
        if let Some(id) = id {
            self.ids
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(name.to_owned(), id);
        }
        Ok(id)
    }

    fn query_id(client: &mut Client, sql: &str, name: &str) -> Result<Option<i32>> {
        client
            .query_typed(sql, &[(&name, Type::TEXT)])
            .map(|rows| rows.first().map(|r| r.get(0)))
            .map_err(|e| db_error("look up a lock name", &e))
    }

    /// Stores `value` for lock `id` if `token` is its newest drawn token (one statement: the counter
    /// is read `FOR SHARE`, so a concurrent draw waits for this write or this write sees the draw).
    pub(crate) fn fenced_put(
        &self,
        client: &mut Client,
        id: i32,
        name: String,
        token: u64,
        value: &[u8],
        marker: bool,
    ) -> Result<()> {
        let token_i = i64::try_from(token).unwrap_or(i64::MAX);
        let rows = client
            .query_typed(
                &self.sql.fenced_put,
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
    }

    fn holder(&self, client: &mut Client, id: i32) -> Option<Holder> {
        let rows = client
            .query_typed(&self.sql.holder, &[(&self.namespace, Type::INT4), (&id, Type::INT4)])
            .ok()?;
        rows.first().map(holder_from_row(0))
    }
}

/// This machine's name, for holder rows (looked up once).
pub(crate) fn hostname() -> &'static str {
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

impl Backend for PgBackend {
    fn kind(&self) -> &'static str {
        "postgresql"
    }

    fn claims(&self) -> &dyn super::claims::ClaimBackend {
        self
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
        acquire::acquire(&self.inner, req, wait, ctl, cancel)
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

    fn state_read(&self, name: &str, backup: bool) -> Result<Option<Vec<u8>>> {
        let name = name.to_owned();
        self.with_session("read state", move |client, inner| {
            inner.state_get(client, &name, backup)
        })
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

    fn task_queue(&self, name: &str) -> Result<Box<dyn crate::coord::QueueBackend>> {
        Ok(Box::new(tasks::PgQueue::new(Arc::clone(&self.inner), name)))
    }
}

impl PgBackend {
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
            inner.fenced_put(client, id, name, token, &value, marker)
        })
    }
}
