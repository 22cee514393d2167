//! The tables and functions of task queues on PostgreSQL (part of the coordinator's schema; every
//! statement is idempotent, so an older schema is migrated by running it again).
//!
//! * `task_queues`: one row per queue name; `tasks`: one row per task (queue, id, order, the claim:
//!   claimant, host, pid, since, and the `keeper` key of the claiming handle's session).
//! * A queue handle's session holds the advisory lock `(namespace, -keeper)` for as long as it lives:
//!   lock ids are positive, keeper keys negated, so the two never meet. A claim counts only while its
//!   keeper's lock is held, which `task_alive` tests with a transaction-level shared try-lock (exact,
//!   evaluated per row when the row is looked at, so a row just claimed by a live keeper is never
//!   taken for dead).
//! * `add` and `release` notify the queue's channel (`task_channel`), which waiters `LISTEN` on.

/// The task-queue DDL for schema `s`.
pub(crate) fn tasks_ddl(s: &str) -> String {
    format!(
        r#"
CREATE TABLE IF NOT EXISTS {s}.task_queues (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text COLLATE "C" NOT NULL UNIQUE
);
CREATE SEQUENCE IF NOT EXISTS {s}.task_keepers AS integer MINVALUE 1 CYCLE;
CREATE TABLE IF NOT EXISTS {s}.tasks (
    queue_id integer NOT NULL REFERENCES {s}.task_queues (id),
    id text COLLATE "C" NOT NULL,
    ord bigint GENERATED ALWAYS AS IDENTITY,
    keeper integer,
    claim_by text,
    claim_host text,
    claim_pid integer,
    claim_since timestamptz,
    PRIMARY KEY (queue_id, id)
);
CREATE INDEX IF NOT EXISTS tasks_queue_order ON {s}.tasks (queue_id, ord);

CREATE OR REPLACE FUNCTION {s}.task_channel(p_queue text) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
    SELECT 'ftq_' || md5('{s}/' || p_queue)
$f$;

-- Whether the keeper of a claim still lives: its session holds (ns, -keeper) exclusively.
CREATE OR REPLACE FUNCTION {s}.task_alive(p_ns integer, p_keeper integer) RETURNS boolean
LANGUAGE sql VOLATILE AS $f$
    SELECT p_keeper IS NOT NULL AND NOT pg_try_advisory_xact_lock_shared(p_ns, -p_keeper)
$f$;

CREATE OR REPLACE FUNCTION {s}.task_add(p_queue text, p_ids text[]) RETURNS integer
LANGUAGE plpgsql AS $f$
DECLARE q integer; n integer;
BEGIN
    INSERT INTO {s}.task_queues (name) VALUES (p_queue) ON CONFLICT (name) DO NOTHING;
    SELECT id INTO q FROM {s}.task_queues WHERE name = p_queue;
    INSERT INTO {s}.tasks (queue_id, id)
        SELECT q, x.id FROM unnest(p_ids) WITH ORDINALITY AS x(id, n) ORDER BY x.n
        ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN PERFORM pg_notify({s}.task_channel(p_queue), ''); END IF;
    RETURN n;
END $f$;

"#
    ) + &claim_functions(s)
}

