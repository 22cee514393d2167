//! A bare advisory-lock session, for the benchmark's floor.

use postgres::Client;
use postgres::types::Type;

use super::config::PgSettings;
use super::db_error;
use crate::error::Result;

/// One raw session for the benchmark's floor: `pg_advisory_lock` and `pg_advisory_unlock` through the
/// same client library and statements path (`query_typed`, one round trip each), nothing else.
pub struct RawAdvisory {
    client: Client,
}

impl RawAdvisory {
    /// Connects with `url` (ferrolock's own URL parameters are understood and ignored).
    pub fn connect(url: &str) -> Result<Self> {
        let settings = PgSettings::parse(url)?;
        let client = match &settings.tls {
            None => settings.config.connect(postgres::NoTls),
            Some(tls) => settings.config.connect(tls.clone()),
        }
        .map_err(|e| db_error("connect", &e))?;
        Ok(Self { client })
    }

    /// `pg_advisory_lock(key)` (blocks in the server).
    pub fn lock(&mut self, key: i64) -> Result<()> {
        self.client
            .query_typed("SELECT pg_advisory_lock($1)", &[(&key, Type::INT8)])
            .map(|_| ())
            .map_err(|e| db_error("pg_advisory_lock", &e))
    }

    /// `pg_try_advisory_lock(key)`: one attempt.
    pub fn try_lock(&mut self, key: i64) -> Result<bool> {
        self.client
            .query_typed("SELECT pg_try_advisory_lock($1)", &[(&key, Type::INT8)])
            .map(|rows| rows.first().is_some_and(|r| r.get(0)))
            .map_err(|e| db_error("pg_try_advisory_lock", &e))
    }

    /// `pg_advisory_unlock(key)`.
    pub fn unlock(&mut self, key: i64) -> Result<()> {
        self.client
            .query_typed("SELECT pg_advisory_unlock($1)", &[(&key, Type::INT8)])
            .map(|_| ())
            .map_err(|e| db_error("pg_advisory_unlock", &e))
    }
}

impl std::fmt::Debug for RawAdvisory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawAdvisory").finish_non_exhaustive()
    }
}
