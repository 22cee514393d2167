//! The statements of the PostgreSQL backend, with the schema name filled in once. Each runs with
//! `query_typed` (parameter types given), so it costs one round trip and no prepared-statement cache.

/// The statements, with the schema name filled in once.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) acquire: String,
    pub(crate) release: String,
    pub(crate) draw: String,
    pub(crate) fenced_put: String,
    pub(crate) holder: String,
    pub(crate) status: String,
    pub(crate) fenced_get: String,
    pub(crate) done_get: String,
    pub(crate) id_get: String,
    pub(crate) id_put: String,
    pub(crate) state_put: String,
    pub(crate) state_get: String,
    pub(crate) state_prev: String,
}

impl Sql {
    pub(crate) fn new(s: &str) -> Self {
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
            state_put: format!("SELECT ok, cur, existed FROM {s}.state_put($1, $2, $3, $4)"),
            state_get: format!("SELECT value FROM {s}.state WHERE name = $1"),
            state_prev: format!("SELECT prev FROM {s}.state WHERE name = $1"),
        }
    }
}
