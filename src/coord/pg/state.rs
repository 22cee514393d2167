//! State values on the PostgreSQL backend: one row per name with the value and the version it
//! replaced, written by `state_put` in the holder's own session (so only while its lock lives), after
//! the fence check in the same statement (the fence lock's counter is read `FOR SHARE`, so a
//! concurrent token draw waits for the write or the write sees the draw).

use postgres::Client;
use postgres::types::Type;

use super::{Inner, db_error};
use crate::coord::backend::Fence;
use crate::error::{Error, Result};

/// The DDL of the state table and its write function, for schema `s` (idempotent).
pub(crate) fn ddl(s: &str) -> String {
    format!(
        r#"
CREATE TABLE IF NOT EXISTS {s}.state (
    name text COLLATE "C" PRIMARY KEY,
    value bytea,
    version bigint NOT NULL,
    prev bytea,
    written timestamptz NOT NULL
);

-- ok is false (and nothing is written) if the fence lock's newest token is not p_token; existed says
-- whether there was a value before.
CREATE OR REPLACE FUNCTION {s}.state_put(p_name text, p_val bytea, p_fence text, p_token bigint,
                                         OUT ok boolean, OUT cur bigint, OUT existed boolean)
LANGUAGE plpgsql AS $f$
DECLARE found_row boolean;
BEGIN
    ok := true; cur := p_token; existed := false;
    IF p_fence IS NOT NULL THEN
        SELECT fence INTO cur FROM {s}.locks WHERE name = p_fence FOR SHARE;
        IF cur IS DISTINCT FROM p_token THEN ok := false; cur := coalesce(cur, 0); RETURN; END IF;
    END IF;
    SELECT value IS NOT NULL INTO existed FROM {s}.state WHERE name = p_name FOR UPDATE;
    found_row := FOUND;
    existed := coalesce(existed, false);
    IF p_val IS NULL AND NOT existed THEN RETURN; END IF;
    IF found_row THEN
        UPDATE {s}.state SET prev = value, value = p_val, version = version + 1, written = clock_timestamp()
            WHERE name = p_name;
    ELSE
        INSERT INTO {s}.state VALUES (p_name, p_val, 1, NULL, clock_timestamp());
    END IF;
END $f$;
"#
    )
}

impl Inner {
    /// Writes state `name` from `client`'s session (the caller's grant holds the state's lock).
    pub(crate) fn state_put(
        &self,
        client: &mut Client,
        name: &str,
        value: Option<&[u8]>,
        fence: Option<&Fence>,
    ) -> Result<bool> {
        let (fence_name, token) = match fence {
            Some(f) => (Some(f.lock.as_str()), i64::try_from(f.token).unwrap_or(i64::MAX)),
            None => (None, 0),
        };
        let row = client
            .query_typed(
                &self.sql.state_put,
                &[
                    (&name, Type::TEXT),
                    (&value, Type::BYTEA),
                    (&fence_name, Type::TEXT),
                    (&token, Type::INT8),
                ],
            )
            .map_err(|e| db_error("write state", &e))?;
        let row = row.first().ok_or_else(|| Error::Coordinator {
            op: "write state",
            message: "state_put returned no row".into(),
        })?;
        if row.get::<_, bool>(0) {
            Ok(row.get(2))
        } else {
            let f = fence.expect("only a fence can refuse a write");
            Err(Error::StaleToken {
                name: f.lock.clone(),
                token: f.token,
                current: row.get::<_, i64>(1) as u64,
            })
        }
    }

    /// The value of state `name` (or the version it replaced).
    pub(crate) fn state_get(&self, client: &mut Client, name: &str, backup: bool) -> Result<Option<Vec<u8>>> {
        let sql = if backup {
            &self.sql.state_prev
        } else {
            &self.sql.state_get
        };
        let rows = client
            .query_typed(sql, &[(&name, Type::TEXT)])
            .map_err(|e| db_error("read state", &e))?;
        Ok(rows.first().and_then(|r| r.get::<_, Option<Vec<u8>>>(0)))
    }
}
