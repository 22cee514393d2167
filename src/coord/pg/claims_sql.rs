//! The DDL and statements of scope claims on PostgreSQL.
//!
//! * A claimed path is a key: the project, then each component preceded by `\x01` (components and
//!   projects hold no control characters). A claim of key `k` is the text range `[k, k || '\x02')` in
//!   the "C" collation: it holds exactly `k` and the keys below it, so two ranges overlap iff one path
//!   is the other or an ancestor of it (`a/b` and `a/bc`, `a/b.c` are disjoint: `b` then `c` or `.`
//!   sorts after `b` then `\x02`).
//! * Modes are an `int8range`: `(,)` for an exclusive claim, `[id, id+1)` for a shared one (distinct
//!   points never overlap), so `EXCLUDE USING gist (scope WITH &&, modes WITH &&)` forbids exactly the
//!   conflicting pairs, with no extension: both columns are range types with built-in `GiST` support.
//! * Liveness: the owner holds the session advisory lock `(namespace + 1, claim id)` exclusively for
//!   the claim's life, so a row whose lock can be had shared is dead (its session ended) and is
//!   deleted by whoever meets it; a waiter blocks in a shared lock on it until the owner lets go or
//!   dies. The table is unlogged: after a crash restart it is empty, as every session is gone.

/// The claims DDL for schema `s` (idempotent: a schema of an older version is migrated by re-running it).
#[must_use]
pub(crate) fn claims_ddl(s: &str) -> String {
    format!(
        r#"
DO $d$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE n.nspname = '{s}' AND t.typname = 'path_range') THEN
        CREATE TYPE {s}.path_range AS RANGE (subtype = text, collation = "C");
    END IF;
END $d$;
CREATE SEQUENCE IF NOT EXISTS {s}.claim_ids AS integer MINVALUE 1 CYCLE;
CREATE UNLOGGED TABLE IF NOT EXISTS {s}.claims (
    claim_id integer NOT NULL,
    project text COLLATE "C" NOT NULL,
    path text NOT NULL,
    scope {s}.path_range NOT NULL,
    modes int8range NOT NULL,
    host text NOT NULL,
    client_pid integer NOT NULL,
    purpose text,
    since timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT claims_never_overlap EXCLUDE USING gist (scope WITH &&, modes WITH &&)
);
CREATE INDEX IF NOT EXISTS claims_by_id ON {s}.claims (claim_id);
CREATE INDEX IF NOT EXISTS claims_by_project ON {s}.claims (project);

-- The first live claim overlapping one of p_keys with modes overlapping p_modes (0 if none); dead
-- ones met on the way are deleted.
CREATE OR REPLACE FUNCTION {s}.claim_first_live(p_ns integer, p_keys text[], p_modes int8range)
RETURNS integer LANGUAGE plpgsql AS $f$
DECLARE r record;
BEGIN
    FOR r IN SELECT DISTINCT c.claim_id FROM unnest(p_keys) AS k(key)
             JOIN {s}.claims c ON c.scope && {s}.path_range(k.key, k.key || E'\x02')
             WHERE c.modes && p_modes ORDER BY c.claim_id
    LOOP
        IF pg_try_advisory_xact_lock_shared(p_ns, r.claim_id) THEN
            DELETE FROM {s}.claims WHERE claim_id = r.claim_id;
        ELSE
            RETURN r.claim_id;
        END IF;
    END LOOP;
    RETURN 0;
END $f$;

-- Claims p_keys all or none. Returns the new claim's id (its key stays locked by this session),
-- minus the id of a live conflicting claim, or 0 when a concurrent claim won a race (try again).
CREATE OR REPLACE FUNCTION {s}.claim(p_ns integer, p_project text, p_keys text[], p_paths text[],
                                     p_shared boolean, p_host text, p_client_pid integer, p_purpose text)
RETURNS integer LANGUAGE plpgsql AS $f$
DECLARE v_id integer; v_other integer; v_modes int8range;
BEGIN
    LOOP
        v_id := nextval('{s}.claim_ids');
        EXIT WHEN pg_try_advisory_lock(p_ns, v_id);
    END LOOP;
    BEGIN
        v_modes := CASE WHEN p_shared THEN int8range(v_id, v_id + 1) ELSE '(,)'::int8range END;
        v_other := {s}.claim_first_live(p_ns, p_keys, v_modes);
        IF v_other <> 0 THEN
            PERFORM pg_advisory_unlock(p_ns, v_id);
            RETURN -v_other;
        END IF;
        DELETE FROM {s}.claims WHERE claim_id = v_id;
        INSERT INTO {s}.claims (claim_id, project, path, scope, modes, host, client_pid, purpose)
            SELECT v_id, p_project, u.p, {s}.path_range(u.k, u.k || E'\x02'), v_modes, p_host, p_client_pid,
                   p_purpose
            FROM unnest(p_keys, p_paths) AS u(k, p);
    EXCEPTION WHEN exclusion_violation OR deadlock_detected THEN
        PERFORM pg_advisory_unlock(p_ns, v_id);
        RETURN 0;
    END;
    RETURN v_id;
END $f$;

-- Waits in the server (p_wait_ms > 0: at most that long; 0: forever) until claim p_other ends.
CREATE OR REPLACE FUNCTION {s}.claim_wait(p_ns integer, p_other integer, p_wait_ms bigint)
RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
    PERFORM set_config('lock_timeout', greatest(p_wait_ms, 0)::text, true);
    PERFORM pg_advisory_xact_lock_shared(p_ns, p_other);
END $f$;

CREATE OR REPLACE FUNCTION {s}.claim_release(p_ns integer, p_id integer)
RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
    IF NOT pg_advisory_unlock(p_ns, p_id) THEN
        RETURN false;
    END IF;
    DELETE FROM {s}.claims WHERE claim_id = p_id;
    RETURN true;
END $f$;
"#
    )
}

/// The claim statements, with the schema name filled in once.
#[derive(Debug)]
pub(crate) struct ClaimSql {
    pub(crate) claim: String,
    pub(crate) wait: String,
    pub(crate) release: String,
    pub(crate) first_live: String,
    pub(crate) by_id: String,
    pub(crate) live: String,
}

impl ClaimSql {
    pub(crate) fn new(s: &str) -> Self {
        let since = "to_char(c.since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
        let cols = format!("c.claim_id, c.path, NOT upper_inf(c.modes), c.client_pid, c.host, {since}, c.purpose");
        Self {
            claim: format!("SELECT {s}.claim($1, $2, $3, $4, $5, $6, $7, $8)"),
            wait: format!("SELECT {s}.claim_wait($1, $2, $3)"),
            release: format!("SELECT {s}.claim_release($1, $2)"),
            // A query claims nothing, so its shared mode is the point 0, which no claim id is.
            first_live: format!(
                "SELECT {s}.claim_first_live($1, $2, CASE WHEN $3 THEN int8range(0, 1) ELSE '(,)'::int8range END)"
            ),
            by_id: format!("SELECT {cols} FROM {s}.claims c WHERE c.claim_id = $1 ORDER BY c.path"),
            live: format!(
                "SELECT {cols} FROM {s}.claims c WHERE c.project = $2 AND c.claim_id::oid IN \
                 (SELECT l.objid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.objsubid = 2 \
                  AND l.classid = ($1::integer)::oid AND l.granted AND l.mode = 'ExclusiveLock' \
                  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())) \
                 ORDER BY c.claim_id, c.path"
            ),
        }
    }
}
