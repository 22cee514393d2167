//! The coordinator's tables and functions, created and versioned on first use.
//!
//! * `locks`: one row per name ever locked: the exact name, the integer id that is the second key
//!   of its advisory lock, and the durable fencing counter.
//! * `holders` (unlogged: holder metadata is advice and must not cost a WAL flush per acquisition):
//!   who holds what, keyed by backend pid and joined with `pg_locks` for liveness.
//! * `fenced`, `done`: the last fenced value and the run-once marker of each name.
//! * `meta`: the schema version and the advisory-lock namespace.
//! * Functions that do an acquisition, a release, a token draw or a fenced write in one round trip.

use std::fmt::Write as _;

use postgres::Client;
use postgres::error::SqlState;

use crate::error::{Error, Result};

/// The schema version this build creates and understands.
pub(crate) const SCHEMA_VERSION: i32 = 2;

/// The DDL of the current version for schema `s`, with namespace `ns` recorded in `meta`: version 1's,
/// then what later versions added (version 2: state, task queues, claims). Every statement is
/// idempotent, so an older schema is migrated by running it again.
#[must_use]
pub(crate) fn create_sql(s: &str, ns: i32) -> String {
    let mut sql = ddl_body(s, ns);
    let digest = digest(&sql);
    let _ = writeln!(
        sql,
        "INSERT INTO {s}.meta VALUES ('schema_digest', '{digest}') ON CONFLICT (key) DO UPDATE SET value = excluded.value;"
    );
    sql
}

/// Every statement of the current version, without the digest.
fn ddl_body(s: &str, ns: i32) -> String {
    let mut sql = base_sql(s, ns);
    sql.push_str(&super::state::ddl(s));
    sql.push_str(&super::tasks_sql::tasks_ddl(s));
    sql.push_str(&super::claims_sql::claims_ddl(s));
    sql
}

