//! One PostgreSQL session and the thread that owns it.
//!
//! The thread runs every query of the session (jobs sent over a channel), so a caller can wait for an
//! answer while staying free to notice Ctrl-C, a cancel or a deadline, and cancel the query on the
//! server. While the session holds a lock the same thread is its heartbeat: it runs a trivial query
//! three times per lease, so `idle_session_timeout` never ends a live holder's session, and it finds
//! out (and reports through `on_lost`) when the session is gone. It needs no GIL and no caller.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

use super::config::PgSettings;
use crate::coord::backend::LostCallback;
use crate::error::{Error, Result};

type Job = Box<dyn FnOnce(&mut Client, &Health) + Send>;

/// What the session's thread knows about it, shared with the grant that uses it.
pub(crate) struct Health {
    lease: Duration,
    lost: AtomicBool,
    holding: AtomicBool,
    reason: Mutex<Option<String>>,
    /// When the last successful round trip was sent: the server cannot have ended the session for
    /// idleness before this instant plus the lease.
    last_ok_sent: Mutex<Instant>,
    on_lost: Mutex<Option<LostCallback>>,
}

impl Health {
    fn new(lease: Duration) -> Self {
        Self {
            lease,
            lost: AtomicBool::new(false),
            holding: AtomicBool::new(false),
            reason: Mutex::new(None),
            last_ok_sent: Mutex::new(Instant::now()),
            on_lost: Mutex::new(None),
        }
    }

    pub(crate) fn ok(&self, sent: Instant) {
        let mut last = self.last_ok_sent.lock().unwrap_or_else(PoisonError::into_inner);
        if sent > *last {
            *last = sent;
        }
    }

    /// The instant after which the server may have ended the session for idleness.
    pub(crate) fn valid_until(&self) -> Instant {
        *self.last_ok_sent.lock().unwrap_or_else(PoisonError::into_inner) + self.lease
    }

    /// Marks the session lost (once); a holder's `on_lost` runs on a thread of its own, so a callback
    /// that blocks or calls back into the lock cannot stall the session.
    pub(crate) fn lose(&self, reason: String) {
        if self.lost.swap(true, Ordering::SeqCst) {
            return;
        }
        log::warn!(target: "ferrolock::coord", "coordinator session lost: {reason}");
        *self.reason.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
        if self.holding.load(Ordering::SeqCst)
            && let Some(callback) = self.on_lost.lock().unwrap_or_else(PoisonError::into_inner).take()
        {
            let spawned = thread::Builder::new()
                .name("ferrolock-on-lost".into())
                .spawn(move || callback());
            if let Err(e) = spawned {
                log::warn!(target: "ferrolock::coord", "could not run on_lost: {e}");
            }
        }
    }

    /// One round trip that must come back before the server may have ended the session for
    /// idleness; otherwise the session is lost. A bounded wait matters when something swallows the
    /// traffic: TCP keepalives are answered by whatever holds the other end, so only this notices.
    pub(crate) fn probe(&self, client: &mut Client) {
        let sent = Instant::now();
        let limit = self
            .valid_until()
            .saturating_duration_since(sent)
            .max(Duration::from_millis(100));
        match client.is_valid(limit) {
            Ok(()) => self.ok(sent),
            Err(e) => self.lose(format!("no answer from the server within the lease: {e}")),
        }
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    pub(crate) fn reason(&self) -> String {
        self.reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| "the session ended".into())
    }

    pub(crate) fn set_holding(&self, holding: bool, on_lost: Option<LostCallback>) {
        *self.on_lost.lock().unwrap_or_else(PoisonError::into_inner) = on_lost;
        self.holding.store(holding, Ordering::SeqCst);
    }
}