/// The functions that claim and release, in one round trip each.
fn claim_functions(s: &str) -> String {
    format!(
        r"
-- outcome: claimed, taken (with the live claim), missing, no_queue.
CREATE OR REPLACE FUNCTION {s}.task_claim(p_queue text, p_id text, p_ns integer, p_keeper integer,
                                          p_by text, p_host text, p_pid integer)
RETURNS TABLE (outcome text, by text, host text, pid integer, since timestamptz)
LANGUAGE plpgsql AS $f$
DECLARE q integer; r {s}.tasks%ROWTYPE;
BEGIN
    SELECT id INTO q FROM {s}.task_queues WHERE name = p_queue;
    IF q IS NULL THEN RETURN QUERY SELECT 'no_queue', NULL::text, NULL::text, NULL::integer, NULL::timestamptz; RETURN; END IF;
    SELECT * INTO r FROM {s}.tasks t WHERE t.queue_id = q AND t.id = p_id FOR UPDATE;
    IF NOT FOUND THEN RETURN QUERY SELECT 'missing', NULL::text, NULL::text, NULL::integer, NULL::timestamptz; RETURN; END IF;
    IF {s}.task_alive(p_ns, r.keeper) THEN
        RETURN QUERY SELECT 'taken', r.claim_by, r.claim_host, r.claim_pid, r.claim_since; RETURN;
    END IF;
    UPDATE {s}.tasks t SET keeper = p_keeper, claim_by = p_by, claim_host = p_host, claim_pid = p_pid,
                           claim_since = clock_timestamp()
        WHERE t.queue_id = q AND t.id = p_id;
    RETURN QUERY SELECT 'claimed', NULL::text, NULL::text, NULL::integer, NULL::timestamptz;
END $f$;

-- The first task in queue order that is free or held by a dead keeper, claimed in one statement;
-- rows another transaction is claiming are skipped, not waited for.
CREATE OR REPLACE FUNCTION {s}.task_claim_next(p_queue text, p_ns integer, p_keeper integer, p_by text,
                                               p_host text, p_pid integer)
RETURNS text LANGUAGE sql AS $f$
    WITH pick AS (
        SELECT t.queue_id, t.id FROM {s}.tasks t
        WHERE t.queue_id = (SELECT q.id FROM {s}.task_queues q WHERE q.name = p_queue)
          AND (t.keeper IS NULL OR NOT {s}.task_alive(p_ns, t.keeper))
        ORDER BY t.ord LIMIT 1 FOR UPDATE SKIP LOCKED)
    UPDATE {s}.tasks t SET keeper = p_keeper, claim_by = p_by, claim_host = p_host, claim_pid = p_pid,
                           claim_since = clock_timestamp()
    FROM pick WHERE t.queue_id = pick.queue_id AND t.id = pick.id
    RETURNING t.id
$f$;

-- p_mine: the keeper this handle claimed the task with (NULL if it did not). outcome: released,
-- not_claimed, claimed_by_other (with the claim), missing, no_queue, lost.
CREATE OR REPLACE FUNCTION {s}.task_release(p_queue text, p_id text, p_ns integer, p_by text,
                                            p_force boolean, p_mine integer)
RETURNS TABLE (outcome text, by text, host text, pid integer, since timestamptz)
LANGUAGE plpgsql AS $f$
DECLARE q integer; r {s}.tasks%ROWTYPE;
BEGIN
    SELECT id INTO q FROM {s}.task_queues WHERE name = p_queue;
    IF q IS NULL THEN RETURN QUERY SELECT 'no_queue', NULL::text, NULL::text, NULL::integer, NULL::timestamptz; RETURN; END IF;
    SELECT * INTO r FROM {s}.tasks t WHERE t.queue_id = q AND t.id = p_id FOR UPDATE;
    IF NOT FOUND THEN RETURN QUERY SELECT 'missing', NULL::text, NULL::text, NULL::integer, NULL::timestamptz; RETURN; END IF;
    IF p_mine IS NOT NULL AND (r.keeper IS DISTINCT FROM p_mine OR NOT {s}.task_alive(p_ns, p_mine)) THEN
        RETURN QUERY SELECT 'lost', NULL::text, NULL::text, NULL::integer, NULL::timestamptz; RETURN;
    END IF;
    IF p_mine IS NULL AND NOT {s}.task_alive(p_ns, r.keeper) THEN
        RETURN QUERY SELECT 'not_claimed', NULL::text, NULL::text, NULL::integer, NULL::timestamptz; RETURN;
    END IF;
    IF r.claim_by IS DISTINCT FROM p_by AND NOT p_force THEN
        RETURN QUERY SELECT 'claimed_by_other', r.claim_by, r.claim_host, r.claim_pid, r.claim_since; RETURN;
    END IF;
    UPDATE {s}.tasks t SET keeper = NULL, claim_by = NULL, claim_host = NULL, claim_pid = NULL,
                           claim_since = NULL
        WHERE t.queue_id = q AND t.id = p_id;
    PERFORM pg_notify({s}.task_channel(p_queue), '');
    RETURN QUERY SELECT 'released', NULL::text, NULL::text, NULL::integer, NULL::timestamptz;
END $f$;
"
    )
}

/// The statements of task queues, with the schema name filled in once.
#[derive(Debug)]
pub(crate) struct TaskSql {
    pub(crate) add: String,
    pub(crate) remove: String,
    pub(crate) claim: String,
    pub(crate) claim_next: String,
    pub(crate) release: String,
    pub(crate) list: String,
    pub(crate) channel: String,
    pub(crate) new_keeper: String,
    pub(crate) undo: String,
}

impl TaskSql {
    pub(crate) fn new(s: &str) -> Self {
        let since = "to_char(x.since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
        Self {
            add: format!("SELECT {s}.task_add($1, $2)"),
            remove: format!(
                "WITH d AS (DELETE FROM {s}.tasks t USING {s}.task_queues q \
                 WHERE q.name = $1 AND t.queue_id = q.id AND t.id = ANY($2) RETURNING 1) SELECT count(*) FROM d"
            ),
            claim: format!(
                "SELECT x.outcome, x.by, x.host, x.pid, {since} FROM {s}.task_claim($1, $2, $3, $4, $5, $6, $7) x"
            ),
            claim_next: format!("SELECT {s}.task_claim_next($1, $2, $3, $4, $5, $6)"),
            release: format!(
                "SELECT x.outcome, x.by, x.host, x.pid, {since} FROM {s}.task_release($1, $2, $3, $4, $5, $6) x"
            ),
            list: format!(
                "SELECT x.id, x.by, x.host, x.pid, {since} FROM (SELECT t.id, t.ord, \
                 CASE WHEN {s}.task_alive($2, t.keeper) THEN t.claim_by END AS by, \
                 t.claim_host AS host, t.claim_pid AS pid, t.claim_since AS since \
                 FROM {s}.tasks t JOIN {s}.task_queues q ON q.id = t.queue_id WHERE q.name = $1) x \
                 ORDER BY x.ord"
            ),
            channel: format!("SELECT {s}.task_channel($1)"),
            new_keeper: format!(
                "SELECT k, pg_advisory_lock($1, -k) IS NOT NULL FROM (SELECT nextval('{s}.task_keepers')::integer AS k) n"
            ),
            undo: format!(
                "WITH u AS (UPDATE {s}.tasks t SET keeper = NULL, claim_by = NULL, claim_host = NULL, claim_pid = NULL, \
                 claim_since = NULL FROM {s}.task_queues q WHERE q.name = $1 AND t.queue_id = q.id AND t.id = $2 \
                 AND t.keeper = $3 RETURNING 1) SELECT pg_notify({s}.task_channel($1), '') FROM u"
            ),
        }
    }
}