/// A digest of the DDL (FNV-1a, 64 bits; stable across builds, unlike the standard hasher). A schema
/// at this build's version whose recorded digest differs (or is missing) was made by a build with other
/// DDL under the same version number (development builds between releases): it is brought up to date
/// by running the idempotent DDL again. Released builds bump `SCHEMA_VERSION` for every DDL change, so
/// two builds of one version never disagree.
fn digest(sql: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in sql.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Version 1: locks, holders, fencing, run-once markers.
fn base_sql(s: &str, ns: i32) -> String {
    format!(
        r#"
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.locks (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text COLLATE "C" NOT NULL UNIQUE,
    fence bigint NOT NULL DEFAULT 0
);
CREATE UNLOGGED TABLE IF NOT EXISTS {s}.holders (
    backend_pid integer NOT NULL,
    lock_id integer NOT NULL,
    shared boolean NOT NULL,
    host text NOT NULL,
    client_pid integer NOT NULL,
    purpose text,
    since timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (backend_pid, lock_id)
);
CREATE TABLE IF NOT EXISTS {s}.fenced (
    lock_id integer PRIMARY KEY REFERENCES {s}.locks (id),
    token bigint NOT NULL,
    value bytea NOT NULL,
    written timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.done (
    lock_id integer PRIMARY KEY REFERENCES {s}.locks (id),
    token bigint NOT NULL,
    marker bytea NOT NULL,
    written timestamptz NOT NULL
);

-- p_wait_ms: -1 one attempt, 0 forever, n a server-side lock_timeout of n ms. Returns false only for a
-- failed attempt; a timeout raises lock_not_available (55P03).
CREATE OR REPLACE FUNCTION {s}.acquire(p_ns integer, p_lock integer, p_shared boolean, p_wait_ms bigint,
                                       p_host text, p_client_pid integer, p_purpose text)
RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
    IF p_wait_ms < 0 THEN
        IF NOT (CASE WHEN p_shared THEN pg_try_advisory_lock_shared(p_ns, p_lock)
                     ELSE pg_try_advisory_lock(p_ns, p_lock) END) THEN
            RETURN false;
        END IF;
    ELSE
        PERFORM set_config('lock_timeout', p_wait_ms::text, true);
        IF p_shared THEN PERFORM pg_advisory_lock_shared(p_ns, p_lock);
        ELSE PERFORM pg_advisory_lock(p_ns, p_lock); END IF;
    END IF;
    DELETE FROM {s}.holders WHERE backend_pid = pg_backend_pid();
    INSERT INTO {s}.holders (backend_pid, lock_id, shared, host, client_pid, purpose)
        VALUES (pg_backend_pid(), p_lock, p_shared, p_host, p_client_pid, p_purpose);
    RETURN true;
END $f$;

CREATE OR REPLACE FUNCTION {s}.release(p_ns integer, p_lock integer, p_shared boolean)
RETURNS boolean LANGUAGE plpgsql AS $f$
DECLARE was boolean;
BEGIN
    was := CASE WHEN p_shared THEN pg_advisory_unlock_shared(p_ns, p_lock) ELSE pg_advisory_unlock(p_ns, p_lock) END;
    DELETE FROM {s}.holders WHERE backend_pid = pg_backend_pid();
    RETURN was;
END $f$;

-- The row lock taken by UPDATE orders draws against fenced writes, which read the counter FOR SHARE.
CREATE OR REPLACE FUNCTION {s}.draw_token(p_lock integer) RETURNS bigint LANGUAGE sql AS $f$
    UPDATE {s}.locks SET fence = fence + 1 WHERE id = p_lock RETURNING fence
$f$;

-- Returns the newest drawn token; the write happened only if it equals the caller's.
CREATE OR REPLACE FUNCTION {s}.fenced_put(p_lock integer, p_token bigint, p_val bytea, p_marker boolean)
RETURNS bigint LANGUAGE plpgsql AS $f$
DECLARE cur bigint;
BEGIN
    SELECT fence INTO cur FROM {s}.locks WHERE id = p_lock FOR SHARE;
    IF cur IS DISTINCT FROM p_token THEN RETURN cur; END IF;
    IF p_marker THEN
        INSERT INTO {s}.done AS d VALUES (p_lock, p_token, p_val, clock_timestamp())
            ON CONFLICT (lock_id) DO UPDATE SET token = excluded.token, marker = excluded.marker,
                                                written = excluded.written;
    ELSE
        INSERT INTO {s}.fenced AS f VALUES (p_lock, p_token, p_val, clock_timestamp())
            ON CONFLICT (lock_id) DO UPDATE SET token = excluded.token, value = excluded.value,
                                                written = excluded.written;
    END IF;
    RETURN cur;
END $f$;

INSERT INTO {s}.meta VALUES ('namespace', '{ns}') ON CONFLICT (key) DO NOTHING;
INSERT INTO {s}.meta VALUES ('schema_version', '{SCHEMA_VERSION}')
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;
"#
    )
}

/// Makes sure schema `s` exists at [`SCHEMA_VERSION`] and returns its advisory-lock namespace.
///
/// Creation and migration run in one transaction under a transaction-level advisory lock, so
/// concurrent first users do not trip over each other. A role that may not create the schema gets an
/// error naming the command an administrator runs instead.
pub(crate) fn ensure(client: &mut Client, s: &str, ns: i32, url: &str) -> Result<i32> {
    let mut ns = ns;
    if let Some(found) = read_meta(client, s)? {
        ns = found.1; // the namespace recorded when the schema was created stays
        if found.0 == SCHEMA_VERSION && found.2.as_deref() == Some(digest(&ddl_body(s, ns)).as_str()) {
            return Ok(ns);
        }
        if found.0 > SCHEMA_VERSION {
            return Err(Error::Coordinator {
                op: "coordinator schema",
                message: format!(
                    "schema {s} is at version {}, newer than this ferrolock understands ({SCHEMA_VERSION}): upgrade ferrolock",
                    found.0
                ),
            });
        }
    }
    let result = (|| {
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&ns])?;
        tx.batch_execute(&create_sql(s, ns))?;
        tx.commit()
    })();
    match result {
        Ok(()) => read_meta(client, s)?.map(|m| m.1).ok_or_else(|| Error::Coordinator {
            op: "coordinator schema",
            message: format!("schema {s} has no version after creation"),
        }),
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => Err(Error::Coordinator {
            op: "coordinator schema",
            message: format!(
                "schema {s} is missing or out of date and this role may not create it ({}); an administrator \
                 runs `ferrolock schema --url '{url}'` once (or applies `ferrolock schema --sql`), then grants \
                 the role USAGE on schema {s}, SELECT, INSERT, UPDATE, DELETE on all its tables and USAGE on \
                 all its sequences",
                super::db_message(&e)
            ),
        }),
        Err(e) => Err(super::db_error("create coordinator schema", &e)),
    }
}

/// `(version, namespace, DDL digest)`, or `None` if the schema or its `meta` table does not exist.
fn read_meta(client: &mut Client, s: &str) -> Result<Option<(i32, i32, Option<String>)>> {
    let sql = format!(
        "SELECT (SELECT value FROM {s}.meta WHERE key = 'schema_version'), \
                (SELECT value FROM {s}.meta WHERE key = 'namespace'), \
                (SELECT value FROM {s}.meta WHERE key = 'schema_digest')"
    );
    match client.query_one(&sql, &[]) {
        Ok(row) => {
            let parse = |v: Option<String>| v.and_then(|v| v.parse::<i32>().ok());
            match (parse(row.get(0)), parse(row.get(1))) {
                (Some(v), Some(n)) => Ok(Some((v, n, row.get(2)))),
                _ => Ok(None),
            }
        }
        Err(e) if matches!(e.code(), Some(c) if *c == SqlState::UNDEFINED_TABLE || *c == SqlState::INVALID_SCHEMA_NAME) => {
            Ok(None)
        }
        Err(e) => Err(super::db_error("read coordinator schema", &e)),
    }
}