/// A connected session with its thread.
pub(crate) struct Session {
    jobs: mpsc::Sender<Job>,
    cancel: postgres::CancelToken,
    pub(crate) backend_pid: i32,
    pub(crate) health: Arc<Health>,
    pub(crate) idle_since: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("backend_pid", &self.backend_pid)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Connects, checks that the session really is one server session with our settings (a
    /// transaction-mode pooler such as PgBouncer breaks both), and starts the session's thread.
    pub(crate) fn connect(settings: &PgSettings) -> Result<Self> {
        let mut client = match &settings.tls {
            None => settings.config.connect(NoTls),
            Some(tls) => settings.config.connect(tls.clone()),
        }
        .map_err(|e| super::db_error("connect to the coordinator", &e))?;
        let row = client
            .query_one(
                "SELECT pg_backend_pid(), current_setting('idle_session_timeout'), \
                 current_setting('tcp_user_timeout')",
                &[],
            )
            .map_err(|e| super::db_error("set up a coordinator session", &e))?;
        let backend_pid: i32 = row.get(0);
        let idle: String = row.get(1);
        let expected = settings.expected_idle_timeout_ms();
        if parse_ms(&idle) != Some(expected) {
            return Err(Error::Coordinator {
                op: "set up a coordinator session",
                message: format!(
                    "the session's idle_session_timeout is {idle}, not the {expected}ms ferrolock asked for: a \
                     connection pooler (PgBouncer?) dropped the startup options, so leases cannot work. Connect \
                     to PostgreSQL directly (transaction pooling also breaks session locks)"
                ),
            });
        }
        let cancel = client.cancel_token();
        let health = Arc::new(Health::new(settings.lease));
        let (tx, rx) = mpsc::channel::<Job>();
        let heartbeat = settings.heartbeat();
        let thread_health = Arc::clone(&health);
        thread::Builder::new()
            .name(format!("ferrolock-pg-{backend_pid}"))
            .spawn(move || serve(&mut client, &rx, &thread_health, heartbeat))
            .map_err(|e| Error::Coordinator {
                op: "start a coordinator session thread",
                message: e.to_string(),
            })?;
        Ok(Self {
            jobs: tx,
            cancel,
            backend_pid,
            health,
            idle_since: Instant::now(),
        })
    }

    /// Sends `f` to the session's thread; its result arrives on the returned channel.
    pub(crate) fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client, &Health) -> T + Send + 'static,
    ) -> mpsc::Receiver<T> {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move |client, health| {
            let _ = tx.send(f(client, health));
        });
        if self.jobs.send(job).is_err() {
            self.health.lose("the session's thread has ended".into());
        }
        rx
    }

    /// Runs `f` on the session and waits for it, at most `limit`.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        limit: Duration,
        f: impl FnOnce(&mut Client, &Health) -> T + Send + 'static,
    ) -> Option<T> {
        self.call(f).recv_timeout(limit).ok()
    }

    /// Asks the server to cancel the session's running query (on a connection of its own).
    pub(crate) fn cancel_query(&self, settings: &PgSettings) {
        let sent = match &settings.tls {
            None => self.cancel.cancel_query(NoTls),
            Some(tls) => self.cancel.cancel_query(tls.clone()),
        };
        if let Err(e) = sent {
            log::warn!(target: "ferrolock::coord", "could not cancel a coordinator query: {e}");
        }
    }
}

fn serve(client: &mut Client, jobs: &mpsc::Receiver<Job>, health: &Health, heartbeat: Duration) {
    loop {
        let next = if health.holding.load(Ordering::SeqCst) && !health.is_lost() {
            jobs.recv_timeout(heartbeat)
        } else {
            jobs.recv().map_err(|_| RecvTimeoutError::Disconnected)
        };
        match next {
            Ok(job) => job(client, health),
            Err(RecvTimeoutError::Timeout) => health.probe(client),
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// `current_setting` spells durations with units (`2s`, `1500ms`, `1min`).
fn parse_ms(setting: &str) -> Option<u128> {
    let digits_end = setting.find(|c: char| !c.is_ascii_digit()).unwrap_or(setting.len());
    let (n, unit) = setting.split_at(digits_end);
    let n: u128 = n.parse().ok()?;
    Some(match unit {
        "ms" => n,
        "s" | "" => n * 1000,
        "min" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_ms;

    #[test]
    fn reads_postgres_durations() {
        assert_eq!(parse_ms("2s"), Some(2000));
        assert_eq!(parse_ms("1500ms"), Some(1500));
        assert_eq!(parse_ms("15min"), Some(900_000));
        assert_eq!(parse_ms("0"), Some(0));
        assert_eq!(parse_ms("x"), None);
    }
}
